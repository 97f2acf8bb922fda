"""The command-line tools, driven as subprocesses exactly as a user runs them:
``python -m charrnn_ext.train`` and ``python -m charrnn_ext.sample``.

Every run uses a temporary working directory, so the installed package (not
the source tree) is imported, and tiny sizes (hidden 8-16, a few hundred
iterations) on small generated English and Chinese text.
"""
import math
import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from charrnn_ext import CharRNN, Vocab, evaluate, load_checkpoint, reference
from charrnn_ext.spec import PARAM_NAMES, init_params
from conftest import ENV, run_cli, run_many, sha

WORDS = ("the quick brown fox jumps over a lazy dog while seven small birds sing "
         "in tall green trees and old men read their morning papers").split()
HANZI = "我们的生活中有很多美好事物幸福之路在这里人与自然和谐相处学习工作读书"


def english_text(n_sentences=60, seed=0):
    rng = random.Random(seed)
    sentences = []
    for _ in range(n_sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 9))]
        sentences.append(" ".join(words).capitalize() + ".")
    return "\n".join(" ".join(sentences[i:i + 3]) for i in range(0, len(sentences), 3)) + "\n"


def chinese_text(n_sentences=60, seed=1):
    rng = random.Random(seed)
    return "".join("".join(rng.choice(HANZI) for _ in range(rng.randint(5, 12)))
                   + rng.choice("，。！？") for _ in range(n_sentences)) + "\n"


TINY = ["--hidden-size", 12, "--seq-length", 16, "--sample-length", 24]


def assert_same_state(a, b, resumed=False):
    """Two checkpoints hold bit-identical training states. ``resumed``: b
    was stopped and resumed, so it also holds the evaluations made at the
    end of its first run (every run ends with one); a's must be among them."""
    for name in PARAM_NAMES:
        assert np.array_equal(a.model.params[name], b.model.params[name]), name
        assert np.array_equal(a.model.memory[name], b.model.memory[name]), name
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


