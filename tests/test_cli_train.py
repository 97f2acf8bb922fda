"""charrnn-train (``python -m charrnn_ext.train``) run as a user runs it, in
a subprocess in a temporary directory (so the installed package, not the
source tree, is imported), at tiny sizes on small generated texts: what it
prints, the inputs it reads (files, standard input, encodings, the demo
corpus), its flags and their checks (bad input: one line on stderr, exit
status 2), plots and the progress bar, determinism; and the commands from
anywhere (the repository root, a source tree without a compiled core).

Elsewhere: stopping and resuming a run, test_cli_train_resume; the files a
run writes (checkpoint, best model, locks), test_cli_train_files; the data
pass it runs, test_datapass; the figures it reports, test_evaluation.
"""
import math
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from charrnn_ext import CharRNN, Checkpoint, Vocab, evaluate, load_checkpoint

from conftest import (ENV, SMALL_FLAGS, TINY_FLAGS, assert_same_state, english_like_text,
                      progress_lines, run_cli, run_many, sentence_text, sha)

REPO = Path(__file__).resolve().parent.parent


def timing_free(stdout):
    """The output without the lines that differ between identical runs."""
    return [line for line in stdout.splitlines()
            if not line.startswith(("speed:", "checkpoint:", "saving to", "sample from it:",
                                    "best validation:"))]


# ---------------------------------------------------------------------------
# what a run prints; determinism
# ---------------------------------------------------------------------------

def test_train_output_format(cli_texts, tiny_run):
    ckpt_path, out = tiny_run
    text = (cli_texts / "en.txt").read_text(encoding="utf-8")
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
    assert m and m.group(3) == str(cli_texts / "en.best.npz")
    best = load_checkpoint(m.group(3))
    assert best.iteration == int(m.group(2)) == ckpt.best_iteration
    assert best.best_val_bpc == ckpt.best_val_bpc == min(ckpt.history["val_bpc"])
    assert evaluate(best.model, ids, n_train, best.hidden, best.position).val_bpc == best.best_val_bpc
    assert float(m.group(1)) == pytest.approx(best.best_val_bpc, abs=1e-4)
    assert re.search(r"^speed: 300 steps in \S+ s, \S+ steps/s \(and \S+ s evaluating\)$", out, re.M)
    assert f"checkpoint: {ckpt_path} (iteration 300)" in lines
    assert lines[-1] == f"sample from it: python -m charrnn_ext.sample {ckpt_path}"
    assert ckpt.iteration == 300 and ckpt.model.hidden_size == 12


def test_same_seed_same_everything(cli_texts, tmp_path):
    args = ["en.txt", *TINY_FLAGS, "--iters", 250, "--sample-every", 50, "--eval-every", 50,
            "--seed", 3]
    (rc1, out1, _), (rc2, out2, _), (rc3, out3, _) = run_many([
        ("train", *args, "--checkpoint", tmp_path / "a.npz"),
        ("train", *args, "--checkpoint", tmp_path / "b.npz"),
        ("train", *args[:-1], 4, "--checkpoint", tmp_path / "c.npz"),
    ], cwd=cli_texts)
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


def test_help(tmp_path):
    (rc1, out1, _), (rc2, out2, _) = run_many([("train", "--help"), ("sample", "--help")],
                                              cwd=tmp_path)
    assert rc1 == rc2 == 0
    for flag in ("--hidden-size", "--seq-length", "--learning-rate", "--iters", "--sample-every",
                 "--sample-length", "--temperature", "--seed", "--val-fraction", "--checkpoint",
                 "--resume", "--plot", "--encoding", "--eval-every", "--checkpoint-every",
                 "--recipe", "--optimizer", "--embedding-size", "--init", "--time-limit"):
        assert flag in out1
    flat = " ".join(out1.split())
    for text in ("100; batched recipe: 256; gru recipe: 384", "25; batched recipe: 50; gru "
                 "recipe: 50", "0.1; batched recipe: 0.002; gru recipe: 0.003",
                 "1; batched recipe: 32; gru recipe: 32", "adagrad; batched recipe: adam; gru "
                 "recipe: adam", "0; batched recipe: 64; gru recipe: 128", "min-char-rnn; "
                 "batched recipe: pytorch; gru recipe: pytorch", "rnn; gru recipe: gru",
                 "float64; gru recipe: float32"):
        assert f"(default: {text})" in flat, text
    for flag in ("--length", "--temperature", "--prime", "--seed"):
        assert flag in out2


