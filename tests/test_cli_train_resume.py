"""charrnn-train stopped and resumed, in subprocesses: --resume goes on
bit-identically to a straight run (one stream or B), refuses what does not
match the checkpoint, warns when another core wrote it; Ctrl-C, a closed or
full standard output stop a run at once, in one line, and save it.

A checkpoint file a stranger crafted, resumed: test_checkpoint_files.
"""
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from charrnn_ext import load_checkpoint
from charrnn_ext.core._dispatch import core_build

from conftest import (ENV, SMALL_FLAGS, TINY_FLAGS, assert_cli_refusal, assert_same_state,
                      english_like_text, interrupt, progress_lines, rewrite_archive, run_cli,
                      run_many, sentence_text, sha, start_training, wait_for_line)


# ---------------------------------------------------------------------------
# resuming
# ---------------------------------------------------------------------------

def assert_resuming_is_bit_identical(cwd, tmp_path, args, iters):
    """``train args`` for ``iters`` iterations straight (a.npz) == for half
    of them (b.npz), then ``--resume b.npz --iters iters``: the full training
    state and the printed samples and losses. Returns the resumed checkpoint."""
    half = iters // 2
    (rc1, straight, e1), (rc2, first, e2) = run_many([
        ("train", *args, "--iters", iters, "--checkpoint", tmp_path / "a.npz"),
        ("train", *args, "--iters", half, "--checkpoint", tmp_path / "b.npz"),
    ], cwd=cwd)
    assert rc1 == rc2 == 0, e1 + e2
    assert load_checkpoint(tmp_path / "b.npz").iteration == half
    rc, second, err = run_cli("train", args[0], "--resume", tmp_path / "b.npz", "--iters", iters,
                              cwd=cwd)
    assert rc == 0, err
    assert f"resuming from {tmp_path / 'b.npz'} at iteration {half}" in second
    b = load_checkpoint(tmp_path / "b.npz")
    assert_same_state(load_checkpoint(tmp_path / "a.npz"), b, resumed=True)
    assert progress_lines(first) + progress_lines(second) == progress_lines(straight)
    return b


def test_resume_is_bit_identical(cli_texts, tmp_path):
    """N steps, a resume and N more == 2N steps straight. The resumed run
    takes its settings from the checkpoint and saves back to the same file."""
    args = ["en.txt", *TINY_FLAGS, "--sample-every", 40, "--eval-every", 80,
            "--checkpoint-every", 50]
    b = assert_resuming_is_bit_identical(cli_texts, tmp_path, args, 240)
    assert b.iteration == 240
    n_train = b.data_size - int(b.data_size * 0.05)
    assert 120 * 16 < n_train < 240 * 16  # the data pass wraps (resets h) after the resume


def test_batch_resume_is_bit_identical(cli_texts, tmp_path):
    """(N, then a resume to 2N, is 2N straight at a constant learning rate:
    a decaying one goes on from where it stopped, test_training.py)"""
    args = ["en.txt", *TINY_FLAGS, "--batch-size", 3, "--sample-every", 20, "--eval-every", 40,
            "--lr-decay", 1]
    assert_resuming_is_bit_identical(cli_texts, tmp_path, args, 120)
    rc, _, err = run_cli("train", "en.txt", "--resume", tmp_path / "b.npz", "--iters", 200,
                         "--batch-size", 2, cwd=cli_texts)
    assert rc == 2 and "--batch-size 2 differs from the 3 streams" in err


@pytest.mark.parametrize("extra", [
    ("--batch-size", 3, "--embedding-size", 6, "--lr-decay", 1),   # the batched recipe, smaller
    ("--optimizer", "adam", "--embedding-size", 5, "--init", "pytorch"),   # one stream
])
def test_adam_with_an_embedding_resumes_bit_identically(cli_texts, tmp_path, extra):
    """The batched recipe's kind of model: N steps, a resume and N more ==
    2N straight, Adam's moments and step count included (same_model); the
    resumed run keeps its optimizer, embedding and learning rate without
    being told."""
    args = ["en.txt", *TINY_FLAGS, *extra, "--sample-every", 20, "--eval-every", 40]
    b = assert_resuming_is_bit_identical(cli_texts, tmp_path, args, 120)
    assert b.model.optimizer == "adam" and b.model.adam_steps == 120
    assert b.model.embedding_size == extra[extra.index("--embedding-size") + 1]
    assert b.hyperparameters["learning_rate"] == 0.002


