"""A training run's settings: each one's name, default, check, flag and help (the one table).

charrnn-train's flags, charrnn-sweep's grid and flags, a checkpoint's stored
settings and ``charrnn_ext.training.run`` all read this table: a setting is
named, defaulted and checked here only.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable

from . import defaults as d
from ._cli import (fraction, nonneg_float, positive_float, positive_int, sample_length_int,
                   seed_int)


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
    hidden_size=Setting(d.HIDDEN_SIZE, positive_int, "H", "size of the hidden layer"),
    seq_length=Setting(d.SEQ_LENGTH, positive_int, "T",
                       "characters per chunk, the steps BPTT unrolls"),
    batch_size=Setting(d.BATCH_SIZE, positive_int, "B",
                       "parallel streams: the training text is cut into B contiguous parts, "
                       "stream b reads part b in chunks of T with its own hidden state, and one "
                       "step averages the B streams' gradients (char-rnn's -batch_size); 1 is "
                       "exactly min-char-rnn"),
    learning_rate=Setting(d.LEARNING_RATE, positive_float, "LR", "Adagrad learning rate"),
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
MODEL_SETTINGS = ("hidden_size", "seq_length", "batch_size", "learning_rate", "iters", "seed",
                  "val_fraction")
OUTPUT_SETTINGS = ("sample_every", "sample_length", "temperature", "eval_every")


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


def complete(given: dict | None = None, stored: dict | None = None) -> dict:
    """Every setting: ``given`` (checked), else ``stored`` (a checkpoint's;
    checked), else the default. ValueError names an unknown or bad value."""
    given, stored = dict(given or {}), dict(stored or {})
    unknown = sorted(set(given) - set(SETTINGS))
    if unknown:
        raise ValueError(f"unknown setting {unknown[0]!r} (settings: {', '.join(SETTINGS)})")
    out = {}
    for name, setting in SETTINGS.items():
        if given.get(name) is not None:
            out[name] = check(name, given[name])
        elif stored.get(name) is not None:
            try:
                out[name] = check(name, stored[name])
            except ValueError as exc:
                raise ValueError(f"stored {exc}") from None
        else:
            out[name] = setting.default
    return out


def add_setting_flags(group, names) -> None:
    """The flags of these settings (charrnn_ext.settings), default None: a
    value not given comes from the checkpoint when resuming, else the default."""
    for name in names:
        s = SETTINGS[name]
        group.add_argument(s.flag, dest=name, type=s.parse, metavar=s.metavar,
                           help=f"{s.help} (default: {s.default})")
