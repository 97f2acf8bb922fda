"""Shared helpers of the charrnn_ext test suite.

Where a test goes: one file per unit (the core's kernels, the model's API,
the data pass, evaluation, checkpoints, each command, the sweep, ...);
tests/README.md has the table ("a test of X goes in file Y") and how to run
a subset. What more than one file needs lives here, once, with one meaning
per name:

  * comparisons and tolerances: rel_err, assert_close, same_loss, RTOL,
    TRAIN_RTOL, same_model, model_state / assert_model_unchanged;
  * random problems: random_params, random_memory, random_chunk, copy_dict,
    random_model, id_lists; odd arrays: float128_array (and HAS_FLOAT128),
    masked_array;
  * generated texts: english_like_text, cjk_text (Zipfian, "real-looking"),
    sentence_text, hanzi_text (short sentences of a few words: the CLI's);
  * the oracles: data_pass / data_pass_end (min-char-rnn's data pass, the
    one written-out copy of its wrap rule), reference_train_step (one
    stream or B), reference_hidden_after, reference_probs (and
    charrnn_ext.core.reference, the numpy seed);
  * the commands as subprocesses (of the charrnn_ext imported here: ENV
    puts its source tree on their PYTHONPATH): run_cli, run_many,
    start_training, wait_for_line, interrupt, sha, ENV, the flags of small
    runs (TINY_FLAGS, SMALL_FLAGS), assert_cli_refusal, and what runs leave: assert_same_state,
    progress_lines;
  * checkpoints: trained_checkpoint (ADAM_EMBED: with Adam and an input
    embedding), new_checkpoint (and their files: saved_trained, saved_adam,
    saved_new), rewrite_archive, assert_load_refused;
  * fixtures: restore_threads, cli_texts, tiny_run, long_run (session-wide
    runs of the train command, made once), text_dir, text_dir_20k.

The tests run against the *installed* package (``pip install .`` then
``pytest`` from the repository root): ``tests/`` has no ``__init__.py``, so
pytest puts ``tests/`` (not the repository root) on ``sys.path`` and
``import charrnn_ext`` finds the compiled package in site-packages; with
``PYTHONPATH=<a source tree built in place>`` they run against that tree,
and so do the commands they start (ENV). Helpers are imported by the test
modules with ``from conftest import ...``.

Nothing here reads ../shared/data: the "real-looking" texts are generated.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import settings
from threadpoolctl import threadpool_limits

import charrnn_ext
from charrnn_ext import CharRNN, Checkpoint, Vocab, load_checkpoint
from charrnn_ext.core import reference
from charrnn_ext.core.spec import PARAM_NAMES, param_shapes

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
# comparisons and tolerances
# ---------------------------------------------------------------------------

RTOL = 1e-10        # the core vs the reference: loss, gradients, hidden states
# Parameters and memory after a fused step: Adagrad's first step from zero
# memory multiplies a gradient's absolute rounding error by up to
# lr / sqrt(1e-8) = 1e3, so the bound is 1e-9.
TRAIN_RTOL = 1e-9


def rel_err(a, b) -> float:
    """max|a - b| / max|b| (max|a - b| when b is all zero): a relative error
    that is meaningful for arrays with entries of very different sizes."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return diff / scale if scale > 0 else diff


def worst_difference_error(params: dict, grads: dict, loss_at, eps: float, per_name: int,
                           rng: np.random.Generator) -> float:
    """The largest |numeric - grads| / max(1, |numeric|) over ``per_name`` random
    entries of each parameter, numeric the central difference of loss_at()
    (read with params[name] changed in place by +-eps, then restored)."""
    worst = 0.0
    for name in params:
        flat = params[name].reshape(-1)
        for i in rng.choice(flat.size, min(flat.size, per_name), replace=False):
            old = flat[i]
            flat[i] = old + eps
            up = loss_at()
            flat[i] = old - eps
            down = loss_at()
            flat[i] = old
            numeric = (up - down) / (2 * eps)
            worst = max(worst, abs(numeric - grads[name].reshape(-1)[i]) / max(1.0, abs(numeric)))
    return worst


def assert_reads_alike(a, b, ids, rtol: float) -> None:
    """Model b (float32) reads ``ids`` as model a (float64) does, to rtol:
    advance, trace's states (b's in float32) and probabilities (10 rtol), and
    the same greedy sample from a's state."""
    assert_close(b.advance(ids), a.advance(ids), rtol, "advance")
    (hs_a, ps_a), (hs_b, ps_b) = a.trace(ids), b.trace(ids)
    assert hs_b.dtype == np.float32
    assert_close(hs_b, hs_a, rtol, "trace states")
    assert_close(ps_b, ps_a, 10 * rtol, "trace probabilities")
    h = a.advance(ids)
    assert list(a.sample(h, 3, 40, temperature=0)) == list(b.sample(h, 3, 40, temperature=0))


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


