"""A training run's settings: each one's name, default, check, flag and help (the one table).

charrnn-train's flags, charrnn-sweep's grid and flags, a checkpoint's stored
settings and ``charrnn_ext.run.training.run`` all read this table: a setting is
named, defaulted and checked here only.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable

from .. import defaults as d
from .._parse import (fraction, nonneg_float, nonneg_int, positive_float, positive_int,
                      sample_length_int, seed_int, unit_fraction)
from . import optimizers
from .optimizers import OPTIMIZERS
from .spec import CELLS, DTYPES, INITS, MAX_LAYERS


def _choice(options):
    def parse(text: str) -> str:
        if text not in options:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(options)}, got {text}")
        return text
    parse.__name__ = "one of " + "|".join(options)
    return parse


# The recipes: the defaults of the model and training settings. min-char-rnn's
# is the original script's (one stream); the batched recipe is the best
# measured in two minutes on two cores (benchmarks/README.md, "Best model in
# two minutes") of the tanh RNN; the gru recipe is README's GRU command (the
# best model in two minutes: GRU 384, embedding 128, Adam 0.003 falling to a
# tenth, 32 streams of 50, float32; benchmarks/bench_recipe.py, ours-gru).
# Without --recipe, a run of one stream follows min-char-rnn's and a run of
# B > 1 streams the batched one; a flag given overrides its recipe's value.
RECIPES = {
    "min-char-rnn": dict(hidden_size=d.HIDDEN_SIZE, seq_length=d.SEQ_LENGTH,
                         batch_size=d.BATCH_SIZE, learning_rate=d.LEARNING_RATE,
                         optimizer=d.OPTIMIZER, embedding_size=d.EMBEDDING_SIZE, init=d.INIT,
                         lr_decay=d.LR_DECAY),
    "batched": dict(hidden_size=256, seq_length=50, batch_size=32, learning_rate=0.002,
                    optimizer="adam", embedding_size=64, init="pytorch", lr_decay=0.1),
    "gru": dict(cell="gru", hidden_size=384, seq_length=50, batch_size=32, learning_rate=0.003,
                optimizer="adam", embedding_size=128, init="pytorch", lr_decay=0.1,
                dtype="float32"),
}
# A recipe's learning rate is for its optimizer; with another one given, that
# optimizer's rate for the recipe (charrnn_ext.core.optimizers: rates):
OTHER_RATES = {(recipe, o.name): rate for o in optimizers.TABLE.values()
               for recipe, rate in o.rates.items()}


def cell_name(text: str) -> str:
    """A cell: rnn (min-char-rnn's tanh RNN), lstm or gru."""
    if text not in CELLS:
        raise argparse.ArgumentTypeError(f"must be {', '.join(CELLS[:-1])} or {CELLS[-1]}, "
                                         f"got {text}")
    return text


def layers_int(text: str) -> int:
    """Stacked layers: 1 to spec.MAX_LAYERS (a checkpoint names that many layers' members)."""
    value = positive_int(text)
    if value > MAX_LAYERS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_LAYERS}, got {text}")
    return value


@dataclass(frozen=True)
class Setting:
    default: Any
    parse: Callable[[str], Any]   # text -> value, or argparse.ArgumentTypeError
    metavar: str
    help: str                     # the flag's help, without its default

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    name: str = ""


def _table(**settings: Setting) -> dict:
    return {name: Setting(s.default, s.parse, s.metavar, s.help, name)
            for name, s in settings.items()}


