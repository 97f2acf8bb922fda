"""charrnn-sweep's grid (charrnn_ext.run.grid): the settings it may vary are the
trainer's, parsed with its types, expanded into named runs whose settings
are their recipe's; a results directory from before the recipes is still its
own. (The command and its runs on a cluster: test_sweep.py.)"""
import pytest

distributed = pytest.importorskip("distributed")

from charrnn_ext.cli import sweep, train  # noqa: E402
from charrnn_ext.errors import InputError  # noqa: E402
from charrnn_ext.core.settings import SETTINGS  # noqa: E402


# ---------------------------------------------------------------------------
# the grid: names, types and limits come from charrnn_ext.train
# ---------------------------------------------------------------------------

def test_sweepable_settings_are_the_trainers():
    """The grid's names, checks and flags are those of charrnn-train: one
    table, charrnn_ext.core.settings, which the trainer's parser is built from."""
    settings = sweep.sweepable_settings()
    actions = {a.dest: a for a in train.build_parser()._actions}
    assert list(settings) == list(sweep.SWEEPABLE)
    assert {"hidden_size", "learning_rate", "seq_length", "batch_size", "iters", "seed",
            "val_fraction", "eval_every"} <= set(settings)
    for name, setting in settings.items():
        assert setting is SETTINGS[name]
        assert actions[name].type is setting.parse, name  # the trainer's own checks
        assert setting.flag in actions[name].option_strings, name


