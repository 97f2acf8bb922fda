"""A sweep's grid: the settings it may vary, parsed and expanded into named runs."""
from __future__ import annotations

import argparse
import itertools
import math
import re

from ..errors import InputError
from ..core.settings import SETTINGS, complete


SWEEPABLE = {
    "recipe": "r",
    "hidden_size": "h",
    "cell": "",             # run names: lstm-L2-do0.2-h256
    "num_layers": "L",
    "dropout": "do",
    "learning_rate": "lr",
    "lr_decay": "lrd",
    "optimizer": "opt",
    "embedding_size": "D",
    "init": "init",
    "dtype": "",
    "seq_length": "T",
    "batch_size": "B",
    "iters": "it",
    "seed": "seed",
    "val_fraction": "vf",
    "eval_every": "ee",
}


MAX_RUNS = 10_000             # larger grids are refused (split them into several sweeps)


def sweepable_settings() -> dict:
    """setting name -> its Setting (charrnn_ext.core.settings: flag, check, help),
    for the settings a grid may vary, in run-name order."""
    return {name: SETTINGS[name] for name in SWEEPABLE}


def _format(value) -> str:
    """A setting's value as text that parses back to the same value (floats
    as their shortest round-trip repr)."""
    return repr(value) if isinstance(value, float) else str(value)


def _parse_value(name: str, setting, text: str):
    try:
        return setting.parse(text)
    except argparse.ArgumentTypeError as exc:
        raise InputError(f"--grid {name}: {exc}") from None


def parse_grid(items: list[str], fixed: dict, settings: dict) -> dict:
    """``["hidden_size=100,200", ...]`` -> {name: [values]} in SWEEPABLE
    order, each value parsed with the trainer's type for it. InputError for
    anything that is not a grid of known settings, distinct valid values, at
    most MAX_RUNS runs."""
    grid = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise InputError(f"--grid {item!r}: expected NAME=V1,V2,... "
                             f"(e.g. hidden_size=100,200)")
        if name not in settings:
            raise InputError(f"--grid: unknown setting {name!r} (settings: "
                             f"{', '.join(settings)})")
        if name in grid:
            raise InputError(f"--grid names {name} twice; list its values once: {name}=V1,V2")
        if fixed.get(name) is not None:
            raise InputError(f"{settings[name].flag} and --grid {name}=... both set {name}; "
                             f"use one")
        texts = [v.strip() for v in values.split(",")]
        if any(not t for t in texts):
            raise InputError(f"--grid {item!r}: an empty value (expected {name}=V1,V2,...)")
        parsed = []
        for t in texts:
            v = _parse_value(name, settings[name], t)
            if v in parsed:
                raise InputError(f"--grid {name}: the value {_format(v)} is listed twice")
            parsed.append(v)
        grid[name] = parsed
    if not grid:
        raise InputError("--grid is empty: name at least one setting to vary, e.g. "
                         "--grid hidden_size=100,200")
    n = math.prod(len(v) for v in grid.values())
    if n > MAX_RUNS:
        raise InputError(f"--grid makes {n:,} runs, more than {MAX_RUNS:,}; split it into "
                         f"smaller sweeps")
    return {name: grid[name] for name in SWEEPABLE if name in grid}


def run_name(varied: dict) -> str:
    """A run's name from the settings its grid varies, in SWEEPABLE order:
    hidden_size=100, learning_rate=0.1, seq_length=25 -> 'h100-lr0.1-T25'.
    Distinct settings give distinct names (values are written exactly);
    the characters are letters, digits and '.', '-', '+' only."""
    name = "-".join(f"{SWEEPABLE[k]}{_format(v)}" for k, v in varied.items())
    if not re.fullmatch(r"[A-Za-z0-9.+-]+", name):  # every sweepable type gives such values
        raise InputError(f"cannot make a file name from the settings {varied}")
    return name


def expand(grid: dict, fixed: dict, settings: dict) -> list[tuple[str, dict]]:
    """[(name, settings)] for every combination of the grid; a run's settings
    are all the sweepable ones: the grid's, else the fixed flag's, else the
    trainer's default (its recipe's: charrnn_ext.core.settings.complete)."""
    given = {k: v for k, v in fixed.items() if v is not None and k in settings}
    runs = []
    for combo in itertools.product(*grid.values()):
        varied = dict(zip(grid, combo))
        run = complete({**given, **varied})
        runs.append((run_name(varied), {k: run[k] for k in settings}))
    return runs