# The model and training settings, then the output settings, in --help order.
SETTINGS = _table(
    recipe=Setting("auto", _choice(("auto",) + tuple(RECIPES)), "NAME",
                   "the defaults of the settings below: min-char-rnn (the original script: "
                   "hidden 100, seq 25, one stream, Adagrad 0.1, one-hot input) or batched "
                   "(hidden 256, seq 50, 32 streams, Adam 0.002 decaying to a tenth, a 64-wide "
                   "input embedding, PyTorch's initialisation: the best tanh RNN in a few "
                   "minutes) or gru (a GRU of 384, 32 streams of 50, Adam 0.003 falling to a "
                   "tenth, a 128-wide embedding, float32: the best model in two minutes); auto: "
                   "batched when --batch-size is above 1, else min-char-rnn"),
    hidden_size=Setting(d.HIDDEN_SIZE, positive_int, "H", "size of the hidden layer"),
    cell=Setting("rnn", cell_name, "CELL",
                 "the recurrent cell: rnn (min-char-rnn's tanh RNN), lstm or gru (PyTorch's "
                 "equations)"),
    num_layers=Setting(1, layers_int, "N", f"stacked recurrent layers, at most {MAX_LAYERS}"),
    dropout=Setting(0.0, fraction, "P",
                    "dropout between stacked layers while training (its draws follow --seed)"),
    seq_length=Setting(d.SEQ_LENGTH, positive_int, "T",
                       "characters per chunk, the steps BPTT unrolls"),
    batch_size=Setting(d.BATCH_SIZE, positive_int, "B",
                       "parallel streams: the training text is cut into B contiguous parts, "
                       "stream b reads part b in chunks of T with its own hidden state, and one "
                       "step averages the B streams' gradients (char-rnn's -batch_size); 1 is "
                       "exactly min-char-rnn"),
    learning_rate=Setting(d.LEARNING_RATE, positive_float, "LR", "the optimizer's learning rate"),
    lr_decay=Setting(d.LR_DECAY, unit_fraction, "F",
                     "the learning rate falls linearly to F times --learning-rate by the end of "
                     "the run (--iters, or --time-limit if that comes first), in steps every "
                     f"{d.LR_WINDOW} iterations; 1 keeps it constant (min-char-rnn)"),
    optimizer=Setting(d.OPTIMIZER, _choice(OPTIMIZERS), "NAME", optimizers.help_text()),
    embedding_size=Setting(d.EMBEDDING_SIZE, nonneg_int, "D",
                           "width of a learned input embedding (nn.Embedding before the RNN); "
                           "0 is min-char-rnn's one-hot input"),
    dtype=Setting(d.DTYPE, _choice(DTYPES), "NAME",
                  "what the model computes in: float64 (the reference, exact against the numpy "
                  "version) or float32 (about twice as fast; results agree with float64's to "
                  "float32's precision)"),
    init=Setting(d.INIT, _choice(INITS), "NAME",
                 "initial weights: min-char-rnn (randn * 0.01, zero biases) or pytorch (as "
                 "nn.Embedding, nn.RNN/LSTM/GRU and nn.Linear initialise); an LSTM, a GRU or "
                 "stacked layers start from pytorch's unless this is given"),
    iters=Setting(d.ITERS, positive_int, "N",
                  "total iterations to reach, counted from the start of training, so a resumed "
                  "run stops where a straight one would"),
    seed=Setting(d.SEED, seed_int, "S",
                 "seed of the initial weights and of sampling; a resumed run continues the "
                 "checkpoint's random state instead"),
    val_fraction=Setting(d.VAL_FRACTION, fraction, "F",
                         "fraction of the text, at its end, held out for validation; 0 disables "
                         "validation"),
    sample_every=Setting(d.SAMPLE_EVERY, positive_int, "N",
                         "print a sample and the loss every N iterations"),
    sample_length=Setting(d.SAMPLE_LENGTH, sample_length_int, "N",
                          "characters per printed sample"),
    temperature=Setting(d.TEMPERATURE, nonneg_float, "T",
                        "temperature of the printed samples; 0 takes the most likely character"),
    eval_every=Setting(d.EVAL_EVERY, positive_int, "N",
                       "score the model (train and validation bits per character, see above) "
                       "every N iterations and at the end"),
    checkpoint_every=Setting(d.CHECKPOINT_EVERY, positive_int, "N",
                             "iterations between checkpoints"),
)
MODEL_SETTINGS = ("recipe", "hidden_size", "cell", "num_layers", "dropout", "seq_length",
                  "batch_size", "learning_rate", "lr_decay", "optimizer", "embedding_size", "init",
                  "dtype", "iters", "seed", "val_fraction")
