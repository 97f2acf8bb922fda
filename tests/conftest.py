"""Shared helpers of the charrnn_ext test suite.

The tests run against the *installed* package (``pip install .`` then
``pytest`` from the repository root): ``tests/`` has no ``__init__.py``, so
pytest puts ``tests/`` (not the repository root) on ``sys.path`` and
``import charrnn_ext`` finds the compiled package in site-packages. Helpers
are imported by the test modules with ``from conftest import ...``.

Nothing here reads /work/shared/data: the "real-looking" texts are generated.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import settings
from threadpoolctl import threadpool_limits

import charrnn_ext
from charrnn_ext import reference
from charrnn_ext.spec import PARAM_NAMES, param_shapes

# Hypothesis: no example database written into the repository, no deadline
# (the first call of a shape may allocate), modest example counts.
# CHARRNN_HYPOTHESIS=thorough runs many more examples (a few minutes).
settings.register_profile("charrnn", database=None, deadline=None, max_examples=40)
settings.register_profile("thorough", database=None, deadline=None, max_examples=1500)
settings.load_profile(os.environ.get("CHARRNN_HYPOTHESIS", "charrnn"))


@pytest.fixture(scope="session", autouse=True)
def _single_threaded_blas():
    """One BLAS thread: the tests' products are small, and on a loaded
    machine OpenBLAS's spinning threads make them up to ~50x slower.
    Results do not depend on it (CHARRNN_TEST_BLAS_THREADS overrides)."""
    limit = os.environ.get("CHARRNN_TEST_BLAS_THREADS", "1")
    with threadpool_limits(limits=None if limit == "default" else int(limit), user_api="blas"):
        yield


def pytest_report_header(config):
    return f"charrnn_ext {charrnn_ext.__version__} from {charrnn_ext.__file__}"


# ---------------------------------------------------------------------------
# comparisons
# ---------------------------------------------------------------------------

def rel_err(a, b) -> float:
    """max|a - b| / max|b| (max|a - b| when b is all zero): a relative error
    that is meaningful for arrays with entries of very different sizes."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return diff / scale if scale > 0 else diff


def assert_close(actual, expected, rtol: float, what: str = "") -> None:
    """``actual`` equals ``expected`` within ``rtol`` relative to the scale of
    ``expected``: both max|a-b| <= rtol * max|b| and, elementwise,
    |a-b| <= rtol * |b| + rtol * max|b| (atol tied to the array's scale)."""
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    assert a.shape == b.shape, f"{what}: shapes differ: {a.shape} vs {b.shape}"
    assert np.all(np.isfinite(a)), f"{what}: non-finite values"
    err = rel_err(a, b)
    assert err <= rtol, f"{what}: relative error {err:.3e} > {rtol:.1e}"
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    atol = rtol * scale if scale > 0 else rtol
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)


def assert_dicts_close(actual: dict, expected: dict, rtol: float, what: str = "") -> None:
    assert set(actual) == set(PARAM_NAMES), f"{what}: keys {sorted(actual)}"
    assert set(expected) == set(PARAM_NAMES), f"{what}: keys {sorted(expected)}"
    for name in PARAM_NAMES:
        assert actual[name].shape == param_shapes(*vocab_hidden(expected))[name], f"{what}[{name}] shape"
        assert_close(actual[name], expected[name], rtol, f"{what}[{name}]")


def vocab_hidden(params: dict):
    """(V, H) of a parameter dict."""
    return params["Why"].shape[0], params["Whh"].shape[0]


# ---------------------------------------------------------------------------
# random problems
# ---------------------------------------------------------------------------

def random_params(V: int, H: int, rng: np.random.Generator, scale=0.1) -> dict:
    """Random parameters (biases non-zero too). ``scale`` is a float or a dict
    name -> float."""
    shapes = param_shapes(V, H)
    scales = scale if isinstance(scale, dict) else {n: scale for n in PARAM_NAMES}
    return {n: rng.standard_normal(shapes[n]) * scales[n] for n in PARAM_NAMES}


def random_memory(V: int, H: int, rng: np.random.Generator, scale=1.0) -> dict:
    """A non-negative Adagrad memory (sums of squares)."""
    shapes = param_shapes(V, H)
    return {n: rng.standard_normal(shapes[n]) ** 2 * scale for n in PARAM_NAMES}


def random_chunk(V: int, T: int, rng: np.random.Generator):
    return rng.integers(0, V, T), rng.integers(0, V, T)


def copy_dict(d: dict) -> dict:
    return {k: np.array(v, copy=True) for k, v in d.items()}


# ---------------------------------------------------------------------------
# "real-looking" generated texts
# ---------------------------------------------------------------------------

_SYLLABLES = ("th", "e", "an", "re", "in", "on", "er", "at", "st", "ou", "ing", "ed",
              "a", "o", "i", "u", "s", "t", "l", "m", "n", "w", "h", "b", "c", "k",
              "ch", "sh", "wh", "ea", "oo", "ly", "tion", "nd", "ll", "p", "g", "y")


