"""The decaying learning rate: its schedule, and a resumed run's continuation of it."""
from __future__ import annotations

from .._words import count
from ..defaults import LR_WINDOW


def scheduled_rate(n: int, settings: dict, lr_from: tuple | None = None,
                   timed: float = 0.0) -> float:
    """The learning rate of the steps from iteration n: with lr_decay F < 1,
    falling linearly from learning_rate at iteration 0 (or from ``lr_from``,
    (iteration a, rate r), a resumed run's continuation) to F times
    learning_rate at iters, held for LR_WINDOW iterations (the window's start
    decides); ``timed``, the fraction of a time limit spent, when further
    along. F = 1: learning_rate."""
    lr, F, E = settings["learning_rate"], settings["lr_decay"], settings["iters"]
    if F == 1.0:
        return lr
    done = n - n % LR_WINDOW
    if lr_from is None:
        progress = max(done / E, timed)
        return lr * (1.0 - (1.0 - F) * min(progress, 1.0))
    a, r = lr_from
    p = min(max((max(done, a) - a) / (E - a), timed), 1.0) if E > a else 1.0
    return r * (1.0 - p) + lr * F * p     # r at a, exactly the floor at iters


def continued_schedule(state, before: dict, settings: dict, reporter) -> None:
    """A resumed run's learning rate (``state``, the Checkpoint continued,
    its lr_from set): the checkpoint's schedule, when its
    settings (iters, learning_rate, lr_decay) are the run's (then bit for bit
    a straight run); else a line from the rate where it stopped (a new
    learning_rate: that rate) to the new floor at the new iters, said in a note."""
    keys = ("iters", "learning_rate", "lr_decay")
    n = state.iteration
    if settings["lr_decay"] == 1.0 or n >= settings["iters"] \
            or all(before[k] == settings[k] for k in keys):
        return   # (at or past iters: no step to take)
    rate = settings["learning_rate"] if settings["learning_rate"] != before["learning_rate"] \
        else scheduled_rate(n, before, state.lr_from)
    state.lr_from = (n, rate)
    why = [f"the checkpoint's run was planned for {before['iters']}"] \
        if before["iters"] != settings["iters"] else []
    why += [f"{k.replace('_', ' ')} {before[k]:g} before" for k in keys[1:]
            if before[k] != settings[k]]
    E, floor = settings["iters"], settings["learning_rate"] * settings["lr_decay"]
    reporter.note(f"the learning rate goes on from {rate:.3g} at iteration {n} down to "
                  f"{floor:.3g} at iteration {E} ({', '.join(why)}): the result differs from "
                  f"a straight run of {count(E, 'iteration')}")
