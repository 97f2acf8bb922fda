"""A sweep's output directory: results.csv, each run's files, the table of results."""
from __future__ import annotations

import argparse
import csv
import io
import math
import os
import tempfile
import time

from .._runlock import RunLock
from ..errors import InputError, OutputError
from ..ckpt._ckptfile import write_atomic
from ..core.settings import RECIPES, SETTINGS


RESULTS = "results.csv"
_BEFORE_RECIPES = {**RECIPES["min-char-rnn"], "recipe": "min-char-rnn"}


SAVE_EVERY = 1.0              # seconds between rewrites of results.csv while runs finish


METRICS = ("train_bpc", "val_bpc", "best_val_bpc", "best_iteration", "iterations",
           "steps_per_s", "wall_s")


def write_bytes(path: str, data: bytes) -> None:
    """data to path atomically (a reader, or a crash, never sees a partial file)."""
    write_atomic(path, lambda f: f.write(data))


def _sort_key(row: dict):
    """Best run first: by validation bits/char; runs without one after, by
    training bits/char."""
    val, tr = row.get("val_bpc"), row.get("train_bpc")
    return (val is None, val if val is not None else 0.0, tr is None, tr or 0.0, row["run"])


class Results:
    """DIR/results.csv: one row per finished run, best first, rewritten
    atomically as runs finish (at most every SAVE_EVERY seconds) and at the
    end."""

    def __init__(self, directory: str, columns: list[str]):
        self.path = os.path.join(directory, RESULTS)
        self.columns = ["run", *columns, *METRICS, "input_sha256"]
        self.rows: dict[str, dict] = {}
        self.extra: list[str] = []  # columns of an existing file this version does not write
        self.unsaved, self._saved_at = False, -math.inf

    def load(self, settings: dict) -> None:
        if not os.path.exists(self.path):
            return
        try:
            with open(self.path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                header = reader.fieldnames or []
                if "run" not in header or "input_sha256" not in header:
                    raise InputError(f"{self.path} is not a results file of charrnn-sweep (no "
                                     f"'run' and 'input_sha256' columns); use another --out")
                self.extra = [c for c in header if c not in self.columns]
                for line, rec in enumerate(reader, start=2):
                    row = {"run": rec["run"], "input_sha256": rec["input_sha256"]}
                    for key in self.columns[1:-1]:
                        text = rec.get(key) or ""
                        try:
                            if not text:
                                row[key] = None
                            elif key in settings:
                                row[key] = settings[key].parse(text)
                            else:
                                row[key] = _number(text)
                        except (argparse.ArgumentTypeError, ValueError) as exc:
                            raise InputError(f"{self.path}, line {line}: {key} {text!r}: {exc}; "
                                             f"use another --out") from None
                    for key in self.extra:
                        row[key] = rec.get(key) or ""
                    self.rows[row["run"]] = row
        except (OSError, csv.Error, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {self.path}: {exc}") from None

    def add(self, row: dict) -> None:
        """Record a finished run; the file is rewritten at most every
        SAVE_EVERY seconds (and by save() at the end), so that a sweep of
        thousands of short runs does not spend its time rewriting it."""
        self.rows[row["run"]] = row
        self.unsaved = True
        if time.monotonic() - self._saved_at >= SAVE_EVERY:
            self.save()

    def sorted_rows(self, names=None) -> list[dict]:
        rows = self.rows.values() if names is None else \
            [self.rows[n] for n in names if n in self.rows]
        return sorted(rows, key=_sort_key)

    def save(self) -> None:
        self.unsaved, self._saved_at = False, time.monotonic()
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns + self.extra)
        for row in self.sorted_rows():
            writer.writerow([_cell(row.get(c)) for c in self.columns + self.extra])
        write_bytes(self.path, buf.getvalue().encode("utf-8"))


def _number(text: str):
    if text == "":
        return None
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_table(rows: list[dict]) -> str:
    """The finished runs as a text table, in the given order."""
    def f(x, spec):
        return "-" if x is None else format(x, spec)

    head = ("run", "val bits/char", "best val (iter)", "train bits/char", "steps/s", "wall s")
    body = [(r["run"], f(r.get("val_bpc"), ".4f"),
             "-" if r.get("best_val_bpc") is None else
             f"{r['best_val_bpc']:.4f} ({r.get('best_iteration')})",
             f(r.get("train_bpc"), ".4f"), f(r.get("steps_per_s"), ".0f"),
             f(r.get("wall_s"), ".1f")) for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = []
    for i, cols in enumerate([head, *body]):
        lines.append("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                               for j, (c, w) in enumerate(zip(cols, widths))).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def prepare_out(directory: str) -> RunLock:
    """Create the output directory if needed, check it can be written, and
    lock it for this sweep (a second sweep into it is refused)."""
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise OutputError(f"--out {directory} exists and is not a directory")
    try:
        os.makedirs(directory, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"--out {directory}: cannot write there "
                          f"({exc.strerror or exc})") from None
    lock = RunLock(os.path.join(directory, RESULTS))
    if not lock.acquire():
        raise OutputError(f"another sweep is writing into --out {directory} ({lock.owner()})")
    return lock


def runs_to_do(runs, results: Results, digest: str, out: str) -> list:
    """The runs without a result in DIR; InputError if DIR holds a run of the
    same name with other settings or another text."""
    todo = []
    for name, settings_ in runs:
        row = results.rows.get(name)
        if row is None or not os.path.exists(os.path.join(out, f"{name}.npz")):
            todo.append((name, settings_))
            continue
        if row["input_sha256"] != digest:
            raise InputError(f"{results.path} holds run {name} trained on another text; use "
                             f"another --out")
        for key, value in settings_.items():
            stored = row.get(key)
            if stored is None:  # a column an older results file did not have: its runs
                # were trained before the recipes, with min-char-rnn's
                stored = _BEFORE_RECIPES.get(key, SETTINGS[key].default)
            if stored != value:
                raise InputError(f"{results.path} holds run {name} with {key}={_cell(stored)}, "
                                 f"this sweep asks for {key}={_cell(value)}; use another --out")
    return todo


def row_of(name: str, settings_: dict, res: dict, digest: str) -> dict:
    row = {"run": name, **settings_, "input_sha256": digest}
    for key in METRICS:
        row[key] = res.get(key)
    return row


def keep(out: str, res: dict) -> None:
    """A finished run's files into DIR, each written atomically."""
    name = res["name"]
    write_bytes(os.path.join(out, f"{name}.npz"), res["checkpoint"])
    best = os.path.join(out, f"{name}.best.npz")
    if res.get("best") is not None:
        write_bytes(best, res["best"])
    elif os.path.exists(best):  # from an earlier run of this name with other settings
        os.unlink(best)
    write_bytes(os.path.join(out, f"{name}.log"), res["log"].encode("utf-8"))


def summarize(row: dict) -> str:
    parts = []
    if row.get("val_bpc") is not None:
        parts.append(f"val {row['val_bpc']:.4f} bits/char")
    if row.get("best_val_bpc") is not None:
        parts.append(f"best {row['best_val_bpc']:.4f} at {row['best_iteration']}")
    if row.get("train_bpc") is not None:
        parts.append(f"train {row['train_bpc']:.4f}")
    parts.append(f"{row['steps_per_s']:.0f} steps/s, {row['wall_s']:.1f} s")
    return ", ".join(parts)