def same_loss(a, b, steps, rtol=RTOL):
    """Relative, with an absolute floor of 1e-15 per step: a nearly certain
    prediction has a loss like 1e-7 = log(1 + 1e-7), whose rounding error
    (~1e-16 absolute, in any implementation) is large relative to it."""
    assert np.isfinite(a) and np.isfinite(b)
    assert abs(a - b) <= rtol * abs(b) + 1e-15 * steps, (a, b)


def same_model(a, b) -> bool:
    """Two CharRNNs hold bit-identical parameters (an input embedding's too)
    and optimiser state: the Adagrad memory, or Adam's moments and step count."""
    if (a.optimizer, a.embedding_size, a.adam_steps) != (b.optimizer, b.embedding_size,
                                                         b.adam_steps):
        return False
    if set(a.params) != set(b.params) or set(a.moment) != set(b.moment):
        return False
    return all(np.array_equal(a.params[n], b.params[n]) and np.array_equal(a.memory[n], b.memory[n])
               for n in a.params) and \
        all(np.array_equal(a.moment[n], b.moment[n]) for n in a.moment)


def model_state(model) -> dict:
    """Copies of everything a call could change: params, memory and grads."""
    return {(kind, n): getattr(model, kind)[n].copy()
            for kind in ("params", "memory", "grads") for n in PARAM_NAMES}


def assert_model_unchanged(model, before: dict, skip=()) -> None:
    """The model holds what ``model_state`` copied (NaN equal to NaN), but
    for the keys in ``skip``."""
    after = model_state(model)
    for key, value in before.items():
        if key not in skip:
            assert np.array_equal(after[key], value, equal_nan=True), key


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


def random_model(V: int, H: int, seed: int):
    """CharRNN(V, H, seed=seed) whose parameters are then set, in place, to
    randn * 0.3 (a default_rng(seed) draw): larger than the init's."""
    rng = np.random.default_rng(seed)
    model = CharRNN(V, H, seed=seed)
    for arr in model.params.values():
        arr[...] = rng.standard_normal(arr.shape) * 0.3
    return model


HAS_FLOAT128 = np.finfo(np.longdouble).maxexp > np.finfo(np.float64).maxexp  # holds 1e400


def float128_array(shape):
    """Zeros of numpy's long double, 1e400 first (inf once cast to float64
    where long double is wider than it: see HAS_FLOAT128)."""
    arr = np.zeros(shape, dtype=np.longdouble)
    arr.flat[0] = np.longdouble("1e400")
    return arr


def masked_array(shape):
    """A masked array whose every entry is masked (1e300 underneath)."""
    return np.ma.masked_array(np.full(shape, 1e300), mask=True)


def id_lists(ids) -> list:
    """The rows of a (B, T) array of ids as lists of ints, as reference.batch_* take them."""
    return [list(map(int, row)) for row in ids]


# ---------------------------------------------------------------------------
# generated texts
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


_WORDS = ("the quick brown fox jumps over a lazy dog while seven small birds sing "
          "in tall green trees and old men read their morning papers").split()
_HANZI = "我们的生活中有很多美好事物幸福之路在这里人与自然和谐相处学习工作读书"


def sentence_text(n_sentences=60, seed=0) -> str:
    """Short English sentences of 21 common words (every letter of "The
    quick" among them, no 'Z'), three to a line."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n_sentences):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 9))]
        sentences.append(" ".join(words).capitalize() + ".")
    return "\n".join(" ".join(sentences[i:i + 3]) for i in range(0, len(sentences), 3)) + "\n"


def hanzi_text(n_sentences=60, seed=1) -> str:
    """Short Chinese sentences of 35 hanzi (我 and 们 among them) and
    full-width punctuation, on one line."""
    rng = random.Random(seed)
    return "".join("".join(rng.choice(_HANZI) for _ in range(rng.randint(5, 12)))
                   + rng.choice("，。！？") for _ in range(n_sentences)) + "\n"


# ---------------------------------------------------------------------------
# the oracles: min-char-rnn's data pass, and the seed's numpy code
# ---------------------------------------------------------------------------

def _pass_positions(part: int, seq_length: int, steps: int, position=None):
    """(p, reset) of each step of the data pass over parts of ``part`` ids:
    the one written-out copy of min-char-rnn's wrap rule in the tests."""
    p = 0 if position is None else position
    for n in range(steps):
        reset = (position is None and n == 0) or p + seq_length + 1 >= part
        if reset:
            p = 0
        yield p, reset
        p += seq_length