OUTPUT_SETTINGS = ("sample_every", "sample_length", "temperature", "eval_every")


def recipe_rate(recipe: str, optimizer: str) -> float:
    """The learning rate of ``recipe`` (RECIPES) for ``optimizer``."""
    return OTHER_RATES.get((recipe, optimizer), RECIPES[recipe]["learning_rate"])


def check(name: str, value) -> Any:
    """``value`` of the setting ``name`` as its check accepts it (the value
    its text parses to), or ValueError naming the setting."""
    setting = SETTINGS.get(name)
    if setting is None:
        raise ValueError(f"unknown setting {name!r} (settings: {', '.join(SETTINGS)})")
    text = repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"setting {name} must be a number, got {value!r}")
    try:
        return setting.parse(text)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(f"setting {name} {exc}") from None


def contradiction(given: dict, fixed: dict) -> tuple[str, str] | None:
    """The first setting ``given`` (checked) that contradicts ``fixed``, what
    a resumed checkpoint fixes (fixed_by): (its name, what the checkpoint has,
    e.g. "2 streams", "cell lstm"); None if none does."""
    for name, value in fixed.items():
        if name == "recipe" and given.get(name) == "auto":
            continue   # (auto: no recipe asked for)
        if given.get(name) is not None and check(name, given[name]) != value:
            return name, (f"{value} stream{'s' if value != 1 else ''}" if name == "batch_size"
                          else f"{name.replace('_', ' ')} {value}")
    return None


def complete(given: dict | None = None, stored: dict | None = None,
             fixed: dict | None = None) -> dict:
    """Every setting: ``fixed`` (what a resumed checkpoint's model fixes,
    fixed_by: a given value that contradicts it is a ValueError naming it),
    else ``given`` (checked), else ``stored`` (a checkpoint's; checked), else
    the recipe's default (RECIPES; the recipe given, stored, or auto; the
    learning rate its optimizer's, OTHER_RATES), else the setting's default.
    ValueError names an unknown or bad value."""
    given, stored = dict(given or {}), dict(stored or {})
    unknown = sorted(set(given) - set(SETTINGS))
    if unknown:
        raise ValueError(f"unknown setting {unknown[0]!r} (settings: {', '.join(SETTINGS)})")
    out = {}
    for name in SETTINGS:
        if given.get(name) is not None:
            out[name] = check(name, given[name])
        elif stored.get(name) is not None:
            try:
                out[name] = check(name, stored[name])
            except ValueError as exc:
                raise ValueError(f"stored {exc}") from None
    conflict = contradiction({name: out[name] for name in given if given[name] is not None},
                             fixed or {})
    if conflict is not None:
        name, theirs = conflict
        raise ValueError(f"setting {name} {out[name]} differs from the {theirs} of the "
                         f"checkpoint resumed (a resumed run keeps what its model fixes)")
    out.update(fixed or {})
    recipe = out.get("recipe", "auto")
    if recipe == "auto":
        # a checkpoint from before the recipes was trained with min-char-rnn's
        recipe = "batched" if out.get("batch_size", 1) > 1 and (
            not stored or "optimizer" in stored) else "min-char-rnn"
    out["recipe"] = recipe
    defaults = dict(RECIPES[recipe])
    out.setdefault("optimizer", defaults["optimizer"])
    defaults["learning_rate"] = recipe_rate(recipe, out["optimizer"])
    if (out.get("cell", "rnn"), out.get("num_layers", 1)) != ("rnn", 1):
        defaults["init"] = "pytorch"   # min-char-rnn's init is for its own model only
    for name, setting in SETTINGS.items():
        out.setdefault(name, defaults.get(name, setting.default))
    return {name: out[name] for name in SETTINGS}