def timing_free(stdout):
    """The output without the lines that differ between identical runs."""
    return [line for line in stdout.splitlines()
            if not line.startswith(("speed:", "checkpoint:", "saving to", "sample from it:",
                                    "best validation:"))]


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    d = tmp_path_factory.mktemp("texts")
    (d / "en.txt").write_text(english_text(), encoding="utf-8")
    (d / "zh.txt").write_text(chinese_text(), encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def trained(texts):
    """A small English model, trained once, with its stdout."""
    ckpt = texts / "en.npz"
    rc, out, err = run_cli("train", "en.txt", *TINY, "--iters", 300, "--sample-every", 100,
                           "--eval-every", 100, "--checkpoint", ckpt, cwd=texts)
    assert rc == 0, err
    return ckpt, out


# ---------------------------------------------------------------------------
# training: output, data pass, determinism
# ---------------------------------------------------------------------------

def test_train_output_format(texts, trained):
    ckpt_path, out = trained
    text = (texts / "en.txt").read_text(encoding="utf-8")
    lines = out.splitlines()
    V = len(set(text))
    assert lines[0] == f"data has {len(text)} characters, {V} unique."
    n_val = int(len(text) * 0.05)
    assert lines[1] == (f"training on {len(text) - n_val} characters, validating on the last "
                        f"{n_val} (--val-fraction 0.05)")
    # samples of --sample-length characters between ---- lines, as in the seed
    samples = re.findall(r"^----\n (.*?) \n----$", out, flags=re.M | re.S)
    assert len(samples) == 3
    assert all(len(s) == 24 and set(s) <= set(text) for s in samples)
    iters = re.findall(r"^iter (\d+), loss: (\d+\.\d{6}), val: (\d+\.\d{4}) bits/char$", out, re.M)
    assert [int(i) for i, _, _ in iters] == [0, 100, 200]
    losses = [float(x) for _, x, _ in iters]
    assert losses[0] > losses[1] > losses[2]  # the smoothed loss goes down
    # the smoothed loss after the first step: -log(1/V) * T * 0.999 + loss0 * 0.001
    ids = Vocab.from_text(text).encode(text)
    loss0 = CharRNN(V, 12, seed=0).loss(ids[:16], ids[1:17], None)
    assert iters[0][1] == "%f" % (-math.log(1.0 / V) * 16 * 0.999 + loss0 * 0.001)
    assert float(iters[2][2]) < float(iters[0][2]) < math.log2(V) + 0.01
    # the summary
    m = re.search(r"^summary: 300 iterations, smoothed loss (\S+) \((\S+) bits/char\)$", out, re.M)
    assert m and math.isclose(float(m.group(2)), float(m.group(1)) / 16 / math.log(2), rel_tol=1e-3)
    ckpt = load_checkpoint(ckpt_path)
    assert float(m.group(1)) == pytest.approx(ckpt.smooth_loss, abs=1e-6)
    m = re.search(r"^bits per character, continuing from the trained state: train (\S+) "
                  r"\(last (\d+) training characters\), validation (\S+) "
                  r"\(first (\d+) held-out characters\)$", out, re.M)
    n_train = len(text) - n_val
    # the training characters read from where training stands (one stream) to the held-out text
    assert m and int(m.group(2)) == min(n_train - 1 - ckpt.position, 10_000) and int(m.group(4)) == n_val
    scores = evaluate(ckpt.model, ids, n_train, ckpt.hidden, ckpt.position)  # the saved state
    assert float(m.group(1)) == pytest.approx(scores.train_bpc, abs=1e-4)
    assert float(m.group(3)) == pytest.approx(scores.val_bpc, abs=1e-4)
    assert ckpt.history["val_iteration"][-1] == 300 and ckpt.history["val_bpc"][-1] == scores.val_bpc
    # the best model kept beside the checkpoint scores what the summary says
    m = re.search(r"^best validation: (\S+) bits/char at iteration (\d+), kept in (\S+)$", out, re.M)
    assert m and m.group(3) == str(texts / "en.best.npz")
    best = load_checkpoint(m.group(3))
    assert best.iteration == int(m.group(2)) == ckpt.best_iteration
    assert best.best_val_bpc == ckpt.best_val_bpc == min(ckpt.history["val_bpc"])
    assert evaluate(best.model, ids, n_train, best.hidden, best.position).val_bpc == best.best_val_bpc
    assert float(m.group(1)) == pytest.approx(best.best_val_bpc, abs=1e-4)
    assert re.search(r"^speed: 300 steps in \S+ s, \S+ steps/s \(and \S+ s evaluating\)$", out, re.M)
    assert f"checkpoint: {ckpt_path} (iteration 300)" in lines
    assert lines[-1] == f"sample from it: python -m charrnn_ext.sample {ckpt_path}"
    assert ckpt.iteration == 300 and ckpt.model.hidden_size == 12


def test_data_pass_matches_the_seed_and_the_reference(texts, tmp_path):
    """The CLI's steps are the seed's loop: chunks left to right, hidden state
    carried, reset at the end of the (training part of the) text. Replayed
    in-process with the numpy reference, from the same start, they agree;
    replayed with CharRNN they agree bit for bit."""
    text = (texts / "en.txt").read_text(encoding="utf-8")
    T, H, steps = 40, 8, 120
    rc, _, err = run_cli("train", texts / "en.txt", "--hidden-size", H, "--seq-length", T,
                         "--iters", steps, "--val-fraction", 0.1, "--seed", 7,
                         "--checkpoint", "c.npz", cwd=tmp_path)
    assert rc == 0, err
    ckpt = load_checkpoint(tmp_path / "c.npz")
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    data = ids[:len(ids) - int(len(ids) * 0.1)]
    assert steps * T > 2 * len(data)  # the pass wraps around at least twice
    ref_params = init_params(len(vocab), H, seed=7)
    ref_memory = {k: np.zeros_like(v) for k, v in ref_params.items()}
    model = CharRNN(len(vocab), H, seed=7)
    p, h_ref, h = 0, None, None
    with threadpool_limits(limits=1):
        for n in range(steps):
            if p + T + 1 >= len(data) or n == 0:
                h_ref, h, p = np.zeros((H, 1)), np.zeros((H, 1)), 0
            x, y = data[p:p + T], data[p + 1:p + T + 1]
            _, h_ref = reference.train_step(list(x), list(y), h_ref, ref_params, ref_memory, 0.1)
            _, h = model.train_step(x, y, h, 0.1)
            p += T
    assert ckpt.position == p
    assert np.array_equal(ckpt.hidden, h)
    for name in PARAM_NAMES:
        assert np.array_equal(ckpt.model.params[name], model.params[name]), name
        np.testing.assert_allclose(ckpt.model.params[name], ref_params[name], rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(ckpt.model.memory[name], ref_memory[name], rtol=1e-7, atol=1e-10)


def test_same_seed_same_everything(texts, tmp_path):
    args = ["en.txt", *TINY, "--iters", 250, "--sample-every", 50, "--eval-every", 50, "--seed", 3]
    (rc1, out1, _), (rc2, out2, _), (rc3, out3, _) = run_many([
        ("train", *args, "--checkpoint", tmp_path / "a.npz"),
        ("train", *args, "--checkpoint", tmp_path / "b.npz"),
        ("train", *args[:-1], 4, "--checkpoint", tmp_path / "c.npz"),
    ], cwd=texts)
    assert rc1 == rc2 == rc3 == 0
    a, b, c = (load_checkpoint(tmp_path / f"{x}.npz") for x in "abc")
    assert_same_state(a, b)
    assert timing_free(out1) == timing_free(out2)
    assert not np.array_equal(a.model.params["Whh"], c.model.params["Whh"])  # --seed matters
    assert progress_lines(out1) != progress_lines(out3)


def test_threads_flag_does_not_change_results(tmp_path):
    """--threads only spreads a large output layer (V * H >= 131072, here 3
    stripes) over threads: checkpoints and output are bit-identical."""
    rng = random.Random(7)
    alphabet = [chr(0x4E00 + k) for k in range(400)]
    (tmp_path / "big.txt").write_text("".join(rng.choice(alphabet) for _ in range(3000)),
                                      encoding="utf-8")
    args = ["big.txt", "--hidden-size", 400, "--seq-length", 16, "--iters", 30,
            "--sample-every", 10, "--sample-length", 20, "--eval-every", 10]
    runs = run_many([("train", *args, "--threads", n, "--checkpoint", f"t{n}.npz") for n in (1, 2)]
                    + [("train", *args, "--threads", 0),
                       ("train", *args, "--threads", 3_000_000_000, "--checkpoint", "tbig.npz")],
                    cwd=tmp_path)
    (rc1, out1, err1), (rc2, out2, err2), (rc0, _, err0), (rc_big, _, err_big) = runs
    assert rc_big == 0, err_big                     # capped like set_num_threads, not refused
    assert_same_state(load_checkpoint(tmp_path / "t1.npz"), load_checkpoint(tmp_path / "tbig.npz"))
    assert rc1 == 0 and rc2 == 0, (err1, err2)
    assert_same_state(load_checkpoint(tmp_path / "t1.npz"), load_checkpoint(tmp_path / "t2.npz"))
    assert timing_free(out1) == timing_free(out2)
    assert rc0 == 2 and "--threads: must be a positive integer" in err0


def test_chinese_text(texts, tmp_path):
    text = (texts / "zh.txt").read_text(encoding="utf-8")
    rc, out, err = run_cli("train", texts / "zh.txt", *TINY, "--iters", 200, "--sample-every", 100,
                           "--checkpoint", "zh.npz", cwd=tmp_path)
    assert rc == 0, err
    assert out.splitlines()[0] == f"data has {len(text)} characters, {len(set(text))} unique."
    samples = re.findall(r"^----\n (.*?) \n----$", out, flags=re.M | re.S)
    assert len(samples) == 2 and all(len(s) == 24 and set(s) <= set(text) for s in samples)
    ckpt = load_checkpoint(tmp_path / "zh.npz")
    assert ckpt.vocab.chars == "".join(sorted(set(text)))
    rc, out, err = run_cli("sample", "zh.npz", "--prime", "我们", "--length", 30, "--seed", 2,
                           cwd=tmp_path)
    assert rc == 0, err
    assert out.startswith("我们") and len(out) == 2 + 30 + 1
    assert set(out[:-1]) <= set(text)


def test_stdin_input(texts, tmp_path):
    data = (texts / "en.txt").read_bytes()
    rc, out, err = run_cli("train", "-", *TINY, "--iters", 100, "--checkpoint", "s.npz",
                           stdin=data, cwd=tmp_path)
    assert rc == 0, err
    text = data.decode("utf-8")
    assert out.splitlines()[0] == f"data has {len(text)} characters, {len(set(text))} unique."
    assert load_checkpoint(tmp_path / "s.npz").data_size == len(text)


def test_encoding_flag(texts, tmp_path):
    text = (texts / "zh.txt").read_text(encoding="utf-8")
    (tmp_path / "gb.txt").write_bytes(text.encode("gb18030"))
    (rc1, out1, _), (rc2, _, err2) = run_many([
        ("train", "gb.txt", *TINY, "--iters", 5, "--encoding", "gb18030"),
        ("train", "gb.txt", *TINY, "--iters", 5),
    ], cwd=tmp_path)
    assert rc1 == 0 and out1.splitlines()[0] == f"data has {len(text)} characters, {len(set(text))} unique."
    assert rc2 == 2 and "not valid utf-8" in err2 and "--encoding" in err2


def test_default_corpus(tmp_path):
    rc, out, err = run_cli("train", "--iters", 2, "--hidden-size", 8, "--checkpoint", "d.npz",
                           cwd=tmp_path)
    assert rc == 0, err
    first, second = out.splitlines()[:2]
    assert first.startswith("no input file given: training on the built-in demo corpus")
    assert "Python standard library" in first and "argparse" in first
    n_chars = int(re.match(r"data has (\d+) characters", second).group(1))
    assert n_chars > 100_000
    assert load_checkpoint(tmp_path / "d.npz").data_size == n_chars


def test_small_validation_split_disables_validation(tmp_path):
    (tmp_path / "t.txt").write_text("abcdefghij" * 4, encoding="utf-8")  # 40 chars: 5% is 2 chars
    (rc1, out1, err1), (rc2, out2, err2) = run_many([
        ("train", "t.txt", "--seq-length", 8, "--hidden-size", 8, "--iters", 20,
         "--val-fraction", 0.03, "--eval-every", 5),   # 1 held-out char: too few
        ("train", "t.txt", "--seq-length", 8, "--hidden-size", 8, "--iters", 20,
         "--eval-every", 5),                            # 2 held-out chars: one prediction
    ], cwd=tmp_path)
    assert rc1 == 0, err1
    assert "training on 40 characters, no validation" in out1
    assert "validation disabled" in out1 and "val:" not in out1
    assert rc2 == 0, err2
    assert "validating on the last 2" in out2 and "validation " in out2
    assert re.search(r"validation \d+\.\d+ \(first 2 held-out characters\)$", out2, re.M)
    assert "iter 5, loss:" in out2 and ", val: " in out2


def test_help(tmp_path):
    (rc1, out1, _), (rc2, out2, _) = run_many([("train", "--help"), ("sample", "--help")],
                                              cwd=tmp_path)
    assert rc1 == rc2 == 0
    for flag in ("--hidden-size", "--seq-length", "--learning-rate", "--iters", "--sample-every",
                 "--sample-length", "--temperature", "--seed", "--val-fraction", "--checkpoint",
                 "--resume", "--plot", "--encoding", "--eval-every", "--checkpoint-every"):
        assert flag in out1
    flat = " ".join(out1.split())
    assert "(default: 100)" in flat and "(default: 25)" in flat and "(default: 0.1)" in flat
    for flag in ("--length", "--temperature", "--prime", "--seed"):
        assert flag in out2


# ---------------------------------------------------------------------------
# checkpoints: resume, Ctrl-C, divergence
# ---------------------------------------------------------------------------

def test_resume_is_bit_identical(texts, tmp_path):
    """N steps, a resume and N more == 2N steps straight: the full training
    state and the printed samples and losses. The resumed run takes its
    settings from the checkpoint and saves back to the same file."""
    args = ["en.txt", *TINY, "--sample-every", 40, "--eval-every", 80, "--checkpoint-every", 50]
    (rc1, straight, e1), (rc2, first, e2) = run_many([
        ("train", *args, "--iters", 240, "--checkpoint", tmp_path / "a.npz"),
        ("train", *args, "--iters", 120, "--checkpoint", tmp_path / "b.npz"),
    ], cwd=texts)
    assert rc1 == rc2 == 0, e1 + e2
    before = load_checkpoint(tmp_path / "b.npz")
    assert before.iteration == 120
    rc, second, err = run_cli("train", "en.txt", "--resume", tmp_path / "b.npz", "--iters", 240,
                              cwd=texts)
    assert rc == 0, err
    assert f"resuming from {tmp_path / 'b.npz'} at iteration 120" in second
    a, b = load_checkpoint(tmp_path / "a.npz"), load_checkpoint(tmp_path / "b.npz")
    assert b.iteration == 240
    n_train = b.data_size - int(b.data_size * 0.05)
    assert 120 * 16 < n_train < 240 * 16  # the data pass wraps (resets h) after the resume
    assert_same_state(a, b, resumed=True)
    assert progress_lines(first) + progress_lines(second) == progress_lines(straight)


def test_resume_errors(texts, trained, tmp_path):
    ckpt, _ = trained
    (tmp_path / "other.txt").write_text(english_text(seed=5) + "Zebra!\n", encoding="utf-8")
    before = sha(ckpt)
    results = run_many([
        ("train", "other.txt", "--resume", ckpt, "--iters", 400),
        ("train", texts / "en.txt", "--resume", ckpt, "--iters", 400, "--hidden-size", 20),
        ("train", texts / "en.txt", "--resume", ckpt, "--iters", 300),
    ], cwd=tmp_path)
    (rc1, _, err1), (rc2, _, err2), (rc3, out3, _) = results
    assert rc1 == 2 and "vocabulary" in err1 and "'Z'" in err1 and "differs" in err1
    assert rc2 == 2 and "--hidden-size 20 differs" in err2
    assert rc3 == 0 and "nothing to do" in out3
    for _, _, err in results:
        assert "Traceback" not in err and err.count("\n") <= 1
    assert sha(ckpt) == before


def test_ctrl_c_saves_a_resumable_checkpoint(texts, tmp_path):
    cmd = [sys.executable, "-m", "charrnn_ext.train", str(texts / "en.txt"), "--hidden-size", "8",
           "--seq-length", "16", "--iters", str(10**9), "--sample-every", "1000",
           "--eval-every", str(10**6), "--checkpoint", "int.npz"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for line in proc.stdout:  # wait until training is under way
            if line.startswith(b"iter 0,"):
                break
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    m = re.search(rb"^interrupted at iteration (\d+) of 1000000000$", out, re.M)
    assert m, out[-500:]
    stopped = int(m.group(1))
    ckpt = load_checkpoint(tmp_path / "int.npz")
    assert ckpt.iteration == stopped > 0
    # resuming from the interrupted state ends exactly where a straight run does
    target = stopped + 37
    (rc1, _, e1), (rc2, _, e2) = run_many([
        ("train", texts / "en.txt", "--resume", "int.npz", "--iters", target),
        ("train", texts / "en.txt", "--hidden-size", 8, "--seq-length", 16, "--iters", target,
         "--sample-every", 1000, "--eval-every", 10**6, "--checkpoint", "straight.npz"),
    ], cwd=tmp_path)
    assert rc1 == rc2 == 0, e1 + e2
    assert_same_state(load_checkpoint(tmp_path / "straight.npz"), load_checkpoint(tmp_path / "int.npz"),
                      resumed=True)


def test_divergence_keeps_the_last_good_checkpoint(texts, trained, tmp_path):
    ckpt, _ = trained
    before = sha(ckpt)
    rc, out, err = run_cli("train", texts / "en.txt", *TINY, "--iters", 50,
                           "--learning-rate", 1e308, "--checkpoint", ckpt, "--overwrite",
                           cwd=tmp_path)
    assert rc == 1
    assert "diverged" in err and "--learning-rate" in err and "Traceback" not in err
    assert err.count("\n") == 1
    assert sha(ckpt) == before
    assert [p.name for p in ckpt.parent.iterdir() if p.name.endswith(".tmp")] == []


# ---------------------------------------------------------------------------
# bad input: one line on stderr, exit status 2, checkpoint untouched
# ---------------------------------------------------------------------------

BAD_TRAIN = [
    (["missing.txt"], "missing.txt: no such file"),
    (["adir"], "adir is a directory"),
    (["empty.txt"], "empty.txt is empty"),
    (["short.txt"], "short.txt has 10 characters; training needs at least --seq-length + 1 = 26"),
    (["binary.txt"], "binary.txt is not valid utf-8 text"),
    (["en.txt", "--encoding", "no-such-codec"], "unknown --encoding"),
    (["en.txt", "--hidden-size", 0], "--hidden-size: must be a positive integer, got 0"),
    (["en.txt", "--hidden-size", -4], "--hidden-size: must be a positive integer"),
    (["en.txt", "--hidden-size", "ten"], "--hidden-size: expected an integer"),
    (["en.txt", "--hidden-size", 100_000], "--hidden-size 100000 with "),  # too big to fit
    (["en.txt", "--seq-length", 0], "--seq-length: must be a positive integer"),
    (["en.txt", "--iters", -1], "--iters: must be a positive integer"),
    (["en.txt", "--sample-every", 0], "--sample-every: must be a positive integer"),
    (["en.txt", "--sample-length", 0], "--sample-length: must be a positive integer"),
    (["en.txt", "--eval-every", 0], "--eval-every: must be a positive integer"),
    (["en.txt", "--checkpoint-every", 0], "--checkpoint-every: must be a positive integer"),
    (["en.txt", "--learning-rate", 0], "--learning-rate: must be positive"),
    (["en.txt", "--learning-rate", -0.1], "--learning-rate: must be positive"),
    (["en.txt", "--learning-rate", "inf"], "--learning-rate: expected a finite number"),
    (["en.txt", "--temperature", -1], "--temperature: must not be negative"),
    (["en.txt", "--val-fraction", 1], "--val-fraction: must be in [0, 1)"),
    (["en.txt", "--val-fraction", -0.5], "--val-fraction: must be in [0, 1)"),
    (["en.txt", "--val-fraction", "nan"], "--val-fraction: expected a finite number"),
    (["en.txt", "--seed", -1], "--seed: must be an integer in [0, 2**32)"),
    (["en.txt", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["short.txt", "--seq-length", 4, "--val-fraction", 0.9],
     "leaving 1 to train on; training needs at least --seq-length + 1 = 5"),
    (["en.txt", "--resume", "missing.npz"], "--resume: checkpoint missing.npz does not exist"),
    (["en.txt", "--resume", "truncated.npz"], "truncated.npz is a damaged or truncated checkpoint"),
    (["en.txt", "--resume", "en.txt"], "en.txt is not a charrnn_ext checkpoint"),
    (["en.txt", "--resume", "foreign.npz"], "foreign.npz is not a charrnn_ext checkpoint"),
    (["en.txt", "--resume", "adir"], "adir is a directory"),
    (["en.txt", "--checkpoint", "adir"], "--checkpoint adir is a directory"),
    (["en.txt", "--checkpoint", "nodir/c.npz"], "does not exist"),
    (["en.txt", "--plot", "nodir/loss.png"], "does not exist"),
]
BAD_TRAIN_IDS = [" ".join(map(str, args))[:40] for args, _ in BAD_TRAIN]


@pytest.fixture(scope="module")
def bad_inputs(texts, trained, tmp_path_factory):
    """All the bad-input runs at once, each with --checkpoint pointing at an
    existing good checkpoint (that must survive untouched)."""
    d = tmp_path_factory.mktemp("bad")
    (d / "en.txt").write_bytes((texts / "en.txt").read_bytes())
    (d / "empty.txt").write_bytes(b"")
    (d / "short.txt").write_text("0123456789", encoding="utf-8")
    (d / "binary.txt").write_bytes(b"some text \xff\xfe then more text " * 4)
    (d / "adir").mkdir()
    data = trained[0].read_bytes()
    (d / "truncated.npz").write_bytes(data[:len(data) // 2])
    np.savez(d / "foreign.npz", weights=np.zeros(3))
    good = d / "good.npz"
    good.write_bytes(data)
    jobs = []
    for args, _ in BAD_TRAIN:
        # --overwrite: even a run allowed to replace the checkpoint must not
        # touch it when its input is bad
        extra = ([] if "--checkpoint" in args or "--resume" in args
                 else ["--checkpoint", good, "--overwrite"])
        jobs.append(("train", *args, *extra, "--iters", 5) if "--iters" not in args
                    else ("train", *args, *extra))
    results = run_many(jobs, cwd=d)
    return results, sha(good), good, d


@pytest.mark.parametrize("case", range(len(BAD_TRAIN)), ids=BAD_TRAIN_IDS)
def test_bad_train_input(bad_inputs, case):
    results, good_sha, good, d = bad_inputs
    rc, out, err = results[case]
    _, message = BAD_TRAIN[case]
    assert rc == 2, (out, err)
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, err  # one line
    assert message in err
    assert sha(good) == good_sha  # never overwritten nor damaged
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]


def test_checkpoint_refuses_to_overwrite_other_files(texts, tmp_path):
    """--checkpoint naming a file that is not a checkpoint (say, the input
    text, by a slip) is refused before any training."""
    (tmp_path / "notes.txt").write_text("precious notes\n", encoding="utf-8")
    rc, _, err = run_cli("train", texts / "en.txt", *TINY, "--iters", 5, "--checkpoint", "notes.txt",
                         cwd=tmp_path)
    assert rc == 2 and "refusing to overwrite --checkpoint notes.txt" in err
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "precious notes\n"


def test_fresh_run_does_not_replace_a_trained_checkpoint(texts, trained, tmp_path):
    """Forgetting --resume must not silently overwrite a trained model: a fresh
    run onto an existing checkpoint is refused unless --overwrite is given."""
    ckpt = tmp_path / "model.npz"
    ckpt.write_bytes(trained[0].read_bytes())
    before = sha(ckpt)
    rc, _, err = run_cli("train", texts / "en.txt", *TINY, "--iters", 5, "--checkpoint", ckpt,
                         cwd=tmp_path)
    assert rc == 2 and "already holds a run at iteration 300" in err and "--resume" in err
    assert len(err.strip().splitlines()) == 1 and sha(ckpt) == before
    rc, _, err = run_cli("train", texts / "en.txt", *TINY, "--iters", 5, "--checkpoint", ckpt,
                         "--overwrite", cwd=tmp_path)
    assert rc == 0, err
    assert load_checkpoint(ckpt).iteration == 5


@pytest.mark.parametrize("target", ["", "sub/", "missing/dir/model.npz", "/proc/model.npz"])
def test_unwritable_checkpoint_is_refused_before_training(texts, tmp_path, target):
    (tmp_path / "sub").mkdir()
    rc, out, err = run_cli("train", texts / "en.txt", *TINY, "--iters", 5, "--checkpoint", target,
                           cwd=tmp_path)
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "iter 0" not in out  # nothing was trained


def test_byte_order_mark_is_not_a_character(tmp_path):
    text = english_text(20)
    (tmp_path / "plain.txt").write_text(text, encoding="utf-8")
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    outs = run_many([("train", name, *TINY, "--iters", 2) for name in ("plain.txt", "bom.txt")],
                    cwd=tmp_path)
    firsts = [out.splitlines()[0] for _, out, _ in outs]
    assert all(rc == 0 for rc, _, _ in outs)
    assert firsts[0] == firsts[1]  # same "data has N characters, V unique."


def test_non_text_encoding_is_a_clear_error(texts, tmp_path):
    for enc in ("rot13", "base64", "punycode"):
        rc, _, err = run_cli("train", texts / "en.txt", *TINY, "--iters", 2, "--encoding", enc,
                             cwd=tmp_path)
        assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_closed_stdout_stops_and_saves(texts, tmp_path):
    """`... | head`: training stops when stdout goes away and saves its state,
    instead of losing everything since the last interval save."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "charrnn_ext.train", str(texts / "en.txt"), *map(str, TINY),
         "--iters", "1000000", "--sample-every", "50", "--checkpoint", "model.npz"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        env=ENV)
    for line in proc.stdout:     # wait until training runs (the header is printed first)
        if line.startswith(b"iter 0"):
            break
    proc.stdout.close()          # the reader goes away
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    # as a Unix tool ended by SIGPIPE: status 141; one line saying where the run is
    assert proc.returncode == 141 and "Traceback" not in err and err.count("\n") == 1, err
    assert "standard output was closed" in err and "training stopped at iteration" in err
    assert "saved in model.npz" in err
    assert load_checkpoint(tmp_path / "model.npz").iteration >= 1


def test_closed_stdout_after_the_last_iteration_says_all_ran(texts, tmp_path):
    """The reader is gone from the start; the one iteration asked for still
    runs and is saved, and the message says so (not "stopped")."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "charrnn_ext.train", str(texts / "en.txt"), *map(str, TINY),
             "--iters", "1", "--checkpoint", "model.npz"], cwd=tmp_path, stdout=write_end,
            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=ENV, timeout=120)
    finally:
        os.close(write_end)
    rc, err = proc.returncode, proc.stderr.decode()
    assert rc == 141 and err.count("\n") == 1 and "all 1 iteration ran" in err, err
    assert load_checkpoint(tmp_path / "model.npz").iteration == 1


# ---------------------------------------------------------------------------
# --plot
# ---------------------------------------------------------------------------

def test_plot_without_matplotlib(texts, tmp_path):
    """A clear one-line message before training when the extra is missing."""
    fake = tmp_path / "fake"
    (fake / "matplotlib").mkdir(parents=True)
    (fake / "matplotlib" / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    env = dict(ENV, PYTHONPATH=str(fake))
    rc, out, err = run_cli("train", texts / "en.txt", *TINY, "--iters", 5, "--plot", "loss.png",
                           cwd=tmp_path, env=env)
    assert rc == 2 and out == ""
    assert "--plot needs matplotlib" in err and "charrnn_ext[plot]" in err and err.count("\n") == 1
    assert not (tmp_path / "loss.png").exists()


def test_plot(texts, tmp_path):
    pytest.importorskip("matplotlib")
    rc, out, err = run_cli("train", texts / "en.txt", *TINY, "--iters", 200, "--sample-every", 50,
                           "--eval-every", 50, "--plot", "loss.png", cwd=tmp_path)
    assert rc == 0, err
    assert "plot: loss.png" in out.splitlines()
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rc, _, err = run_cli("train", texts / "en.txt", "--plot", "loss.xyz", cwd=tmp_path)
    assert rc == 2 and "unknown image type '.xyz'" in err


# ---------------------------------------------------------------------------
# the sample tool
# ---------------------------------------------------------------------------

def test_sample_is_deterministic_with_a_seed(trained):
    ckpt_path, _ = trained
    d = ckpt_path.parent
    runs = run_many([
        ("sample", ckpt_path, "--length", 80, "--seed", 1),
        ("sample", ckpt_path, "--length", 80, "--seed", 1),
        ("sample", ckpt_path, "--length", 80, "--seed", 2),
        ("sample", ckpt_path, "--length", 80, "--temperature", 0, "--seed", 1),
        ("sample", ckpt_path, "--length", 80, "--temperature", 0, "--seed", 2),
        ("sample", ckpt_path, "--length", 50, "--temperature", 0.8, "--prime", "The quick", "--seed", 1),
    ], cwd=d)
    assert all(rc == 0 for rc, _, _ in runs), runs
    (_, a, _), (_, b, _), (_, c, _), (_, g1, _), (_, g2, _), (_, primed, _) = runs
    assert a == b and a != c
    assert len(a) == 81 and a.endswith("\n")
    assert g1 == g2  # greedy ignores the seed
    assert primed.startswith("The quick") and len(primed) == len("The quick") + 50 + 1
    # the same text as the Python API produces from the prime-warmed state
    ckpt = load_checkpoint(ckpt_path)
    ids = ckpt.vocab.encode("The quick")
    h = ckpt.model.advance(ids[:-1])
    gen = ckpt.model.sample(h, int(ids[-1]), 50, temperature=0.8, rng=np.random.default_rng(1))
    assert primed == "The quick" + ckpt.vocab.decode(gen) + "\n"


def test_sample_bad_input(trained, tmp_path):
    ckpt_path, _ = trained
    (tmp_path / "notes.txt").write_text("hello\n", encoding="utf-8")
    data = ckpt_path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[:1000])
    cases = [
        (("sample", ckpt_path, "--prime", "héllo"), "--prime: character 'é' (U+00E9)"),
        (("sample", ckpt_path, "--prime", "狐"), "is not in the vocabulary"),
        (("sample", "missing.npz"), "missing.npz does not exist"),
        (("sample", "cut.npz"), "cut.npz is a damaged or truncated checkpoint"),
        (("sample", "notes.txt"), "notes.txt is not a charrnn_ext checkpoint"),
        (("sample", tmp_path), "is a directory"),
        (("sample", ckpt_path, "--length", 0), "--length: must be a positive integer"),
        (("sample", ckpt_path, "--temperature", -0.5), "--temperature: must not be negative"),
        (("sample",), "the following arguments are required: CKPT"),
    ]
    results = run_many([job for job, _ in cases], cwd=tmp_path)
    for (job, message), (rc, out, err) in zip(cases, results):
        assert rc == 2, job
        assert out == "" and "Traceback" not in err and err.count("\n") == 1, (job, err)
        assert message in err, (job, err)


def test_evaluation_is_a_continuation_of_the_training_text():
    """evaluate(): from the states at the given position, read the training
    text on in order (stream B-1's part, then the rest), score its last
    characters, then go on into the held-out prefix, in one pass (equal to
    scoring the concatenated text step by step)."""
    from charrnn_ext import evaluate

    rng = np.random.default_rng(0)
    V, H = 7, 6
    model = CharRNN(V, H, seed=2)
    ids = rng.integers(0, V, 400).astype(np.int32)
    h0 = rng.standard_normal((H, 1)) * 0.5
    n_train = 300
    s = evaluate(model, ids, n_train, h0, 209, train_chars=50, val_chars=30)
    assert (s.train_chars, s.val_chars) == (50, 30)
    # the same by hand: inputs ids[209:249] are read, ids[249:299] -> targets ids[250:300],
    # then ids[299:329] -> targets ids[300:330]
    h = model.advance(ids[209:249], h0)
    train_nats, h = model.loss(ids[249:299], ids[250:300], h, return_hidden=True)
    val_nats = model.loss(ids[299:329], ids[300:330], h)
    assert s.train_bpc == pytest.approx(train_nats / 50 / math.log(2), rel=1e-12)
    assert s.val_bpc == pytest.approx(val_nats / 30 / math.log(2), rel=1e-12)
    # B streams: the read starts in the last stream's part (parts of 100), from its state
    hB = rng.standard_normal((H, 3)) * 0.5
    sB = evaluate(model, ids, n_train, hB, 9, train_chars=50, val_chars=30)
    h = model.advance(ids[209:249], hB[:, 2:])
    assert sB.train_bpc == pytest.approx(
        model.loss(ids[249:299], ids[250:300], h) / 50 / math.log(2), rel=1e-12)
    # the read is never shorter than from the position: fewer training characters scored
    near = evaluate(model, ids, n_train, h0, 280, train_chars=50)
    assert near.train_chars == 300 - 1 - 280
    # None: the data pass's start, zero states at position 0
    assert evaluate(model, ids, n_train) == evaluate(model, ids, n_train, np.zeros((H, 1)), 0)
    assert evaluate(model, ids, n_train, None, streams=3) == \
        evaluate(model, ids, n_train, np.zeros((H, 3)), 0)
    short = evaluate(model, ids, n_train, h0, 0, train_chars=10**6, val_chars=10**6)
    assert (short.train_chars, short.val_chars) == (n_train - 1, 100)
    assert evaluate(model, ids, ids.size, h0).val_bpc is None
    # positions the data pass never stands at, and states of the wrong shape, are refused
    for bad in (-1, 299, 1.5, True):
        with pytest.raises(ValueError, match="position"):
            evaluate(model, ids, n_train, h0, bad)
    with pytest.raises(ValueError, match="streams"):
        evaluate(model, ids, n_train, hB, 0, streams=2)
    with pytest.raises(ValueError, match="hidden"):
        evaluate(model, ids, n_train, np.zeros((H + 1, 1)), 0)


# ---------------------------------------------------------------------------
# --batch-size: B parallel streams
# ---------------------------------------------------------------------------

def test_batch_data_pass_matches_the_batched_reference(texts, tmp_path):
    """--batch-size B: the training text is cut into B equal parts; stream b
    reads part b left to right in chunks of T with its own hidden state, all
    streams resetting together at the end of their parts. Replayed in-process
    with CharRNN on (B, T) chunks the run agrees bit for bit, and with the
    batched numpy reference within 1e-9."""
    text = (texts / "en.txt").read_text(encoding="utf-8")
    T, H, B, steps = 12, 8, 3, 70
    rc, out, err = run_cli("train", texts / "en.txt", "--hidden-size", H, "--seq-length", T,
                           "--batch-size", B, "--iters", steps, "--seed", 4,
                           "--checkpoint", "b.npz", cwd=tmp_path)
    assert rc == 0, err
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    data = ids[:len(ids) - int(len(ids) * 0.05)]
    part = len(data) // B
    assert f"{B} streams of {part} characters" in out
    assert steps * T > part  # the streams wrap (reset) at least once
    ckpt = load_checkpoint(tmp_path / "b.npz")
    assert ckpt.hidden.shape == (H, B) and ckpt.hyperparameters["batch_size"] == B
    model = CharRNN(len(vocab), H, seed=4)
    ref_params = init_params(len(vocab), H, seed=4)
    ref_memory = {k: np.zeros_like(v) for k, v in ref_params.items()}
    p, h, h_ref = 0, None, None
    with threadpool_limits(limits=1):
        for n in range(steps):
            if p + T + 1 >= part or n == 0:
                h, h_ref, p = np.zeros((H, B)), np.zeros((H, B)), 0
            x = np.stack([data[b * part + p: b * part + p + T] for b in range(B)])
            y = np.stack([data[b * part + p + 1: b * part + p + T + 1] for b in range(B)])
            _, h = model.train_step(x, y, h, 0.1)
            _, h_ref = reference.batch_train_step([list(r) for r in x], [list(r) for r in y],
                                                  h_ref, ref_params, ref_memory, 0.1)
            p += T
    assert ckpt.position == p and np.array_equal(ckpt.hidden, h)
    for name in PARAM_NAMES:
        assert np.array_equal(ckpt.model.params[name], model.params[name]), name
        np.testing.assert_allclose(ckpt.model.params[name], ref_params[name], rtol=1e-9, atol=1e-12)


def test_batch_resume_is_bit_identical(texts, tmp_path):
    args = ["en.txt", *TINY, "--batch-size", 3, "--sample-every", 20, "--eval-every", 40]
    (rc1, straight, e1), (rc2, first, e2) = run_many([
        ("train", *args, "--iters", 120, "--checkpoint", tmp_path / "a.npz"),
        ("train", *args, "--iters", 60, "--checkpoint", tmp_path / "b.npz"),
    ], cwd=texts)
    assert rc1 == rc2 == 0, e1 + e2
    rc, second, err = run_cli("train", "en.txt", "--resume", tmp_path / "b.npz", "--iters", 120,
                              cwd=texts)
    assert rc == 0, err
    assert_same_state(load_checkpoint(tmp_path / "a.npz"), load_checkpoint(tmp_path / "b.npz"),
                      resumed=True)
    assert progress_lines(first) + progress_lines(second) == progress_lines(straight)
    rc, _, err = run_cli("train", "en.txt", "--resume", tmp_path / "b.npz", "--iters", 200,
                         "--batch-size", 2, cwd=texts)
    assert rc == 2 and "--batch-size 2 differs from the 3 streams" in err


def test_batch_size_leaving_short_parts_is_refused(texts, tmp_path):
    n = len((texts / "en.txt").read_text(encoding="utf-8"))
    n_train = n - int(n * 0.05)
    B = n_train // 17 + 1  # parts of at most 16 characters; T + 1 = 17 needed
    rc, out, err = run_cli("train", texts / "en.txt", *TINY, "--batch-size", B, "--iters", 5,
                           cwd=tmp_path)
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert f"--batch-size {B} cuts the {n_train} training characters" in err
    assert list(tmp_path.iterdir()) == []