@pytest.mark.parametrize("extra", [
    (),                                                         # the tanh model, one stream
    ("--cell", "lstm", "--num-layers", 2, "--batch-size", 2, "--embedding-size", 4),
])
def test_rmsprop_resumes_bit_identically(cli_texts, tmp_path, extra):
    """--optimizer rmsprop: N steps, a resume and N more == 2N straight (its
    mean square included, same_model); the checkpoint names it, so the
    resumed run keeps RMSprop and its rate (the recipe's for it) untold."""
    args = ["en.txt", *TINY_FLAGS, "--optimizer", "rmsprop", *extra, "--sample-every", 20,
            "--eval-every", 30, "--lr-decay", 1]   # (no evaluation at the half: 40)
    b = assert_resuming_is_bit_identical(cli_texts, tmp_path, args, 80)
    assert b.model.optimizer == "rmsprop" and not b.model.moment
    assert b.hyperparameters["optimizer"] == "rmsprop"
    assert b.hyperparameters["learning_rate"] == 0.002


@pytest.fixture(scope="module")
def adam_run(tmp_path_factory, cli_texts):
    """A directory holding en.txt and adam.npz: 20 iterations of the batched
    recipe (2 streams, embedding 6, hidden 12)."""
    d = tmp_path_factory.mktemp("adam-run")
    (d / "en.txt").write_bytes((cli_texts / "en.txt").read_bytes())
    rc, _, err = run_cli("train", "en.txt", *TINY_FLAGS, "--batch-size", 2, "--embedding-size",
                         6, "--iters", 20, "--checkpoint", "adam.npz", "--no-keep-best", cwd=d)
    assert rc == 0, err
    return d


@pytest.mark.parametrize("which, flags, words", [
    ("tiny", ("--optimizer", "adam"), "--optimizer adam differs from the optimizer adagrad"),
    ("tiny", ("--embedding-size", 8), "--embedding-size 8 differs from the embedding size 0"),
    ("tiny", ("--recipe", "batched", "--optimizer", "adam"), "--optimizer adam differs"),
    ("adam", ("--optimizer", "adagrad"), "--optimizer adagrad differs from the optimizer adam"),
    ("adam", ("--embedding-size", 0), "--embedding-size 0 differs from the embedding size 6"),
    ("adam", ("--embedding-size", 64), "--embedding-size 64 differs from the embedding size 6"),
    ("adam", ("--batch-size", 32), "--batch-size 32 differs from the 2 streams"),
    ("adam", ("--recipe", "min-char-rnn"), "--recipe min-char-rnn differs from the recipe batched"),
    ("tiny", ("--recipe", "batched"), "--recipe batched differs from the recipe min-char-rnn"),
])
def test_resume_refuses_another_optimizer_or_embedding(tiny_run, adam_run, tmp_path, which,
                                                       flags, words):
    """What the checkpoint's model fixes cannot change on --resume, nor its
    recipe (the defaults of a new run: it would change only the header's
    label): one line, exit status 2, the checkpoint untouched."""
    if which == "tiny":
        ckpt, cwd = tiny_run[0], tiny_run[0].parent
    else:
        ckpt, cwd = adam_run / "adam.npz", adam_run
    before = sha(ckpt)
    result = run_cli("train", "en.txt", "--resume", ckpt, "--iters", 400, *flags, cwd=cwd)
    assert_cli_refusal(result, words, str(ckpt))
    assert sha(ckpt) == before