def data_pass(ids, seq_length: int, steps: int, streams=None, position=None):
    """min-char-rnn's data pass, written out without the library: the oracle
    of model.train, of the train command's steps and of evaluation's start.

    B streams (``streams``; None is min-char-rnn's one) cut the ids into B
    parts of part = len(ids) // B (the last len(ids) % B ids are never
    read). Before each step n, every stream goes back to position p = 0 with
    a zero hidden state when ``n == 0 or p + T + 1 >= part`` (min-char-rnn's
    ``if p+seq_length+1 >= len(data) or n == 0``); then stream b reads the
    inputs ids[b*part + p : b*part + p + T], the targets one later, and p
    advances by T. ``position``: a pass that goes on from there (as
    model.train(..., position=p) does: no reset at n == 0, only where the
    chunk does not fit).

    Yields (inputs, targets, reset) for ``steps`` steps: inputs and targets
    of shape (T,) when ``streams`` is None, (B, T) otherwise; ``reset``: the
    step starts from zero hidden states. data_pass_end gives the position
    after them."""
    ids = np.asarray(ids)
    B = 1 if streams is None else streams
    part = len(ids) // B
    for p, reset in _pass_positions(part, seq_length, steps, position):
        rows = np.stack([ids[b * part + p: b * part + p + seq_length + 1] for b in range(B)])
        inputs, targets = rows[:, :-1], rows[:, 1:]
        yield (inputs[0], targets[0], reset) if streams is None else (inputs, targets, reset)


def data_pass_end(n_ids: int, seq_length: int, steps: int, streams=None, position=None) -> int:
    """The position after ``steps`` steps of data_pass over ``n_ids`` ids
    (what model.train returns, and a checkpoint stores)."""
    part = n_ids // (1 if streams is None else streams)
    p = 0 if position is None else position
    for p, _ in _pass_positions(part, seq_length, steps, position):
        pass
    return p + seq_length if steps else p


def reference_train_step(inputs, targets, hprev, params, memory, learning_rate):
    """The numpy reference's training step (lossFun + Adagrad, updating
    ``params`` and ``memory`` in place) on one stream (inputs and targets of
    shape (T,)) or on B streams ((B, T): reference.batch_train_step).
    Returns (loss, h)."""
    if np.ndim(inputs) == 2:
        return reference.batch_train_step(id_lists(inputs), id_lists(targets), hprev, params,
                                          memory, learning_rate)
    return reference.train_step(list(inputs), list(targets), hprev, params, memory, learning_rate)


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


# ---------------------------------------------------------------------------
# threads
# ---------------------------------------------------------------------------

@pytest.fixture
def restore_threads():
    """Puts charrnn_ext's thread count back after a test that sets it."""
    before = charrnn_ext.get_num_threads()
    yield
    charrnn_ext.set_num_threads(before)


# ---------------------------------------------------------------------------
# the command-line tools, run as subprocesses
# ---------------------------------------------------------------------------

ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COLUMNS")}
ENV.update(PYTHONIOENCODING="utf-8", PYTHONUNBUFFERED="1")
# The subprocesses import the charrnn_ext this process imported: the installed one, or a
# source tree put first on the path (PYTHONPATH=<worktree>), never the other.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(charrnn_ext.__file__)))
if not any(part in _ROOT for part in ("site-packages", "dist-packages")):
    ENV["PYTHONPATH"] = _ROOT

# charrnn-train flags of small runs (tests assert on these sizes)
TINY_FLAGS = ("--hidden-size", 12, "--seq-length", 16, "--sample-length", 24)
SMALL_FLAGS = ("--hidden-size", 16, "--seq-length", 16, "--sample-length", 20)


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


def start_training(cwd, *args, stdout=subprocess.PIPE, **kw):
    """``python -m charrnn_ext.train t.txt SMALL_FLAGS args`` started in cwd
    (a Popen; stderr piped, stdin closed)."""
    return subprocess.Popen([sys.executable, "-m", "charrnn_ext.train", "t.txt",
                             *map(str, SMALL_FLAGS), *map(str, args)], cwd=cwd, env=ENV,
                            stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE, **kw)


def wait_for_line(proc, prefix: bytes):
    """Reads proc's stdout up to a line starting with ``prefix``."""
    for line in proc.stdout:
        if line.startswith(prefix):
            return
    raise AssertionError(f"no line starting with {prefix!r}")