# Settings a resumed run has spent: given on resume they are ignored (with a note), and
# the checkpoint's stay recorded.
SPENT_ON_RESUME = {"seed": "the checkpoint's random state continues",
                   "init": "the checkpoint's weights continue"}


def fixed_by(model, streams: int, stored: dict | None = None) -> dict:
    """The settings a checkpoint's model fixes (a resumed run keeps them),
    and, given the checkpoint's ``stored`` settings, the recipe they were
    completed with (a recipe is the defaults of a new run: on resume it would
    change only its name)."""
    fixed = {"hidden_size": model.hidden_size, "batch_size": streams,
             "optimizer": model.optimizer, "embedding_size": model.embedding_size,
             "dtype": model.dtype.name, "cell": model.cell, "num_layers": model.num_layers}
    if stored is not None:
        fixed["recipe"] = complete({}, stored, fixed)["recipe"]
    return fixed


PASSES_NOTED = 100   # a run planned to read its training text more often than this is noted


def notes(settings: dict, n_train: int | None = None) -> list[str]:
    """One line for each setting known to train badly with the others
    (measured: benchmarks/README.md, "Best model in two minutes"), and, given
    the training text's length, for a run that would read it more than
    PASSES_NOTED times (on lunyu_shijing's 61,000 characters the batched
    recipe's held-out figure rose from 8.30 to 9.27 bits/char with twice the
    steps)."""
    s, out = settings, []
    if n_train:
        passes = s["iters"] * s["batch_size"] * s["seq_length"] / n_train
        if passes > PASSES_NOTED and s["batch_size"] > 1:
            out.append(f"{s['iters']:,} iterations of {s['batch_size']} streams read the "
                       f"{n_train:,} training characters about {passes:,.0f} times: a model "
                       f"fits a text this short long before, and then gets worse on new text; "
                       f"fewer --iters, streams or a --time-limit keep it from that")
    if s["batch_size"] > 1 and s["optimizer"] == "adagrad" and s["embedding_size"] == 0 \
            and s["hidden_size"] >= 128 and (s["cell"], s["num_layers"]) == ("rnn", 1):
        out.append(f"min-char-rnn's one-hot input with Adagrad trains {s['batch_size']} "
                   f"streams of hidden size {s['hidden_size']} slowly (measured: 3.40 bits/char "
                   f"after 2 minutes at lr 0.1, 2.6 at 0.02, against 2.3 with --recipe batched); "
                   f"leave --optimizer, --embedding-size and --init to the batched recipe")
    if s["dropout"] > 0 and s["num_layers"] == 1:   # (PyTorch's RNNs warn so too)
        out.append(f"--dropout {s['dropout']:g} has no effect with one layer: dropout acts "
                   f"between stacked layers (--num-layers 2 or more)")
    opt = optimizers.get(s["optimizer"])
    if opt.max_rate and s["learning_rate"] > opt.max_rate:
        out.append(f"--learning-rate {s['learning_rate']:g} is large for {opt.label} (the "
                   f"batched recipe uses {recipe_rate('batched', opt.name):g}); a run this "
                   f"fast usually diverges")
    return out


def add_setting_flags(group, names) -> None:
    """The flags of these settings (charrnn_ext.core.settings), default None: a
    value not given comes from the checkpoint when resuming, else the default."""
    for name in names:
        s = SETTINGS[name]
        others = [f"{r} recipe: {values[name]}" for r, values in RECIPES.items()
                  if r != "min-char-rnn" and name in values]
        default = "; ".join([str(RECIPES["min-char-rnn"].get(name, s.default))] + others)
        group.add_argument(s.flag, dest=name, type=s.parse, metavar=s.metavar,
                           help=f"{s.help} (default: {default})")