def test_init_is_ignored_with_resume(adam_run, tmp_path):
    """The initialisation is spent once a model has trained: --init on
    --resume says so in one note and the checkpoint keeps recording its own."""
    (tmp_path / "a.npz").write_bytes((adam_run / "adam.npz").read_bytes())
    rc, _, err = run_cli("train", adam_run / "en.txt", "--resume", "a.npz", "--iters", 25,
                         "--init", "min-char-rnn", "--no-keep-best", cwd=tmp_path)
    assert rc == 0 and err.splitlines()[0].endswith("note: --init is ignored with --resume (the "
                                                    "checkpoint's weights continue)"), err
    assert err.count("--init") == 1 and "Traceback" not in err
    assert load_checkpoint(tmp_path / "a.npz").hyperparameters["init"] == "pytorch"


@pytest.mark.parametrize("hyper, words", [
    ({"recipe": "foo"}, "recipe must be one of"),
    ({"init": "xavier"}, "init must be one of"),
    ({"learning_rate": -1}, "learning_rate"),
])
def test_resume_refuses_bad_stored_recipe_settings(adam_run, tmp_path, hyper, words):
    path = rewrite_archive(adam_run / "adam.npz", tmp_path / "bad.npz", edit_hyper=hyper)
    result = run_cli("train", adam_run / "en.txt", "--resume", path, "--iters", 40, cwd=tmp_path)
    assert_cli_refusal(result, str(path), words)


def test_resume_takes_the_checkpoints_own_values_and_a_new_rate(adam_run, tmp_path):
    """Flags that repeat what the model fixes (and its recipe) are accepted;
    --learning-rate may change."""
    (tmp_path / "en.txt").write_bytes((adam_run / "en.txt").read_bytes())
    (tmp_path / "a.npz").write_bytes((adam_run / "adam.npz").read_bytes())
    rc, out, err = run_cli("train", "en.txt", "--resume", "a.npz", "--iters", 30,
                           "--optimizer", "adam", "--embedding-size", 6, "--batch-size", 2,
                           "--learning-rate", 0.001, "--recipe", "batched",
                           "--no-keep-best", cwd=tmp_path)
    assert rc == 0, err
    assert "input embedding 6, Adam learning rate 0.001" in out and "(batched recipe)" in out
    assert "seq length 16, 2 streams" in out    # the checkpoint's, not min-char-rnn's 25
    ckpt = load_checkpoint(tmp_path / "a.npz")
    assert ckpt.model.adam_steps == 30 and ckpt.hyperparameters["learning_rate"] == 0.001


def test_a_checkpoint_from_before_the_recipes_resumes_as_min_char_rnn(cli_texts, tmp_path):
    """A version-2 file of 3 streams (no recipe, optimizer, embedding_size,
    init, adam_steps) resumes with min-char-rnn's Adagrad, bit-identically
    to a straight run, and says so."""
    args = ["en.txt", *TINY_FLAGS, "--recipe", "min-char-rnn", "--batch-size", 3,
            "--sample-every", 20, "--eval-every", 40, "--learning-rate", 0.05]
    (rc1, straight, e1), (rc2, _, e2) = run_many([
        ("train", *args, "--iters", 80, "--checkpoint", tmp_path / "a.npz"),
        ("train", *args, "--iters", 40, "--checkpoint", tmp_path / "b.npz"),
    ], cwd=cli_texts)
    assert rc1 == rc2 == 0, e1 + e2
    rewrite_archive(tmp_path / "b.npz", version=np.array(2), edit_state={"adam_steps": None},
                    edit_hyper={"recipe": None, "optimizer": None, "embedding_size": None,
                                "init": None})
    assert load_checkpoint(tmp_path / "b.npz").version == 2
    rc, out, err = run_cli("train", "en.txt", "--resume", tmp_path / "b.npz", "--iters", 80,
                           cwd=cli_texts)
    assert rc == 0 and err == "", err
    assert "Adagrad learning rate 0.05" in out and "(min-char-rnn recipe)" in out
    b = load_checkpoint(tmp_path / "b.npz")
    assert_same_state(load_checkpoint(tmp_path / "a.npz"), b, resumed=True)
    assert b.hyperparameters["recipe"] == "min-char-rnn" and b.hyperparameters["optimizer"] \
        == "adagrad"