def interrupt(proc, timeout):
    """Ctrl-C (SIGINT) to a running command, then its output to the end:
    (stdout, stderr, the seconds it took to end)."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=timeout)
    return out, err, time.monotonic() - t0


def assert_same_state(a, b, resumed=False):
    """Two checkpoints hold bit-identical training states. ``resumed``: b
    was stopped and resumed, so it also holds the evaluations made at the
    end of its first run (every run ends with one); a's must be among them."""
    assert same_model(a.model, b.model)
    assert np.array_equal(a.hidden, b.hidden)
    assert (a.iteration, a.position) == (b.iteration, b.position)
    assert a.smooth_loss == b.smooth_loss
    assert (a.interval_loss, a.interval_steps) == (b.interval_loss, b.interval_steps)
    assert a.rng.bit_generator.state == b.rng.bit_generator.state
    for key in ("iteration", "smooth_loss", "interval_bpc"):
        assert np.array_equal(a.history[key], b.history[key]), key
    if not resumed:
        for key in ("val_iteration", "val_bpc", "train_bpc"):
            assert np.array_equal(a.history[key], b.history[key], equal_nan=True), key
        assert (a.best_val_bpc, a.best_iteration) == (b.best_val_bpc, b.best_iteration)
        return
    where = np.searchsorted(b.history["val_iteration"], a.history["val_iteration"])
    assert np.array_equal(b.history["val_iteration"][where], a.history["val_iteration"])
    for key in ("val_bpc", "train_bpc"):
        assert np.array_equal(b.history[key][where], a.history[key], equal_nan=True), key


def progress_lines(stdout):
    """The lines a run prints while training: samples, ---- and iter lines."""
    body = stdout.split("\n----\nsummary:")[0]
    start = body.index("----")
    return body[start:].splitlines()


def assert_cli_refusal(result, *words):
    """A run_cli result that is a refusal: exit status 2 and one line on
    stderr (no traceback; warnings aside) holding ``words``."""
    code, _, err = result
    lines = [line for line in err.splitlines() if "warning:" not in line]
    assert code == 2 and "Traceback" not in err and len(lines) == 1, (code, err[-2000:])
    for word in words:
        assert word in lines[0], lines[0]


# ---------------------------------------------------------------------------
# checkpoints and their files
# ---------------------------------------------------------------------------

CHECKPOINT_TEXT = "hello world, 你好世界! the quick brown fox. " * 20   # trained_checkpoint's
# the batched recipe's kind of model (Adam, an input embedding, PyTorch's init), small
ADAM_EMBED = {"optimizer": "adam", "embedding_size": 5, "init": "pytorch"}
_NEW_CHECKPOINT_TEXT = "hello world, the quick brown fox jumps. " * 10


def trained_checkpoint(steps=5, hidden=8, seed=3, **model):
    """A Checkpoint of a model after a few real training steps on
    CHECKPOINT_TEXT (T = 7), with every field set: iteration ``steps``,
    position 7 * steps, an RNG drawn from as training does, a history,
    data_size len(CHECKPOINT_TEXT), data_crc32 123456789, core "baseline".
    ``model``: CharRNN's keywords (optimizer, embedding_size, init; the
    hyperparameters say them too), e.g. ADAM_EMBED."""
    vocab = Vocab.from_text(CHECKPOINT_TEXT)
    ids = vocab.encode(CHECKPOINT_TEXT)
    model_kw, model = model, CharRNN(len(vocab), hidden, seed=seed, **model)
    rng = np.random.default_rng(seed)
    h = np.zeros((hidden, 1))
    for k in range(steps):
        x, y = ids[k * 7:k * 7 + 7], ids[k * 7 + 1:k * 7 + 8]
        model.sample(h, int(x[0]), 5, rng=rng)  # advance the RNG like training does
        _, h = model.train_step(x, y, h, 0.1)
    return Checkpoint(
        model=model, vocab=vocab, iteration=steps, position=steps * 7, hidden=h,
        smooth_loss=12.345678901234567, rng=rng,
        hyperparameters={"seq_length": 7, "learning_rate": 0.1, "hidden_size": hidden,
                         **model_kw},
        history={"iteration": np.array([0, 2]), "smooth_loss": np.array([30.0, 29.5]),
                 "val_iteration": np.array([2]), "val_bpc": np.array([4.25])},
        data_size=len(CHECKPOINT_TEXT), data_crc32=123456789, core="baseline",
    )