def test_a_setting_not_in_the_table_is_not_sweepable(monkeypatch, capsys, tmp_path):
    """A grid names only settings of the table (temperature is one, but not sweepable)."""
    code = sweep.main([str(tmp_path / "x.txt"), "--grid", "temperature=1,2", "--out",
                       str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "unknown setting 'temperature'" in err


def test_grid_values_are_parsed_with_the_trainers_types():
    settings = sweep.sweepable_settings()
    grid = sweep.parse_grid(["learning_rate=0.1,1e-3", "hidden-size=100,200", "seed=7"],
                            {}, settings)
    assert list(grid) == ["hidden_size", "learning_rate", "seed"]  # the run-name order
    assert grid == {"hidden_size": [100, 200], "learning_rate": [0.1, 0.001], "seed": [7]}
    assert all(type(v) is int for v in grid["hidden_size"])
    runs = sweep.expand(grid, {"iters": 500}, settings)
    assert [name for name, _ in runs] == ["h100-lr0.1-seed7", "h100-lr0.001-seed7",
                                          "h200-lr0.1-seed7", "h200-lr0.001-seed7"]
    cfg = dict(runs)["h200-lr0.001-seed7"]
    assert cfg["iters"] == 500 and cfg["seq_length"] == SETTINGS["seq_length"].default
    assert set(cfg) == set(sweep.SWEEPABLE)   # every sweepable setting spelled out


def test_run_names_are_unique_and_file_system_safe():
    settings = sweep.sweepable_settings()
    grid = sweep.parse_grid(["learning_rate=0.1,0.10000000000000002,1e-05,2",
                             "seq_length=25,250", "val_fraction=0,0.05"], {}, settings)
    names = [name for name, _ in sweep.expand(grid, {}, settings)]
    assert len(names) == len(set(names)) == 16
    for name in names:
        assert all(c.isalnum() or c in ".-+" for c in name), name
    assert "lr0.1-T25-vf0.0" in names and "lr1e-05-T250-vf0.05" in names
    assert sweep.run_name({"hidden_size": 100, "learning_rate": 0.1, "seq_length": 25}) == \
        "h100-lr0.1-T25"


def test_the_grid_varies_the_recipes_settings():
    """recipe, optimizer, embedding_size and init are sweepable; a run's
    settings are charrnn-train's for the same flags: its recipe's defaults
    (the other optimizer's rate), spelled out."""
    settings = sweep.sweepable_settings()
    assert {"recipe", "optimizer", "embedding_size", "init"} <= set(settings)
    grid = sweep.parse_grid(["optimizer=adagrad,adam"], {}, settings)
    runs = dict(sweep.expand(grid, {"iters": 50}, settings))
    assert list(runs) == ["optadagrad", "optadam"]
    assert {k: runs["optadagrad"][k] for k in ("recipe", "learning_rate", "hidden_size",
                                               "embedding_size", "init")} == \
        dict(recipe="min-char-rnn", learning_rate=0.1, hidden_size=100, embedding_size=0,
             init="min-char-rnn")
    assert runs["optadam"]["learning_rate"] == 0.002 and runs["optadam"]["recipe"] == \
        "min-char-rnn"
    # more streams fixed by a flag: the batched recipe, for each optimizer its rate
    runs = dict(sweep.expand(grid, {"batch_size": 4, "hidden_size": 8}, settings))
    assert [(r["recipe"], r["learning_rate"], r["embedding_size"], r["init"], r["seq_length"],
             r["hidden_size"]) for r in runs.values()] == \
        [("batched", 0.02, 64, "pytorch", 50, 8), ("batched", 0.002, 64, "pytorch", 50, 8)]
    grid = sweep.parse_grid(["recipe=min-char-rnn,batched", "embedding_size=0,16",
                             "init=pytorch"], {}, settings)
    runs = dict(sweep.expand(grid, {}, settings))
    assert list(runs) == ["rmin-char-rnn-D0-initpytorch", "rmin-char-rnn-D16-initpytorch",
                          "rbatched-D0-initpytorch", "rbatched-D16-initpytorch"]
    b = runs["rbatched-D16-initpytorch"]
    assert (b["batch_size"], b["hidden_size"], b["optimizer"], b["embedding_size"]) == \
        (32, 256, "adam", 16)
    m = runs["rmin-char-rnn-D0-initpytorch"]
    assert (m["batch_size"], m["hidden_size"], m["optimizer"], m["learning_rate"]) == \
        (1, 100, "adagrad", 0.1)
    for cfg in runs.values():
        assert set(cfg) == set(sweep.SWEEPABLE)


def test_a_sweep_directory_from_before_the_recipes_is_still_its_own(tmp_path):
    """results.csv written before the recipes (no recipe, optimizer,
    embedding_size, init columns) holds min-char-rnn's runs: the same grid
    again finds them done; a grid now asking for the batched recipe of the
    same name is refused."""
    from charrnn_ext.run import results
    settings = sweep.sweepable_settings()
    old_columns = ["hidden_size", "learning_rate", "seq_length", "batch_size", "iters", "seed",
                   "val_fraction", "eval_every"]
    runs = sweep.expand(sweep.parse_grid(["hidden_size=8,16"], {}, settings),
                        {"iters": 300}, settings)
    old = results.Results(str(tmp_path), old_columns)
    for name, cfg in runs:
        old.add(results.row_of(name, {k: cfg[k] for k in old_columns}, {}, "digest"))
        (tmp_path / f"{name}.npz").write_bytes(b"")
    old.save()
    again = results.Results(str(tmp_path), list(settings))
    again.load(settings)
    assert results.runs_to_do(runs, again, "digest", str(tmp_path)) == []
    batched = sweep.expand(sweep.parse_grid(["hidden_size=8,16"], {}, settings),
                           {"iters": 300, "recipe": "batched", "batch_size": 1}, settings)
    with pytest.raises(InputError, match="recipe=min-char-rnn, this sweep asks for "
                                         "recipe=batched"):
        results.runs_to_do(batched, again, "digest", str(tmp_path))



def test_the_grid_varies_dtype_and_lr_decay():
    """--grid dtype=... and lr_decay=...: run names and each run's settings."""
    from charrnn_ext.run.grid import expand, run_name, sweepable_settings
    runs = dict(expand({"dtype": ["float64", "float32"], "lr_decay": [1.0, 0.1]},
                       {"batch_size": 4}, sweepable_settings()))
    assert set(runs) == {"float64-lrd1.0", "float64-lrd0.1", "float32-lrd1.0", "float32-lrd0.1"}
    assert runs["float32-lrd0.1"]["dtype"] == "float32"
    assert runs["float32-lrd0.1"]["lr_decay"] == 0.1 and runs["float64-lrd1.0"]["lr_decay"] == 1.0
    assert runs["float32-lrd0.1"]["recipe"] == "batched"   # B > 1: the batched recipe's rest
    assert run_name({"dtype": "float32"}) == "float32"