@pytest.mark.parametrize("tool, statuses", [
    ("train", (0, 1, 2, 130, 141, 143)), ("sample", (0, 1, 2, 130, 141)),
    ("sweep", (0, 1, 2, 130, 141, 143)),
])
def test_help_lists_every_exit_status(tmp_path, tool, statuses):
    """Each status a command exits with is in its --help: 141 too, the one
    of a command whose reader went away (| head)."""
    rc, out, err = run_cli(tool, "--help", cwd=tmp_path)
    assert rc == 0, err
    listed = " ".join(out.split("exit status:")[1].split())
    assert tuple(int(n) for n in re.findall(r"(?:^|, )(\d+) ", listed)) == statuses, listed


# ---------------------------------------------------------------------------
# the input: files, standard input, encodings, the demo corpus
# ---------------------------------------------------------------------------

def test_chinese_text(cli_texts, tmp_path):
    text = (cli_texts / "zh.txt").read_text(encoding="utf-8")
    rc, out, err = run_cli("train", cli_texts / "zh.txt", *TINY_FLAGS, "--iters", 200,
                           "--sample-every", 100,
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


def test_stdin_input(cli_texts, tmp_path):
    data = (cli_texts / "en.txt").read_bytes()
    rc, out, err = run_cli("train", "-", *TINY_FLAGS, "--iters", 100, "--checkpoint", "s.npz",
                           stdin=data, cwd=tmp_path)
    assert rc == 0, err
    text = data.decode("utf-8")
    assert out.splitlines()[0] == f"data has {len(text)} characters, {len(set(text))} unique."
    assert load_checkpoint(tmp_path / "s.npz").data_size == len(text)


def test_encoding_flag(cli_texts, tmp_path):
    text = (cli_texts / "zh.txt").read_text(encoding="utf-8")
    (tmp_path / "gb.txt").write_bytes(text.encode("gb18030"))
    (rc1, out1, _), (rc2, _, err2) = run_many([
        ("train", "gb.txt", *TINY_FLAGS, "--iters", 5, "--encoding", "gb18030"),
        ("train", "gb.txt", *TINY_FLAGS, "--iters", 5),
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


def test_byte_order_mark_is_not_a_character(tmp_path):
    text = sentence_text(20)
    (tmp_path / "plain.txt").write_text(text, encoding="utf-8")
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    jobs = [("train", name, *TINY_FLAGS, "--iters", 2) for name in ("plain.txt", "bom.txt")]
    outs = run_many(jobs, cwd=tmp_path)
    firsts = [out.splitlines()[0] for _, out, _ in outs]
    assert all(rc == 0 for rc, _, _ in outs)
    assert firsts[0] == firsts[1]  # same "data has N characters, V unique."


def test_non_text_encoding_is_a_clear_error(cli_texts, tmp_path):
    for enc in ("rot13", "base64", "punycode"):
        rc, _, err = run_cli("train", cli_texts / "en.txt", *TINY_FLAGS, "--iters", 2,
                             "--encoding", enc,
                             cwd=tmp_path)
        assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_devices_are_not_text(text_dir):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    rc, out, err = run_cli("train", "/dev/zero", cwd=text_dir)
    assert rc == 2 and "not a text file" in err and err.count("\n") == 1


def test_batch_size_leaving_short_parts_is_refused(cli_texts, tmp_path):
    n = len((cli_texts / "en.txt").read_text(encoding="utf-8"))
    n_train = n - int(n * 0.05)
    B = n_train // 17 + 1  # parts of at most 16 characters; T + 1 = 17 needed
    rc, out, err = run_cli("train", cli_texts / "en.txt", *TINY_FLAGS, "--batch-size", B,
                           "--iters", 5,
                           cwd=tmp_path)
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert f"--batch-size {B} cuts the {n_train} training characters" in err
    assert list(tmp_path.iterdir()) == []


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
    (["en.txt", "--num-layers", 17], "argument --num-layers: must be at most 16, got 17"),
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
    (["en.txt", "--recipe", "foo"], "--recipe: must be one of auto, min-char-rnn, batched, gru, got foo"),
    (["en.txt", "--optimizer", "sgd"], "--optimizer: must be one of adagrad, adam, rmsprop, got sgd"),
    (["en.txt", "--init", "xavier"], "--init: must be one of min-char-rnn, pytorch, got xavier"),
    (["en.txt", "--embedding-size", -1], "--embedding-size: must be an integer in [0, "),
    (["en.txt", "--embedding-size", "wide"], "--embedding-size: expected an integer"),
    (["en.txt", "--time-limit", -1], "--time-limit: must not be negative, got -1"),
    (["en.txt", "--time-limit", "nan"], "--time-limit: expected a finite number"),
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
def bad_inputs(cli_texts, tiny_run, tmp_path_factory):
    """All the bad-input runs at once, each with --checkpoint pointing at an
    existing good checkpoint (that must survive untouched)."""
    d = tmp_path_factory.mktemp("bad")
    (d / "en.txt").write_bytes((cli_texts / "en.txt").read_bytes())
    (d / "empty.txt").write_bytes(b"")
    (d / "short.txt").write_text("0123456789", encoding="utf-8")
    (d / "binary.txt").write_bytes(b"some text \xff\xfe then more text " * 4)
    (d / "adir").mkdir()
    data = tiny_run[0].read_bytes()
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


def test_memory_guard_honours_cgroup_limits(tmp_path):
    from charrnn_ext._machine import cgroup_room

    v2 = tmp_path / "v2"
    (v2 / "sys" / "job").mkdir(parents=True)
    (v2 / "cgroup").write_text("0::/job\n")
    (v2 / "sys" / "job" / "memory.max").write_text(f"{8 * 2**30}\n")
    (v2 / "sys" / "job" / "memory.current").write_text(f"{2**30}\n")
    (v2 / "sys" / "memory.max").write_text("max\n")
    assert cgroup_room(str(v2 / "cgroup"), str(v2 / "sys")) == 7 * 2**30
    v1 = tmp_path / "v1"
    (v1 / "sys" / "memory" / "docker" / "abc").mkdir(parents=True)
    (v1 / "cgroup").write_text("5:cpu:/\n4:memory:/docker/abc\n")
    (v1 / "sys" / "memory" / "docker" / "abc" / "memory.limit_in_bytes").write_text(f"{4 * 2**30}")
    (v1 / "sys" / "memory" / "docker" / "abc" / "memory.usage_in_bytes").write_text(f"{2**30}")
    (v1 / "sys" / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712")
    assert cgroup_room(str(v1 / "cgroup"), str(v1 / "sys")) == 3 * 2**30
    assert cgroup_room(str(tmp_path / "none"), str(tmp_path)) is None


# ---------------------------------------------------------------------------
# --plot and the progress bar
# ---------------------------------------------------------------------------

def test_plot_without_matplotlib(cli_texts, tmp_path):
    """A clear one-line message before training when the extra is missing."""
    fake = tmp_path / "fake"
    (fake / "matplotlib").mkdir(parents=True)
    (fake / "matplotlib" / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    env = dict(ENV, PYTHONPATH=os.pathsep.join(filter(None, (str(fake), ENV.get("PYTHONPATH")))))
    rc, out, err = run_cli("train", cli_texts / "en.txt", *TINY_FLAGS, "--iters", 5, "--plot",
                           "loss.png",
                           cwd=tmp_path, env=env)
    assert rc == 2 and out == ""
    assert "--plot needs matplotlib" in err and "charrnn_ext[plot]" in err and err.count("\n") == 1
    assert not (tmp_path / "loss.png").exists()


def test_plot(cli_texts, tmp_path):
    pytest.importorskip("matplotlib")
    rc, out, err = run_cli("train", cli_texts / "en.txt", *TINY_FLAGS, "--iters", 200,
                           "--sample-every", 50,
                           "--eval-every", 50, "--plot", "loss.png", cwd=tmp_path)
    assert rc == 0, err
    assert "plot: loss.png" in out.splitlines()
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rc, _, err = run_cli("train", cli_texts / "en.txt", "--plot", "loss.xyz", cwd=tmp_path)
    assert rc == 2 and "unknown image type '.xyz'" in err


def test_plot_reaches_the_last_iteration(tmp_path, monkeypatch):
    """The curves go through the end of the run: the open interval and the
    final evaluation are drawn; bits per character throughout."""
    from charrnn_ext.cli import train

    drawn = []

    class Axes:
        def plot(self, x, y, *a, **k):
            drawn.append((k.get("label", ""), np.asarray(x), np.asarray(y)))

        def __getattr__(self, name):
            return lambda *a, **k: None

    class Figure:
        def __init__(self, *a, **k):
            pass

        def add_subplot(self):
            return Axes()

        def savefig(self, *a, **k):
            pass

    model = CharRNN(5, 4, seed=0)
    run = Checkpoint(model=model, vocab=Vocab("abcde"), hyperparameters={"seq_length": 10})
    for n in range(250):
        run.record_step(20.0)
        if n % 100 == 0:
            run.close_interval(10)
        if n % 120 == 0:
            run.record_evaluation(2.0 - n / 1000, 1.9)
    run.record_evaluation(1.5, 1.4)  # the final evaluation, at iteration 250
    train._plot(Figure, str(tmp_path / "x.png"), run, 10)
    training = next(d for d in drawn if d[0].startswith("training (mean"))
    assert training[1][-1] == 250 and np.allclose(training[2], 20.0 / 10 / math.log(2))
    val = next(d for d in drawn if d[0].startswith("validation"))
    assert val[1][-1] == 250 and val[2][-1] == 1.5


def test_progress_bar_on_a_terminal_without_a_size(tmp_path):
    """Some consoles report 0 x 0: the bar still shows, with a moving loss."""
    pty = pytest.importorskip("pty")
    import fcntl
    import struct
    import termios
    (tmp_path / "t.txt").write_text(english_like_text(5000), encoding="utf-8")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "charrnn_ext.train", "t.txt",
                             *map(str, SMALL_FLAGS), "--iters", "3000", "--sample-every", "100000"],
                            cwd=tmp_path, env=ENV, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=120) == 0
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "3000/3000" in screen and "it/s" in screen, screen[-500:]
    assert len(set(re.findall(r"loss=(\d+\.\d+) bits/char", screen))) >= 2, screen[-500:]


# ---------------------------------------------------------------------------
# the commands, from anywhere
# ---------------------------------------------------------------------------

def test_commands_and_versions_from_the_repository_root():
    """`python -m charrnn_ext.train` in the clone's root (where the source tree,
    without a compiled core, comes first on sys.path) uses the installed copy."""
    import charrnn_ext
    if not (REPO / "charrnn_ext" / "__init__.py").exists():
        pytest.skip("not run from a source checkout")
    results = [subprocess.run([sys.executable, "-m", *cmd], cwd=REPO, env=ENV, text=True,
                              capture_output=True, timeout=120)
               for cmd in (["charrnn_ext.train", "--version"], ["charrnn_ext.sample", "--version"],
                           ["charrnn_ext"], ["charrnn_ext.train", "--help"])]
    for proc in results:
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert results[0].stdout.strip() == f"python -m charrnn_ext.train (charrnn_ext) {charrnn_ext.__version__}"
    assert results[1].stdout.strip().endswith(charrnn_ext.__version__)
    assert "python -m charrnn_ext.train" in results[2].stdout
    assert "python -m charrnn_ext.sample" in results[2].stdout


def test_source_tree_without_a_core_says_so_in_one_line(tmp_path):
    """No compiled core here and no installed copy: one line, exit 1."""
    src = tmp_path / "charrnn_ext"
    src.mkdir()
    for f in (REPO / "charrnn_ext").glob("*.py"):
        (src / f.name).write_bytes(f.read_bytes())
    if not (REPO / "charrnn_ext").is_dir():
        import charrnn_ext
        for f in Path(charrnn_ext.__file__).parent.glob("*.py"):
            (src / f.name).write_bytes(f.read_bytes())
    alone = {k: v for k, v in ENV.items() if k != "PYTHONPATH"}   # (not the tests' package)
    proc = subprocess.run([sys.executable, "-S", "-m", "charrnn_ext.train", "x.txt"],
                          cwd=tmp_path, env=alone, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "pip install ." in proc.stderr, proc.stderr
