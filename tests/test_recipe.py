"""The recipes (charrnn_ext.core.settings): --recipe min-char-rnn|batched|auto as
the defaults of the model settings, a flag given over its recipe's value,
OTHER_RATES (a recipe's rate for the other optimizer), what a resumed
checkpoint's model fixes (fixed_by), a stored checkpoint's settings over the
recipe's, and notes() on settings known to train badly. In process, no
training: the runs these settings make are in test_cli_train.py (the header,
the notes printed), test_training.py (the model they build), the checkpoint
and resume tests and test_sweep.py.
"""
import pytest

from charrnn_ext import CharRNN
from charrnn_ext import defaults as d
from charrnn_ext.core.settings import (OTHER_RATES, RECIPES, SETTINGS, check, complete, fixed_by,
                                  notes)

MODEL = ("hidden_size", "seq_length", "batch_size", "learning_rate", "optimizer",
         "embedding_size", "init", "lr_decay")
MIN_CHAR_RNN = dict(hidden_size=100, seq_length=25, batch_size=1, learning_rate=0.1,
                    optimizer="adagrad", embedding_size=0, init="min-char-rnn", lr_decay=1.0)
BATCHED = dict(hidden_size=256, seq_length=50, batch_size=32, learning_rate=0.002,
               optimizer="adam", embedding_size=64, init="pytorch", lr_decay=0.1)


def model_settings(settings: dict) -> dict:
    return {name: settings[name] for name in MODEL}


def test_the_recipes_are_the_documented_ones():
    """min-char-rnn's recipe is the original script's (defaults.py, which the
    core's parity tests use); the batched one is README's / --help's."""
    assert RECIPES["min-char-rnn"] == MIN_CHAR_RNN
    assert RECIPES["batched"] == BATCHED
    assert (d.HIDDEN_SIZE, d.SEQ_LENGTH, d.BATCH_SIZE, d.LEARNING_RATE, d.OPTIMIZER,
            d.EMBEDDING_SIZE, d.INIT, d.LR_DECAY) == tuple(MIN_CHAR_RNN.values())
    assert OTHER_RATES == {("min-char-rnn", "adam"): 0.002, ("batched", "adagrad"): 0.02,
                           ("min-char-rnn", "rmsprop"): 0.002, ("batched", "rmsprop"): 0.002}
    for name in MODEL:   # a setting's own default is min-char-rnn's
        assert SETTINGS[name].default == MIN_CHAR_RNN[name], name


@pytest.mark.parametrize("given", [{}, {"batch_size": 1}, {"recipe": "auto"},
                                   {"recipe": "auto", "batch_size": 1},
                                   {"recipe": "min-char-rnn"}])
def test_one_stream_is_min_char_rnn(given):
    """No flag, or --batch-size 1 alone: min-char-rnn's settings, all of them."""
    s = complete(given)
    assert s["recipe"] == "min-char-rnn"
    assert model_settings(s) == MIN_CHAR_RNN


@pytest.mark.parametrize("B", [2, 32, 100])
def test_more_streams_alone_get_the_batched_recipe(B):
    s = complete({"batch_size": B})
    assert s["recipe"] == "batched"
    assert model_settings(s) == dict(BATCHED, batch_size=B)
    assert model_settings(complete({"recipe": "auto", "batch_size": B})) == \
        dict(BATCHED, batch_size=B)


def test_the_batched_recipe_named_brings_its_32_streams():
    s = complete({"recipe": "batched"})
    assert s["recipe"] == "batched" and model_settings(s) == BATCHED
    # and with one stream asked for, the rest of the batched recipe
    s = complete({"recipe": "batched", "batch_size": 1})
    assert model_settings(s) == dict(BATCHED, batch_size=1)


def test_min_char_rnn_named_keeps_adagrad_one_hot_with_more_streams():
    s = complete({"recipe": "min-char-rnn", "batch_size": 4})
    assert s["recipe"] == "min-char-rnn"
    assert model_settings(s) == dict(MIN_CHAR_RNN, batch_size=4)