def test_resume_errors(cli_texts, tiny_run, tmp_path):
    ckpt, _ = tiny_run
    (tmp_path / "other.txt").write_text(sentence_text(seed=5) + "Zebra!\n", encoding="utf-8")
    before = sha(ckpt)
    results = run_many([
        ("train", "other.txt", "--resume", ckpt, "--iters", 400),
        ("train", cli_texts / "en.txt", "--resume", ckpt, "--iters", 400, "--hidden-size", 20),
        ("train", cli_texts / "en.txt", "--resume", ckpt, "--iters", 300),
    ], cwd=tmp_path)
    (rc1, _, err1), (rc2, _, err2), (rc3, out3, _) = results
    assert rc1 == 2 and "vocabulary" in err1 and "'Z'" in err1 and "not in the vocabulary of" in err1
    assert rc2 == 2 and "--hidden-size 20 differs" in err2
    assert rc3 == 0 and "nothing to do" in out3
    for _, _, err in results:
        assert "Traceback" not in err and err.count("\n") <= 1
    assert sha(ckpt) == before


def test_resuming_a_checkpoint_of_another_core_revision_warns(tmp_path):
    """A checkpoint names the core's build and kernel revision; resuming one
    written by another (e.g. before the pipelined steps, which round
    differently) says the result will not be bit-identical."""
    (tmp_path / "t.txt").write_text("the quick brown fox jumps over the lazy dog. " * 40)
    args = ["--hidden-size", 16, "--seq-length", 8, "--sample-every", 1000]
    rc, out, err = run_cli("train", "t.txt", *args, "--iters", 30, "--checkpoint", "a.npz",
                           cwd=tmp_path)
    assert rc == 0, err
    ckpt = load_checkpoint(tmp_path / "a.npz")
    assert ckpt.core == core_build() and " r" in ckpt.core
    rc, out, err = run_cli("train", "t.txt", *args, "--iters", 40, "--resume", "a.npz",
                           "--checkpoint", "b.npz", cwd=tmp_path)
    assert rc == 0 and "bit-identical" not in err, err
    ckpt.core = ckpt.core.split(" r")[0]           # as the package wrote it before
    ckpt.save(tmp_path / "old.npz")
    rc, out, err = run_cli("train", "t.txt", *args, "--iters", 40, "--resume", "old.npz",
                           "--checkpoint", "c.npz", cwd=tmp_path)
    assert rc == 0 and "will not be bit-identical" in err, err


def test_stored_sample_length_is_bounded(text_dir):
    """Settings a resumed run takes from a checkpoint pass the flags' checks."""
    rc, _, err = run_cli("train", "t.txt", *SMALL_FLAGS, "--iters", 5, "--checkpoint", "m.npz",
                         cwd=text_dir)
    assert rc == 0, err
    rewrite_archive(text_dir / "m.npz", edit_hyper={"sample_length": 2**31 - 1})
    rc, out, err = run_cli("train", "t.txt", "--resume", "m.npz", "--iters", 10, cwd=text_dir)
    assert rc == 2 and "sample_length" in err and "at most" in err, err


# ---------------------------------------------------------------------------
# stopping: Ctrl-C, a closed or full standard output
# ---------------------------------------------------------------------------