def english_like_text(n_chars: int, seed: int = 0) -> str:
    """English-looking text: words of Zipf-distributed syllables, capitals
    after full stops, commas, and line breaks."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(_SYLLABLES) + 1)
    weights /= weights.sum()
    words = []
    for _ in range(400):  # a lexicon of 400 words
        k = int(rng.integers(1, 4))
        words.append("".join(_SYLLABLES[i] for i in rng.choice(len(_SYLLABLES), k, p=weights)))
    zipf = 1.0 / np.arange(1, len(words) + 1) ** 1.1
    zipf /= zipf.sum()
    out, length, capital = [], 0, True
    while length < n_chars:
        w = words[int(rng.choice(len(words), p=zipf))]
        if capital:
            w = w.capitalize()
            capital = False
        r = rng.random()
        if r < 0.08:
            w += "."
            capital = True
        elif r < 0.14:
            w += ","
        sep = "\n" if (capital and rng.random() < 0.3) else " "
        out.append(w + sep)
        length += len(w) + 1
    return "".join(out)[:n_chars]


def cjk_text(n_chars: int, n_distinct: int = 300, seed: int = 0) -> str:
    """Chinese-looking text over ``n_distinct`` CJK ideographs (Zipfian use)
    plus CJK punctuation and line breaks."""
    rng = np.random.default_rng(seed)
    chars = [chr(c) for c in rng.choice(np.arange(0x4E00, 0x9FA5), n_distinct, replace=False)]
    zipf = 1.0 / np.arange(1, n_distinct + 1)
    zipf /= zipf.sum()
    out = []
    while len(out) < n_chars:
        n = int(rng.integers(3, 15))
        out.extend(chars[i] for i in rng.choice(n_distinct, n, p=zipf))
        out.append("，" if rng.random() < 0.6 else "。")
        if rng.random() < 0.1:
            out.append("\n")
    return "".join(out[:n_chars])


def data_pass(ids: np.ndarray, seq_length: int, n_steps: int):
    """The seed's data pass: chunks of seq_length left to right; the hidden
    state is reset (and p goes back to 0) when the next chunk would not fit.
    Yields (inputs, targets, reset) for n_steps iterations."""
    p = 0
    for n in range(n_steps):
        reset = n == 0 or p + seq_length + 1 >= len(ids)
        if reset:
            p = 0
        yield ids[p:p + seq_length], ids[p + 1:p + seq_length + 1], reset
        p += seq_length


# ---------------------------------------------------------------------------
# the reference, as the oracle
# ---------------------------------------------------------------------------

def reference_hidden_after(params: dict, inputs, hprev) -> np.ndarray:
    """The hidden state (H, 1) after reading ``inputs`` from ``hprev``,
    computed the seed's way (one-hot products)."""
    Wxh, Whh, bh = params["Wxh"], params["Whh"], params["bh"]
    V = Wxh.shape[1]
    h = np.array(hprev, dtype=np.float64).reshape(-1, 1)
    for ix in inputs:
        x = np.zeros((V, 1))
        x[ix] = 1
        h = np.tanh(Wxh @ x + Whh @ h + bh.reshape(-1, 1))
    return h


def reference_probs(params: dict, h, seed_ix, temperature=1.0) -> np.ndarray:
    """softmax(y / T) of the first sampling step from hidden state h and input seed_ix."""
    h1 = reference_hidden_after(params, [seed_ix], h)
    y = (params["Why"] @ h1 + params["by"].reshape(-1, 1)).ravel()
    z = (y - y.max()) / temperature
    p = np.exp(z)
    return p / p.sum()


__all__ = [
    "rel_err", "assert_close", "assert_dicts_close", "vocab_hidden", "random_params",
    "random_memory", "random_chunk", "copy_dict", "english_like_text", "cjk_text",
    "data_pass", "reference_hidden_after", "reference_probs", "reference",
]


# ---------------------------------------------------------------------------
# the command-line tools, run as subprocesses
# ---------------------------------------------------------------------------

ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COLUMNS")}
ENV.update(PYTHONIOENCODING="utf-8", PYTHONUNBUFFERED="1")


def run_cli(tool, *args, cwd, stdin=None, env=None, timeout=120):
    """Run ``python -m charrnn_ext.<tool> args`` in cwd; returns
    (returncode, stdout, stderr) with the streams decoded as UTF-8."""
    proc = subprocess.run(
        [sys.executable, "-m", f"charrnn_ext.{tool}", *map(str, args)], cwd=cwd,
        input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True, env=env or ENV, timeout=timeout,
    )
    return proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")


def run_many(jobs, cwd):
    """Several CLI runs at once (each is mostly interpreter start-up)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda job: run_cli(*job, cwd=cwd), jobs))


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()