@pytest.mark.parametrize("name, value", [
    ("hidden_size", 48), ("seq_length", 7), ("learning_rate", 0.005),
    ("embedding_size", 0), ("embedding_size", 16), ("init", "min-char-rnn"),
])
def test_a_flag_given_overrides_the_batched_recipes_value(name, value):
    s = complete({"batch_size": 32, name: value})
    assert s[name] == value and s["recipe"] == "batched"
    assert model_settings(s) == dict(BATCHED, **{name: value})


@pytest.mark.parametrize("name, value", [
    ("hidden_size", 48), ("seq_length", 7), ("learning_rate", 0.005),
    ("embedding_size", 16), ("init", "pytorch"),
])
def test_a_flag_given_overrides_min_char_rnns_value(name, value):
    s = complete({name: value})
    assert s["recipe"] == "min-char-rnn"
    assert model_settings(s) == dict(MIN_CHAR_RNN, **{name: value})


def test_the_other_optimizer_gets_its_own_rate():
    """A recipe's learning rate is for its optimizer: Adagrad in the batched
    recipe trains at 0.02, Adam in min-char-rnn's at 0.002; a rate given wins."""
    s = complete({"batch_size": 32, "optimizer": "adagrad"})
    assert model_settings(s) == dict(BATCHED, optimizer="adagrad", learning_rate=0.02)
    s = complete({"optimizer": "adam"})
    assert model_settings(s) == dict(MIN_CHAR_RNN, optimizer="adam", learning_rate=0.002)
    s = complete({"recipe": "batched", "optimizer": "adagrad", "learning_rate": 0.3})
    assert s["learning_rate"] == 0.3
    # the recipe's own optimizer named: its own rate
    assert complete({"batch_size": 32, "optimizer": "adam"})["learning_rate"] == 0.002
    assert complete({"optimizer": "adagrad"})["learning_rate"] == 0.1


def test_stored_settings_come_before_the_recipes():
    """Resuming: a value the checkpoint stored is used where no flag is given,
    before its recipe's default; a flag given wins over both."""
    stored = complete({"batch_size": 8, "hidden_size": 32, "learning_rate": 0.001,
                       "seq_length": 9})
    s = complete({}, stored)
    assert s == stored
    s = complete({"learning_rate": 0.004}, stored)
    assert s == dict(stored, learning_rate=0.004)


def test_a_checkpoint_from_before_the_recipes_is_min_char_rnns():
    """Version 1-2 files stored no recipe, optimizer nor embedding: they were
    trained with min-char-rnn's, whatever their streams."""
    old = {"hidden_size": 32, "seq_length": 12, "batch_size": 4, "learning_rate": 0.05,
           "iters": 100, "seed": 3, "val_fraction": 0.05}
    s = complete({}, old, {"hidden_size": 32, "batch_size": 4, "optimizer": "adagrad",
                           "embedding_size": 0})
    assert s["recipe"] == "min-char-rnn"
    assert model_settings(s) == dict(MIN_CHAR_RNN, hidden_size=32, seq_length=12,
                                     batch_size=4, learning_rate=0.05)
    # without what the model fixes, too
    s = complete({}, old)
    assert s["recipe"] == "min-char-rnn" and s["optimizer"] == "adagrad" \
        and s["embedding_size"] == 0 and s["init"] == "min-char-rnn"


def test_what_a_resumed_model_fixes_wins():
    model = CharRNN(11, 6, seed=0, embedding_size=3, optimizer="adam", init="pytorch")
    fixed = fixed_by(model, 5)
    # (and whatever else a model fixes, e.g. its compute type)
    assert fixed.items() >= {"hidden_size": 6, "batch_size": 5, "optimizer": "adam",
                             "embedding_size": 3}.items()
    assert fixed_by(CharRNN(11, 6, seed=0), 1).items() >= \
        {"hidden_size": 6, "batch_size": 1, "optimizer": "adagrad", "embedding_size": 0}.items()
    stored = complete({"batch_size": 5, "hidden_size": 6, "embedding_size": 3})
    s = complete({"hidden_size": 6, "optimizer": "adam", "learning_rate": 0.01}, stored, fixed)
    assert (s["hidden_size"], s["batch_size"], s["optimizer"], s["embedding_size"]) == \
        (6, 5, "adam", 3) and s["learning_rate"] == 0.01