def test_ctrl_c_saves_a_resumable_checkpoint(cli_texts, tmp_path):
    cmd = [sys.executable, "-m", "charrnn_ext.train", str(cli_texts / "en.txt"),
           "--hidden-size", "8", "--seq-length", "16", "--iters", str(10**9),
           "--sample-every", "1000", "--eval-every", str(10**6), "--checkpoint", "int.npz"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_line(proc, b"iter 0,")  # training is under way
        time.sleep(0.2)
        out, err, _ = interrupt(proc, timeout=60)
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
        ("train", cli_texts / "en.txt", "--resume", "int.npz", "--iters", target),
        ("train", cli_texts / "en.txt", "--hidden-size", 8, "--seq-length", 16, "--iters", target,
         "--sample-every", 1000, "--eval-every", 10**6, "--checkpoint", "straight.npz"),
    ], cwd=tmp_path)
    assert rc1 == rc2 == 0, e1 + e2
    assert_same_state(load_checkpoint(tmp_path / "straight.npz"), load_checkpoint(tmp_path / "int.npz"),
                      resumed=True)


def test_ctrl_c_under_the_decaying_rate_resumes_to_the_straight_run(cli_texts, tmp_path):
    """The batched recipe's decaying rate (README's commands): a run stopped
    by Ctrl-C wherever it is and resumed to the same --iters is bit for bit
    the straight run, in silence; resumed on to a new --iters, one line says
    the result differs from a straight run of that length."""
    flags = ["--hidden-size", 48, "--seq-length", 16, "--batch-size", 2, "--embedding-size", 8,
             "--sample-every", 10**6, "--eval-every", 10**6, "--no-keep-best"]
    iters = 1500
    proc = subprocess.Popen([sys.executable, "-m", "charrnn_ext.train", "en.txt",
                             *map(str, flags), "--iters", str(iters), "--checkpoint",
                             str(tmp_path / "int.npz")], cwd=cli_texts, env=ENV,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        wait_for_line(proc, b"iter 0,")
        out, err, _ = interrupt(proc, timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    stopped = load_checkpoint(tmp_path / "int.npz").iteration
    assert 0 < stopped < iters - 100
    (rc1, _, e1), (rc2, _, e2) = run_many([
        ("train", "en.txt", "--resume", tmp_path / "int.npz"),
        ("train", "en.txt", *flags, "--iters", iters, "--checkpoint", tmp_path / "straight.npz"),
    ], cwd=cli_texts)
    assert rc1 == rc2 == 0 and e1 == "", e1 + e2
    straight, resumed = (load_checkpoint(tmp_path / f"{n}.npz") for n in ("straight", "int"))
    assert straight.hyperparameters["lr_decay"] == 0.1 and resumed.iteration == iters
    assert_same_state(straight, resumed, resumed=True)
    rc, _, err = run_cli("train", "en.txt", "--resume", tmp_path / "int.npz", "--iters", 1600,
                         cwd=cli_texts)
    assert rc == 0 and err.count("\n") == 1, err
    assert "warning: the learning rate goes on from 0.0002 at iteration 1500 down to 0.0002 at " \
           "iteration 1600 (the checkpoint's run was planned for 1500): the result differs " \
           "from a straight run of 1600 iterations" in err


def test_ctrl_c_during_a_long_evaluation_stops_at_once(tmp_path):
    """Evaluation reads the text in blocks and checks for Ctrl-C between them;
    after Ctrl-C there is no last evaluation."""
    (tmp_path / "t.txt").write_text(english_like_text(220_000, seed=2), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "charrnn_ext.train", "t.txt", "--hidden-size",
                             "1024", "--val-fraction", "0.5", "--iters", "1000",
                             "--checkpoint", "m.npz"], cwd=tmp_path, env=ENV,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        wait_for_line(proc, b"saving to")  # the evaluation at iteration 0 comes next
        time.sleep(0.5)
        out, err, waited = interrupt(proc, timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and b"Traceback" not in err, err
    assert b"not measured (interrupted)" in out
    assert waited < 2.0, waited
    assert load_checkpoint(tmp_path / "m.npz").iteration >= 1


def test_ctrl_c_while_importing_exits_quietly(text_dir):
    """SIGINT while the tool is still importing numpy and the core: exit 130
    without a traceback (-X importtime tells when numpy is being imported)."""
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "charrnn_ext.train",
                             "t.txt"], cwd=text_dir, env=ENV, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for line in proc.stderr:
            if b"numpy" in line:
                proc.send_signal(signal.SIGINT)
                break
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err


def test_closed_stdout_stops_and_saves(cli_texts, tmp_path):
    """`... | head`: training stops when stdout goes away and saves its state,
    instead of losing everything since the last interval save."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "charrnn_ext.train", str(cli_texts / "en.txt"),
         *map(str, TINY_FLAGS), "--iters", "1000000", "--sample-every", "50",
         "--checkpoint", "model.npz"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        env=ENV)
    wait_for_line(proc, b"iter 0")  # training runs (the header is printed first)
    proc.stdout.close()          # the reader goes away
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    # as a Unix tool ended by SIGPIPE: status 141; one line saying where the run is
    assert proc.returncode == 141 and "Traceback" not in err and err.count("\n") == 1, err
    assert "standard output was closed" in err and "training stopped at iteration" in err
    assert "saved in model.npz" in err
    assert load_checkpoint(tmp_path / "model.npz").iteration >= 1


def test_closed_stdout_after_the_last_iteration_says_all_ran(cli_texts, tmp_path):
    """The reader is gone from the start; the one iteration asked for still
    runs and is saved, and the message says so (not "stopped")."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "charrnn_ext.train", str(cli_texts / "en.txt"),
             *map(str, TINY_FLAGS), "--iters", "1", "--checkpoint", "model.npz"],
            cwd=tmp_path, stdout=write_end, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            env=ENV, timeout=120)
    finally:
        os.close(write_end)
    rc, err = proc.returncode, proc.stderr.decode()
    assert rc == 141 and err.count("\n") == 1 and "all 1 iteration ran" in err, err
    assert load_checkpoint(tmp_path / "model.npz").iteration == 1