def new_checkpoint(rng=None, hidden_size=8, **fields):
    """A Checkpoint of an untrained model (seed 1) with ``fields`` (default:
    smooth_loss 50, seq_length 8, a default_rng(1)), at iteration 0 unless
    ``fields`` say otherwise."""
    vocab = Vocab.from_text(_NEW_CHECKPOINT_TEXT)
    model = CharRNN(len(vocab), hidden_size, seed=1)
    fields.setdefault("smooth_loss", 50.0)
    fields.setdefault("hyperparameters", {"seq_length": 8, "hidden_size": hidden_size})
    return Checkpoint(model=model, vocab=vocab,
                      rng=np.random.default_rng(1) if rng is None else rng, **fields)


@pytest.fixture
def saved_trained(tmp_path):
    """(trained_checkpoint(), the path it is saved at: tmp_path / model.npz)."""
    ckpt = trained_checkpoint()
    path = tmp_path / "model.npz"
    ckpt.save(path)
    return ckpt, path


@pytest.fixture
def saved_adam(tmp_path):
    """(trained_checkpoint(**ADAM_EMBED), the path it is saved at: tmp_path / adam.npz)."""
    ckpt = trained_checkpoint(**ADAM_EMBED)
    path = tmp_path / "adam.npz"
    ckpt.save(path)
    return ckpt, path


@pytest.fixture
def saved_new(tmp_path):
    """The path of new_checkpoint() saved at tmp_path / model.npz."""
    path = tmp_path / "model.npz"
    new_checkpoint().save(path)
    return path


def rewrite_archive(path, target=None, *, edit_state=None, edit_hyper=None, **members):
    """The checkpoint archive at ``path`` written again, in place or to
    ``target``, with ``members`` replaced (a value None removes the member)
    and the JSON members ``state`` / ``hyperparameters`` edited key by key
    (``edit_state`` / ``edit_hyper``: a value None removes the key; the
    string "null" writes JSON null). Returns the path written."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key, edits in (("state", edit_state), ("hyperparameters", edit_hyper)):
        if edits:
            obj = json.loads(str(arrays[key]))
            for k, v in edits.items():
                if v is None:
                    obj.pop(k, None)
                else:
                    obj[k] = None if v == "null" else v
            arrays[key] = np.array(json.dumps(obj))
    for key, value in members.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    target = path if target is None else target
    np.savez(target, **arrays)
    return target


def assert_load_refused(path, *words):
    """load_checkpoint(path) raises a one-line ValueError naming the file and
    ``words`` (looked for in the message less the path: test names are in
    it); returns the message."""
    with pytest.raises(ValueError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    reason = message.replace(str(path), "")
    for word in words:
        assert word in reason, message
    return message


@pytest.fixture(scope="session")
def cli_texts(tmp_path_factory):
    """A directory holding en.txt (sentence_text()) and zh.txt (hanzi_text())."""
    d = tmp_path_factory.mktemp("texts")
    (d / "en.txt").write_text(sentence_text(), encoding="utf-8")
    (d / "zh.txt").write_text(hanzi_text(), encoding="utf-8")
    return d


@pytest.fixture(scope="session")
def tiny_run(cli_texts):
    """(checkpoint path, stdout) of one small English run: 300 iterations of
    TINY_FLAGS on cli_texts/en.txt, samples and evaluations every 100,
    saved as cli_texts/en.npz (and en.best.npz). Tests read it, or copy it."""
    ckpt = cli_texts / "en.npz"
    rc, out, err = run_cli("train", "en.txt", *TINY_FLAGS, "--iters", 300, "--sample-every", 100,
                           "--eval-every", 100, "--checkpoint", ckpt, cwd=cli_texts)
    assert rc == 0, err
    return ckpt, out


@pytest.fixture(scope="session")
def long_run(tmp_path_factory):
    """(directory, stdout) of a model trained for a few thousand iterations on
    generated English (words.txt), through the command users run with its
    default checkpoint names (words.npz, words.best.npz). Tests read it."""
    d = tmp_path_factory.mktemp("long-run")
    (d / "words.txt").write_text(english_like_text(60_000, seed=3), encoding="utf-8")
    rc, out, err = run_cli("train", "words.txt", "--hidden-size", 64, "--iters", 4000,
                           "--sample-every", 1000, "--eval-every", 500, cwd=d)
    assert rc == 0, err
    return d, out


@pytest.fixture
def text_dir(tmp_path):
    """The test's tmp_path, holding t.txt: 8,000 characters of english_like_text."""
    (tmp_path / "t.txt").write_text(english_like_text(8000, seed=1), encoding="utf-8")
    return tmp_path


@pytest.fixture
def text_dir_20k(tmp_path):
    """The test's tmp_path, holding t.txt: 20,000 characters of english_like_text."""
    (tmp_path / "t.txt").write_text(english_like_text(20_000, seed=4), encoding="utf-8")
    return tmp_path