@pytest.mark.parametrize("name, value, theirs", [
    ("batch_size", 8, "the 5 streams"), ("hidden_size", 64, "the hidden size 6"),
    ("cell", "gru", "the cell lstm"), ("dtype", "float64", "the dtype float32"),
    ("num_layers", 1, "the num layers 2"), ("optimizer", "adagrad", "the optimizer adam"),
    ("embedding_size", 0, "the embedding size 3"),
])
def test_a_given_setting_that_contradicts_a_resumed_model_is_refused_by_name(name, value,
                                                                               theirs):
    """Resuming keeps what the model fixes: a setting given otherwise is a
    ValueError naming it (charrnn-train exits 2 naming its flag), never
    silently replaced by the checkpoint's."""
    model = CharRNN(11, 6, seed=0, cell="lstm", num_layers=2, embedding_size=3,
                    optimizer="adam", dtype="float32")
    fixed = fixed_by(model, 5)
    stored = complete(dict(fixed))
    with pytest.raises(ValueError, match=f"setting {name} {value} differs from {theirs} of "
                                         f"the checkpoint"):
        complete({name: value}, stored, fixed)
    assert complete({name: fixed[name]}, stored, fixed) == complete({}, stored, fixed)


@pytest.mark.parametrize("name, value, words", [
    ("recipe", "foo", "must be one of auto, min-char-rnn, batched"),
    ("optimizer", "sgd", "must be one of adagrad, adam"),
    ("init", "xavier", "must be one of min-char-rnn, pytorch"),
    ("embedding_size", -1, "embedding_size"),
    ("embedding_size", 2.5, "embedding_size"),
    ("optimizer", 1, "optimizer"),
])
def test_bad_values_are_refused(name, value, words):
    with pytest.raises(ValueError, match=words):
        complete({name: value})
    with pytest.raises(ValueError, match="stored setting " + name):
        complete({}, {name: value})


def test_valid_values_are_taken_as_given():
    assert check("recipe", "batched") == "batched"
    assert check("optimizer", "adam") == "adam"
    assert check("embedding_size", 0) == 0 and check("embedding_size", 12) == 12
    assert check("init", "pytorch") == "pytorch"


# -- notes: settings known to train badly, one line each --------------------

TRAP = {"batch_size": 32, "hidden_size": 256, "optimizer": "adagrad", "embedding_size": 0}


def test_the_trap_gets_a_note():
    """B 32, H 256 with min-char-rnn's one-hot input and Adagrad trains
    badly (issue 20): one line naming the way out."""
    lines = notes(complete(TRAP))
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "Adagrad" in lines[0] and "batched" in lines[0]
    # and with min-char-rnn's recipe named, the same
    assert notes(complete({"recipe": "min-char-rnn", "batch_size": 32, "hidden_size": 256}))


@pytest.mark.parametrize("given", [
    {}, {"batch_size": 1}, {"batch_size": 32}, {"recipe": "batched"},
    {"recipe": "min-char-rnn"}, {"recipe": "min-char-rnn", "batch_size": 4},
    {"batch_size": 32, "optimizer": "adagrad"},      # with the embedding: fine
    {"batch_size": 32, "hidden_size": 256, "embedding_size": 0},   # Adam: fine
    {"batch_size": 32, "hidden_size": 64, "optimizer": "adagrad", "embedding_size": 0},
    {"hidden_size": 256, "optimizer": "adagrad", "embedding_size": 0},   # one stream
    {"optimizer": "adam"}, {"optimizer": "adam", "learning_rate": 0.02},
])
def test_no_note_for_the_recipes_and_good_settings(given):
    assert notes(complete(given)) == []


def test_a_large_adam_rate_gets_a_note():
    lines = notes(complete({"batch_size": 32, "learning_rate": 0.1}))
    assert len(lines) == 1 and "Adam" in lines[0] and "0.1" in lines[0]