def test_full_disk_on_stdout_stops_and_saves(text_dir):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with open("/dev/full", "w") as full:
        proc = start_training(text_dir, "--iters", 10**8, "--sample-every", 50,
                               "--checkpoint", "m.npz", stdout=full)
        _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 1 and "Traceback" not in err and err.count("\n") == 1, err
    assert "cannot write to standard output" in err and "saved in m.npz" in err
    assert load_checkpoint(text_dir / "m.npz").iteration >= 1


def test_closed_stdout_descriptor_stops_and_saves(text_dir):
    """`charrnn-train ... >&-`: Python starts without a stdout at all."""
    proc = subprocess.Popen([sys.executable, "-m", "charrnn_ext.train", "t.txt",
                             *map(str, SMALL_FLAGS), "--iters", str(10**8),
                             "--checkpoint", "m.npz"],
                            cwd=text_dir, env=ENV, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: os.close(1))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and b"Traceback" not in err and err.count(b"\n") == 1, err
    assert load_checkpoint(text_dir / "m.npz").iteration >= 1


@pytest.mark.parametrize("second, status, word", [(signal.SIGTERM, 143, "terminated"),
                                                   (signal.SIGINT, 130, "interrupted")])
def test_a_second_signal_stops_at_once_with_its_own_status(tmp_path, second, status, word):
    """charrnn-train's handlers: a first SIGTERM asks the loop to stop; a
    second one (during the save that follows, say) stops at once, and the
    exit status is still SIGTERM's, 143 (a second Ctrl-C's: 130)."""
    code = textwrap.dedent(f"""
        import os, signal, sys
        from charrnn_ext.cli.common import run
        from charrnn_ext.cli.train import _Signals
        def main(argv):
            with _Signals() as signals:
                os.kill(os.getpid(), signal.SIGTERM)      # asks the loop to stop
                assert signals.signum == signal.SIGTERM
                os.kill(os.getpid(), {int(second)})       # then stops at once
                raise AssertionError("not stopped")
        sys.exit(run(main, [], "charrnn-train"))
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=ENV, cwd=tmp_path,
                          capture_output=True, timeout=60)
    assert proc.returncode == status, proc.stderr
    assert proc.stderr.decode() == f"charrnn-train: {word}\n"
