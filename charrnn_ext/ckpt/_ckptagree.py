"""A checkpoint's fields checked against each other (charrnn_ext.ckpt.checkpoint reads each alone)."""
from __future__ import annotations

import argparse

import numpy as np

from ..core.datapass import held_out, stream_part
from ..core.settings import SETTINGS, fixed_by
from ..core.spec import CELLS, MAX_LAYERS

# Each field is checked alone above; these are the checks of fields against
# each other. What charrnn-train writes always passes them (its files of every
# version: v1 files have no batch_size, best score or interval sums, and
# data_size 0 in files older than it means "unknown"); a file that fails one
# was edited or damaged, and would resume or sample as something else (a
# hidden of 7 columns is 7 streams whatever batch_size says).

def setting(hyperparameters: dict, key: str, check, what: str | None = None):
    """hyperparameters[key] as charrnn-train reads it on --resume (the command
    line's check of its text), None when absent; ValueError if it is not
    ``what`` (None: the check's own words)."""
    if key not in hyperparameters:
        return None
    value = hyperparameters[key]
    try:
        return check(str(value))
    except (argparse.ArgumentTypeError, ValueError) as exc:  # (ValueError: str() of a huge int)
        if what:
            reason = f"must be {what}"
        elif isinstance(exc, argparse.ArgumentTypeError):   # "must be ..., got <text>"
            reason = str(exc).split(", got ")[0]
        else:
            reason = "is not a number"
        raise ValueError(f"'hyperparameters' {key} {reason}, got {repr(value)[:40]}") from None


# What a stored setting must be, in the words of a refusal (else its check's own words,
# or its choices: settings._choice names them).
_WHAT = {"hidden_size": "a positive integer", "batch_size": "a positive integer",
         "num_layers": f"an integer in [1, {MAX_LAYERS}]", "seq_length": "a positive integer",
         "embedding_size": "a non-negative integer", "val_fraction": "a number in [0, 1)",
         "dropout": "a number in [0, 1)", "cell": "one of " + "|".join(CELLS)}


def _what(name: str) -> str | None:
    parse = SETTINGS[name].parse.__name__
    return _WHAT.get(name) or (parse if parse.startswith("one of ") else None)


def _check_settings(ckpt, B: int) -> dict:
    """Every setting the file stores, as charrnn-train would read it on
    --resume (settings.SETTINGS' checks: unknown keys are left alone); the
    ones the model fixes (settings.fixed_by: sizes, cell, layers, optimizer,
    dtype, streams) must say what its arrays are."""
    hyper = ckpt.hyperparameters
    said = {name: setting(hyper, name, s.parse, _what(name)) for name, s in SETTINGS.items()}
    for name, value in fixed_by(ckpt.model, B).items():
        if said[name] is None or said[name] == value:
            continue
        if name == "batch_size":
            raise ValueError(f"'hidden' holds {B} stream{'s' if B > 1 else ''}, "
                             f"the hyperparameters say batch_size {said[name]}")
        raise ValueError(f"the hyperparameters say {name} {said[name]}, the parameters have "
                         f"{value}")
    return said


def _check_data_pass(ckpt, val_fraction, seq_length) -> None:
    """The data pass's position against the text it was on: stream parts of
    ``part`` characters (datapass: the training text is data_size less the
    held-out tail, cut into B parts; without val_fraction, the largest part
    any could leave). A step at p reads targets p + 1 .. p + T of each part
    and leaves the position at p + T, so at most part - 1 (part - 2 but
    when T = part - 1: model.chunk_wraps), whatever T a resumed run changed
    to. train refuses a text that leaves a part no whole chunk of the
    run's seq_length (training_split), so no such file is saved."""
    N, B = ckpt.data_size, ckpt.hidden.shape[1]
    part = stream_part(N - held_out(N, val_fraction or 0.0), B)
    on = (f"data_size {N}, {'no' if val_fraction is None else val_fraction} val_fraction "
          f"and {B} stream{'s' if B > 1 else ''}")
    need = (seq_length or 1) + 1
    if part < need:
        raise ValueError(f"{on} leave parts of {part} characters, fewer than the "
                         f"seq_length + 1 = {need} a step reads")
    if ckpt.position > part - 1:
        raise ValueError(f"position {ckpt.position} is past the end of the data pass "
                         f"(at most {part - 1} in parts of {part} characters: {on})")


def _check_history(ckpt) -> None:
    """The loss curves against the iteration: a training point closes an
    interval of at least one step, at the iteration reached (version 1: at
    the step's own number, one less), so the points increase, number at most
    one per step, and the open interval counts only the steps since the last;
    evaluations happen at the iteration reached, in order."""
    n, h = ckpt.iteration, ckpt.history
    points, evals = h["iteration"], h["val_iteration"]
    if points.size > n or points.size and (
            points[0] < 0 or points[-1] > n or np.any(points[1:] <= points[:-1])):
        raise ValueError(f"'history.iteration' must increase within [0, {n}] (the iteration), "
                         f"at most one point per step")
    if evals.size and (evals.min() < 0 or evals.max() > n or np.any(evals[1:] < evals[:-1])):
        raise ValueError(f"'history.val_iteration' must not decrease, within [0, {n}] "
                         f"(the iteration)")
    last = int(points[-1]) if points.size else 0
    if ckpt.interval_steps > n - last:
        raise ValueError(f"interval_steps {ckpt.interval_steps} counts steps before the last "
                         f"history point (iteration {last}; the iteration is {n})")


def check_agreement(ckpt) -> None:
    """ValueError naming the first field that disagrees with another."""
    B = ckpt.hidden.shape[1]
    said = _check_settings(ckpt, B)
    seq_length, val_fraction = said["seq_length"], said["val_fraction"]
    if ckpt.data_size:
        _check_data_pass(ckpt, val_fraction, seq_length)
    elif ckpt.data_crc32:
        raise ValueError("data_crc32 is set without data_size (0: no text recorded)")
    if (ckpt.best_val_bpc is None) != (ckpt.best_iteration is None):
        raise ValueError("best_val_bpc and best_iteration must both be set or both be null")
    if ckpt.interval_steps == 0 and ckpt.interval_loss != 0:
        raise ValueError(f"interval_loss {ckpt.interval_loss!r} is the loss of no steps "
                         f"(interval_steps 0)")
    _check_history(ckpt)