def test_dropout_with_one_layer_gets_a_note():
    """As PyTorch warns: dropout acts between layers, so with one it does nothing."""
    for cell in ("rnn", "lstm", "gru"):
        lines = notes(complete({"cell": cell, "dropout": 0.5}))
        assert lines == ["--dropout 0.5 has no effect with one layer: dropout acts between "
                         "stacked layers (--num-layers 2 or more)"], lines
        assert notes(complete({"cell": cell, "dropout": 0.5, "num_layers": 2})) == []


def test_the_number_of_layers_is_bounded_where_it_is_read():
    """--num-layers above the limit is the flag's error, not the model's (issue 28)."""
    from charrnn_ext.core.spec import MAX_LAYERS
    assert complete({"num_layers": MAX_LAYERS})["num_layers"] == MAX_LAYERS
    with pytest.raises(ValueError, match=f"setting num_layers must be at most {MAX_LAYERS}, "
                                         f"got {MAX_LAYERS + 1}"):
        complete({"num_layers": MAX_LAYERS + 1})


def test_a_run_reading_a_short_text_many_times_is_noted():
    """notes(settings, n_train): a run planned to read its training text more
    than PASSES_NOTED times says so; the recipes on tinyshakespeare's size do
    not; one stream (min-char-rnn's own loop) never."""
    from charrnn_ext.core.settings import PASSES_NOTED
    batched = complete({"recipe": "batched"})
    short = notes(batched, 58_000)      # lunyu_shijing's training part
    assert len(short) == 1 and "58,000 training characters about 276 times" in short[0]
    assert notes(batched, 1_059_625) == []          # tinyshakespeare: 15 passes
    assert 10_000 * 32 * 50 / 1_059_625 < PASSES_NOTED
    assert notes(complete({}), 1000) == []          # one stream: min-char-rnn, as it was
    assert notes(complete({"recipe": "batched", "iters": 100}), 58_000) == []


def test_a_resumed_run_keeps_its_recipe():
    """A recipe is the defaults of a new run: on resume another one would
    change only the header's label, so it is refused by name; the stored one,
    or auto (none asked for), is the checkpoint's."""
    model = CharRNN(11, 6, seed=0, embedding_size=3, optimizer="adam", init="pytorch")
    stored = complete({"batch_size": 5, "hidden_size": 6, "embedding_size": 3})
    fixed = fixed_by(model, 5, stored)
    assert fixed["recipe"] == stored["recipe"] == "batched"
    for recipe in ("batched", "auto", None):
        assert complete({"recipe": recipe}, stored, fixed) == stored
    with pytest.raises(ValueError, match="setting recipe min-char-rnn differs from the recipe "
                                         "batched of the checkpoint"):
        complete({"recipe": "min-char-rnn"}, stored, fixed)
    old = {"hidden_size": 6, "batch_size": 5, "learning_rate": 0.05}   # before the recipes
    assert fixed_by(CharRNN(11, 6, seed=0), 5, old)["recipe"] == "min-char-rnn"


def test_the_gru_recipe_is_readmes_gru_command():
    """--recipe gru is README's GRU command (its 9 flags, "LSTM and GRU cells")
    in one flag: every setting the same but the recipe's name."""
    import re
    import shlex
    from pathlib import Path
    from charrnn_ext.cli.train import build_parser
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    command = re.search(r"^charrnn-train input\.txt --cell gru --batch-size 32 .*$", readme,
                        re.M).group(0)
    args = build_parser().parse_args(shlex.split(command)[1:])
    flags = complete({name: getattr(args, name) for name in SETTINGS})
    recipe = complete({"recipe": "gru"})
    assert recipe["recipe"] == "gru" and flags["recipe"] == "batched"
    assert {**flags, "recipe": "gru"} == recipe
    assert recipe["cell"] == "gru" and recipe["dtype"] == "float32"
    # a flag given still overrides it; resuming keeps the recipe's name
    assert complete({"recipe": "gru", "hidden_size": 64})["hidden_size"] == 64
    model = CharRNN(5, 8, seed=0, cell="gru", embedding_size=4, optimizer="adam", dtype="float32")
    assert fixed_by(model, 32, recipe)["recipe"] == "gru"
