"""The files charrnn-train writes, in subprocesses: the checkpoint (a
default name never replaces a model, --overwrite, files that are not
checkpoints refused, paths that cannot be written refused before training,
symlinks written through), the best-model file beside it, the lock of a
running run, and what a run that fails (diverges) leaves: never less than
there was.

Checkpoint files themselves (round trips, atomic saves, damaged files):
test_checkpoint, test_checkpoint_files.
"""
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from charrnn_ext import load_checkpoint
from charrnn_ext.run import training

from conftest import (ENV, SMALL_FLAGS, TINY_FLAGS, interrupt, run_cli, same_model,
                      sentence_text, sha, start_training, wait_for_line)

OLD_RUN_FLAGS = (*SMALL_FLAGS, "--sample-every", 1000)


# ---------------------------------------------------------------------------
# the checkpoint's name and path
# ---------------------------------------------------------------------------

def test_default_checkpoint_is_printed_and_never_replaces_a_model(long_run, tmp_path):
    d, out = long_run
    assert "saving to words.npz, the best model to words.best.npz" in out
    assert out.splitlines()[-1] == "sample from it: python -m charrnn_ext.sample words.npz"
    assert load_checkpoint(d / "words.npz").iteration == 4000
    # a second run of the same command picks the next free name
    (tmp_path / "words.txt").write_bytes((d / "words.txt").read_bytes())
    (tmp_path / "words.npz").write_bytes((d / "words.npz").read_bytes())
    before = sha(tmp_path / "words.npz")
    rc, out, err = run_cli("train", "words.txt", *SMALL_FLAGS, "--iters", 20, cwd=tmp_path)
    assert rc == 0, err
    assert "saving to words-2.npz" in out and sha(tmp_path / "words.npz") == before
    assert load_checkpoint(tmp_path / "words-2.npz").iteration == 20
    # and the next one, even when only a best-model file holds the name
    (tmp_path / "words-3.best.npz").write_bytes((d / "words.best.npz").read_bytes())
    rc, out, err = run_cli("train", "words.txt", *SMALL_FLAGS, "--iters", 20, cwd=tmp_path)
    assert rc == 0 and "saving to words-4.npz" in out, err


def test_checkpoint_refuses_to_overwrite_other_files(cli_texts, tmp_path):
    """--checkpoint naming a file that is not a checkpoint (say, the input
    text, by a slip) is refused before any training."""
    (tmp_path / "notes.txt").write_text("precious notes\n", encoding="utf-8")
    rc, _, err = run_cli("train", cli_texts / "en.txt", *TINY_FLAGS, "--iters", 5, "--checkpoint",
                         "notes.txt",
                         cwd=tmp_path)
    assert rc == 2 and "refusing to overwrite --checkpoint notes.txt" in err
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "precious notes\n"


def test_fresh_run_does_not_replace_a_trained_checkpoint(cli_texts, tiny_run, tmp_path):
    """Forgetting --resume must not silently overwrite a trained model: a fresh
    run onto an existing checkpoint is refused unless --overwrite is given."""
    ckpt = tmp_path / "model.npz"
    ckpt.write_bytes(tiny_run[0].read_bytes())
    before = sha(ckpt)
    rc, _, err = run_cli("train", cli_texts / "en.txt", *TINY_FLAGS, "--iters", 5, "--checkpoint",
                         ckpt,
                         cwd=tmp_path)
    assert rc == 2 and "already holds a run at iteration 300" in err and "--resume" in err
    assert len(err.strip().splitlines()) == 1 and sha(ckpt) == before
    rc, _, err = run_cli("train", cli_texts / "en.txt", *TINY_FLAGS, "--iters", 5, "--checkpoint",
                         ckpt,
                         "--overwrite", cwd=tmp_path)
    assert rc == 0, err
    assert load_checkpoint(ckpt).iteration == 5


@pytest.mark.parametrize("target", ["", "sub/", "missing/dir/model.npz", "/proc/model.npz"])
def test_unwritable_checkpoint_is_refused_before_training(cli_texts, tmp_path, target):
    (tmp_path / "sub").mkdir()
    rc, out, err = run_cli("train", cli_texts / "en.txt", *TINY_FLAGS, "--iters", 5,
                           "--checkpoint", target,
                           cwd=tmp_path)
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "iter 0" not in out  # nothing was trained


def test_a_name_too_long_for_the_save_is_refused_before_training(text_dir):
    name = "m" * 250 + ".npz"   # fits the file system, its temporary name does not
    rc, out, err = run_cli("train", "t.txt", *SMALL_FLAGS, "--iters", 1000, "--checkpoint", name,
                           cwd=text_dir)
    assert rc == 2 and "iter 0" not in out and err.count("\n") == 1, err
    assert "cannot write" in err


def test_a_default_name_too_long_for_the_best_file_is_refused_before_training(text_dir):
    stem = "y" * 235  # y...y.npz fits a 255-byte name, y...y.best.npz's temporary name does not
    (text_dir / f"{stem}.txt").write_bytes((text_dir / "t.txt").read_bytes())
    rc, out, err = run_cli("train", f"{stem}.txt", *SMALL_FLAGS, "--iters", 1000, cwd=text_dir)
    assert rc == 2 and "iter 0" not in out and err.count("\n") == 1, err
    assert "--checkpoint PATH" in err


@pytest.mark.parametrize("args,message", [
    (("--checkpoint", "m.npz", "--plot", "m.npz"), "--checkpoint m.npz is the same file as --plot m.npz"),
    (("--checkpoint", "m.npz", "--plot", "t.txt"), "is the same file as the input text t.txt"),
    (("--checkpoint", "m.npz", "--plot", "m.best.npz"), "the same file as the best-model file"),
    (("--resume", "r.npz", "--checkpoint", "c.npz", "--plot", "r.npz"), "--plot r.npz is the same"),
])
def test_outputs_must_not_name_inputs_or_each_other(text_dir, args, message):
    rc, _, err = run_cli("train", "t.txt", *SMALL_FLAGS, "--iters", 10, "--checkpoint", "r.npz",
                         cwd=text_dir)
    assert rc == 0, err
    before = {p.name: sha(p) for p in text_dir.iterdir() if p.is_file()}
    rc, out, err = run_cli("train", "t.txt", *SMALL_FLAGS, "--iters", 20, *args, cwd=text_dir)
    assert rc == 2 and message in err and err.count("\n") == 1, err
    assert {p.name: sha(p) for p in text_dir.iterdir() if p.is_file()} == before


def test_a_symlinked_checkpoint_is_written_through(text_dir):
    (text_dir / "store").mkdir()
    rc, _, err = run_cli("train", "t.txt", *SMALL_FLAGS, "--iters", 10, "--checkpoint",
                         "store/real.npz",
                         cwd=text_dir)
    assert rc == 0, err
    (text_dir / "link.npz").symlink_to(text_dir / "store" / "real.npz")
    rc, _, err = run_cli("train", "t.txt", "--resume", "link.npz", "--iters", 30, cwd=text_dir)
    assert rc == 0, err
    assert (text_dir / "link.npz").is_symlink()
    assert load_checkpoint(text_dir / "store" / "real.npz").iteration == 30


def test_a_dangling_symlink_checkpoint_is_created_through(text_dir):
    (text_dir / "store").mkdir()
    (text_dir / "link.npz").symlink_to(text_dir / "store" / "real.npz")
    rc, out, err = run_cli("train", "t.txt", *SMALL_FLAGS, "--iters", 20, "--checkpoint",
                           "link.npz",
                           cwd=text_dir)
    assert rc == 0, err
    assert (text_dir / "link.npz").is_symlink()
    assert load_checkpoint(text_dir / "store" / "real.npz").iteration == 20
    assert (text_dir / "store" / "real.best.npz").exists()  # beside the target
    assert not (text_dir / "link.best.npz").exists()


def test_the_output_rules_refuse_in_one_line_for_commands_and_the_library(tmp_path):
    """check_output, the rules every command that writes (and training.run)
    follows: an OutputError is both a one-line library error (errors.CharRNNError,
    which the commands report with exit 2) and a ValueError, never the commands'
    CLIError; without overwrite an existing file is refused too."""
    from charrnn_ext.cli.common import CLIError
    from charrnn_ext.errors import CharRNNError
    from charrnn_ext.ckpt.outputs import OutputError, check_output
    (tmp_path / "sub").mkdir()
    (tmp_path / "old.bin").write_bytes(b"kept")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, words in ((tmp_path / "sub", "is a directory"), (fifo, "not a regular file"),
                        (tmp_path / "no" / "x", "does not exist"), ("", "needs a file name")):
        with pytest.raises(OutputError, match=words) as caught:
            check_output(str(path), "--out")
        assert isinstance(caught.value, ValueError) and isinstance(caught.value, CharRNNError)
        assert not isinstance(caught.value, CLIError)   # the library never raises the commands' error
        assert caught.value.code == 2 and "\n" not in str(caught.value)
    check_output(str(tmp_path / "old.bin"), "--out")                  # may be replaced
    with pytest.raises(OutputError, match="old.bin already exists; pass --overwrite"):
        check_output(str(tmp_path / "old.bin"), "--out", overwrite=False)
    check_output(str(tmp_path / "new.bin"), "--out", overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "old.bin", "sub"]


def test_a_lock_is_taken_again_within_its_process_and_kept_until_the_last_release(tmp_path):
    """charrnn-train holds its files' locks and training.run takes them too:
    counted within a process; the lock file goes with the last holder."""
    from charrnn_ext._runlock import RunLock
    path = str(tmp_path / "m.npz")
    first, second = RunLock(path), RunLock(path)
    assert first.acquire() and second.acquire()
    second.release()
    assert (tmp_path / "m.npz.lock").exists()
    code = ("import sys; from charrnn_ext._runlock import RunLock; "
            "sys.exit(0 if RunLock(sys.argv[1]).acquire() else 3)")
    assert subprocess.run([sys.executable, "-c", code, path], env=ENV).returncode == 3
    first.release()
    assert not (tmp_path / "m.npz.lock").exists()
    assert subprocess.run([sys.executable, "-c", code, path], env=ENV).returncode == 0


# ---------------------------------------------------------------------------
# the lock of a running run
# ---------------------------------------------------------------------------

def test_a_second_run_on_the_same_checkpoint_is_refused(text_dir):
    first = start_training(text_dir, "--iters", 10**8, "--sample-every", 100, "--checkpoint",
                           "m.npz")
    try:
        wait_for_line(first, b"iter 0,")
        rc, out, err = run_cli("train", "t.txt", *SMALL_FLAGS, "--iters", 10, "--checkpoint",
                               "m.npz",
                               "--overwrite", cwd=text_dir)
        assert rc == 2 and out == "" and err.count("\n") == 1
        assert "another run is writing --checkpoint m.npz or its best-model file" in err
        assert f"(process {first.pid})" in err
        interrupt(first, timeout=60)
        assert first.returncode == 130
    finally:
        first.kill()
    trained = load_checkpoint(text_dir / "m.npz").iteration
    assert trained > 0
    # the lock went with the run; a lock file left by a crash holds nothing
    assert not (text_dir / "m.npz.lock").exists()
    (text_dir / "m.npz.lock").write_text("12345\n")
    rc, _, err = run_cli("train", "t.txt", "--resume", "m.npz", "--iters", trained + 5, cwd=text_dir)
    assert rc == 0, err
    assert load_checkpoint(text_dir / "m.npz").iteration == trained + 5


def test_another_run_cannot_write_a_running_runs_best_file(text_dir):
    first = start_training(text_dir, "--iters", 10**8, "--sample-every", 100, "--eval-every",
                            100, "--checkpoint", "m.npz")
    try:
        wait_for_line(first, b"iter 100,")
        rc, _, err = run_cli("train", "t.txt", *SMALL_FLAGS, "--iters", 10, "--checkpoint",
                             "m.best.npz", "--overwrite", "--no-keep-best", cwd=text_dir)
        assert rc == 2 and "another run is writing" in err, err
        interrupt(first, timeout=60)
        assert first.returncode == 130
    finally:
        first.kill()
    ckpt, best = load_checkpoint(text_dir / "m.npz"), load_checkpoint(text_dir / "m.best.npz")
    assert (best.iteration, best.best_val_bpc) == (ckpt.best_iteration, ckpt.best_val_bpc)


# ---------------------------------------------------------------------------
# --overwrite: a fresh run replaces the run and its best file
# ---------------------------------------------------------------------------

def _old_run(d, name="q.npz", iters=600, *extra):
    rc, _, err = run_cli("train", "t.txt", *OLD_RUN_FLAGS, "--iters", iters, "--eval-every", 200,
                         "--checkpoint", name, *extra, cwd=d)
    assert rc == 0, err
    return load_checkpoint(d / name)


@pytest.mark.parametrize("extra", [(), ("--hidden-size", 24)])
def test_overwrite_replaces_the_run_and_its_best_file(text_dir_20k, extra):
    old = _old_run(text_dir_20k)
    assert old.best_iteration == 600
    rc, out, err = run_cli("train", "t.txt", *OLD_RUN_FLAGS, "--iters", 100, "--eval-every", 20,
                           "--checkpoint", "q.npz", "--overwrite", *extra, cwd=text_dir_20k)
    assert rc == 0, err
    ckpt = load_checkpoint(text_dir_20k / "q.npz")
    best = load_checkpoint(text_dir_20k / "q.best.npz")
    assert ckpt.iteration == 100 and best.iteration == ckpt.best_iteration <= 100
    assert best.best_val_bpc == ckpt.best_val_bpc == min(ckpt.history["val_bpc"][1:])
    assert f"kept in {text_dir_20k / 'q.best.npz'}" in out or "kept in q.best.npz" in out


def test_overwrite_through_a_symlink(text_dir_20k):
    (text_dir_20k / "store").mkdir()
    _old_run(text_dir_20k, "store/real.npz")
    (text_dir_20k / "link.npz").symlink_to(text_dir_20k / "store" / "real.npz")
    rc, _, err = run_cli("train", "t.txt", *OLD_RUN_FLAGS, "--iters", 100, "--eval-every", 20,
                         "--checkpoint", "link.npz", "--overwrite", cwd=text_dir_20k)
    assert rc == 0, err
    best = load_checkpoint(text_dir_20k / "store" / "real.best.npz")
    assert best.iteration <= 100 and (text_dir_20k / "link.npz").is_symlink()


def test_overwrite_without_keep_best_leaves_no_best_file_of_the_old_run(text_dir_20k):
    _old_run(text_dir_20k)
    rc, _, err = run_cli("train", "t.txt", *OLD_RUN_FLAGS, "--iters", 50, "--checkpoint", "q.npz",
                         "--overwrite", "--no-keep-best", cwd=text_dir_20k)
    assert rc == 0, err
    assert load_checkpoint(text_dir_20k / "q.npz").iteration == 50
    assert not (text_dir_20k / "q.best.npz").exists()


def test_a_failed_fresh_run_leaves_the_old_run_whole(text_dir_20k):
    _old_run(text_dir_20k)
    before = {p: sha(text_dir_20k / p) for p in ("q.npz", "q.best.npz")}
    rc, _, err = run_cli("train", "t.txt", *OLD_RUN_FLAGS, "--iters", 3000, "--eval-every", 10,
                         "--learning-rate", 1e6, "--checkpoint", "q.npz", "--overwrite",
                         cwd=text_dir_20k)
    assert rc == 1 and "training diverged" in err, err
    assert {p: sha(text_dir_20k / p) for p in before} == before


# ---------------------------------------------------------------------------
# the best-model file
# ---------------------------------------------------------------------------

def test_resuming_a_best_file_in_place_is_refused(text_dir):
    rc, _, err = run_cli("train", "t.txt", *SMALL_FLAGS, "--iters", 300, "--eval-every", 100,
                         "--checkpoint", "m.npz", cwd=text_dir)
    assert rc == 0, err
    before = sha(text_dir / "m.best.npz")
    rc, out, err = run_cli("train", "t.txt", "--resume", "m.best.npz", "--iters", 400,
                           cwd=text_dir)
    assert rc == 2 and "best model kept by a run" in err and "--checkpoint" in err, err
    assert sha(text_dir / "m.best.npz") == before
    rc, _, err = run_cli("train", "t.txt", "--resume", "m.best.npz", "--iters", 400,
                         "--checkpoint", "from_best.npz", cwd=text_dir)
    assert rc == 0, err
    assert sha(text_dir / "m.best.npz") == before


def test_best_score_follows_the_best_file_across_resumes(text_dir):
    """A resume with --no-keep-best keeps no best file, so it must not claim
    a best the file does not hold; the next resume reads the file's score."""
    args = [*SMALL_FLAGS, "--eval-every", 100]
    assert run_cli("train", "t.txt", *args, "--iters", 300, "--checkpoint", "m.npz",
                   cwd=text_dir)[0] == 0
    kept = load_checkpoint(text_dir / "m.best.npz")
    for extra in (["--no-keep-best"], []):
        rc, out, err = run_cli("train", "t.txt", "--resume", "m.npz", "--iters",
                               600 if extra else 700, *extra, cwd=text_dir)
        assert rc == 0, err
    ckpt = load_checkpoint(text_dir / "m.npz")
    best = load_checkpoint(text_dir / "m.best.npz")
    assert (ckpt.best_iteration, ckpt.best_val_bpc) == (best.iteration, best.best_val_bpc)
    assert best.best_val_bpc <= kept.best_val_bpc
    m = re.search(r"^best validation: (\S+) bits/char at iteration (\d+), kept in m.best.npz$",
                  out, re.M)
    assert m and int(m.group(2)) == best.iteration


def test_an_untrained_model_is_never_kept_as_best(text_dir):
    rc, _, err = run_cli("train", "t.txt", *SMALL_FLAGS, "--iters", 5, "--eval-every", 1000,
                         "--checkpoint", "m.npz", cwd=text_dir)
    assert rc == 0, err
    assert load_checkpoint(text_dir / "m.best.npz").iteration == 5


def test_resume_keeps_its_own_best_and_judges_a_foreign_one_anew(text_dir_20k):
    _old_run(text_dir_20k, "a.npz", 400)
    rc, _, err = run_cli("train", "t.txt", "--resume", "a.npz", "--iters", 600, cwd=text_dir_20k)
    assert rc == 0, err
    a = load_checkpoint(text_dir_20k / "a.npz")
    assert a.best_iteration is not None and \
        load_checkpoint(text_dir_20k / "a.best.npz").iteration == a.best_iteration
    # another run's best file beside the checkpoint is not this run's best
    _old_run(text_dir_20k, "b.npz", 1000)
    (text_dir_20k / "a.best.npz").write_bytes((text_dir_20k / "b.best.npz").read_bytes())
    rc, _, err = run_cli("train", "t.txt", "--resume", "a.npz", "--iters", 800, cwd=text_dir_20k)
    assert rc == 0, err
    a = load_checkpoint(text_dir_20k / "a.npz")
    assert a.best_iteration <= 800
    assert load_checkpoint(text_dir_20k / "a.best.npz").iteration == a.best_iteration


def _zipf_text(path, n=30_000, symbols=2000):
    """A text of many symbols (like classical Chinese): Zipf-distributed ideographs."""
    rng = np.random.default_rng(0)
    w = 1 / np.arange(1, symbols + 1)
    ids = rng.choice(symbols, n, p=w / w.sum())
    path.write_text("".join(chr(0x4E00 + int(i)) for i in ids), encoding="utf-8")


def test_a_model_no_better_than_a_uniform_guess_is_never_kept_as_best(tmp_path):
    """Held-out text unlike anything trained on: "ab" repeated, then only "c"
    (5%, the held-out part). The model learns that c never comes: some 10
    bits/char on it against log2(3) = 1.58 for a uniform guess, on any CPU
    (a margin no rounding reaches, where a short run on a hard text lands
    either side of uniform by chance). Never kept as the best; warned about."""
    (tmp_path / "abc.txt").write_text("ab" * 4750 + "c" * 500, encoding="utf-8")
    rc, out, err = run_cli("train", "abc.txt", "--hidden-size", 16, "--seq-length", 16,
                           "--iters", 100, "--eval-every", 50, "--sample-every", 1000,
                           "--checkpoint", "abc.npz", cwd=tmp_path)
    assert rc == 0, err
    ckpt = load_checkpoint(tmp_path / "abc.npz")
    uniform = math.log2(len(ckpt.vocab))
    assert min(ckpt.history["val_bpc"][1:]) > uniform + 3   # worse than uniform, by far
    assert ckpt.best_val_bpc is None and not (tmp_path / "abc.best.npz").exists()
    assert "best validation" not in out
    assert "warning: this model is no better than a uniform guess (1.5850 bits/char)" in out


def test_a_text_of_one_character_learned_to_zero_bits_keeps_its_best(tmp_path):
    """One repeated character: a guess is certain and so is every model
    (0.0000 bits/char): nothing to beat, no warning, the best file kept."""
    (tmp_path / "a.txt").write_text("a" * 2000, encoding="utf-8")
    rc, out, err = run_cli("train", "a.txt", "--iters", 50, "--eval-every", 25,
                           "--checkpoint", "a.npz", cwd=tmp_path)
    assert rc == 0 and err == "", err
    assert "validation 0.0000" in out and "uniform" not in out
    assert "best validation: 0.0000 bits/char at iteration 25, kept in a.best.npz" in out
    assert load_checkpoint(tmp_path / "a.best.npz").iteration == 25


# ---------------------------------------------------------------------------
# divergence: exit 1, what to change, the last good files kept
# ---------------------------------------------------------------------------

def test_divergence_keeps_the_last_good_checkpoint(cli_texts, tiny_run, tmp_path):
    ckpt, _ = tiny_run
    before = sha(ckpt)
    rc, out, err = run_cli("train", cli_texts / "en.txt", *TINY_FLAGS, "--iters", 50,
                           "--learning-rate", 1e308, "--checkpoint", ckpt, "--overwrite",
                           cwd=tmp_path)
    assert rc == 1
    assert "diverged" in err and "--learning-rate" in err and "Traceback" not in err
    assert err.count("\n") == 1
    assert sha(ckpt) == before
    assert [p.name for p in ckpt.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_a_loss_far_above_a_uniform_guess_is_divergence(text_dir):
    rc, _, err = run_cli("train", "t.txt", *SMALL_FLAGS, "--iters", 10, "--checkpoint", "m.npz",
                         cwd=text_dir)
    assert rc == 0, err
    before = sha(text_dir / "m.npz")
    rc, out, err = run_cli("train", "t.txt", "--resume", "m.npz", "--iters", 5000,
                           "--learning-rate", 1e6, cwd=text_dir)
    assert rc == 1 and "training diverged" in err and "lower --learning-rate" in err, err
    assert "Traceback" not in err and err.count("\n") == 1
    assert sha(text_dir / "m.npz") == before


def test_a_fresh_run_that_diverges_leaves_no_files(text_dir):
    rc, _, err = run_cli("train", "t.txt", *SMALL_FLAGS, "--iters", 3000, "--eval-every", 10,
                         "--learning-rate", 1e6, "--checkpoint", "f.npz", cwd=text_dir)
    assert rc == 1 and "training diverged" in err, err
    assert not (text_dir / "f.npz").exists() and not (text_dir / "f.best.npz").exists()
    rc, _, err = run_cli("train", "t.txt", *SMALL_FLAGS, "--iters", 30, "--checkpoint", "f.npz",
                         cwd=text_dir)
    assert rc == 0, err


def test_a_run_whose_loss_doubles_a_uniform_guess_has_diverged(tmp_path):
    """min-char-rnn's learning rate on a wide model of a 2,000-symbol text:
    the loss rises to ~2.6 times that of a uniform guess (the earlier rule,
    3 times for 50 steps in a row, called this run a success)."""
    _zipf_text(tmp_path / "z.txt")
    rc, out, err = run_cli("train", "z.txt", "--hidden-size", 200, "--seq-length", 30,
                           "--iters", 1000, "--sample-every", 1000, "--checkpoint", "z.npz",
                           cwd=tmp_path)
    assert rc == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "training diverged at iteration 100" in err and "uniform guess" in err
    assert "try a lower --learning-rate (e.g. --learning-rate 0.01)" in err
    assert not (tmp_path / "z.npz").exists() and not (tmp_path / "z.best.npz").exists()


# A rate whose first update overflows the dtype's range
OVERFLOWING = {"float32": 1e38, "float64": 1e308}


@pytest.mark.parametrize("cell, layers", [("rnn", 1), ("rnn", 2), ("lstm", 1), ("gru", 2)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_cell_diverges_by_one_rule(cell, layers, dtype):
    """A learning rate that overflows: every cell, layers and dtype say
    "diverged at iteration N" (training.Diverged: charrnn-train's exit 1),
    never that the parameters are bad input; the suggestion is a round rate."""
    settings = {"hidden_size": 8, "seq_length": 8, "iters": 50, "cell": cell, "dtype": dtype,
                "num_layers": layers, "learning_rate": OVERFLOWING[dtype], "eval_every": 10**4,
                "sample_every": 10**4}
    with pytest.raises(training.Diverged) as caught:
        training.run(sentence_text(20), settings)
    message = str(caught.value)
    assert re.match(r"training diverged at iteration [12]: ", message), message
    assert "e.g. --learning-rate 0.1, the min-char-rnn recipe's" in message, message


def test_the_suggested_rate_is_round_and_below(tmp_path):
    from charrnn_ext.core.divergence import lower_rate, suggested_rate
    cases = {1e6: 1e5, 0.1: 0.01, 0.003: 2e-4, 0.007: 5e-4, 50: 5, 1e308: 1e307, 0.3: 0.02,
             1.0: 0.1, 2e-290: 2e-291}
    for rate, lower in cases.items():
        assert lower_rate(rate) == lower, rate
    assert suggested_rate(1e6, 0.1) == 0.1 and suggested_rate(0.5, 0.1) == 0.05
    # charrnn-train: exit 1, one short line, a round rate, no 130-digit ratio
    (tmp_path / "t.txt").write_text(sentence_text(40), encoding="utf-8")
    rc, _, err = run_cli("train", "t.txt", *TINY_FLAGS, "--iters", 300, "--learning-rate",
                         1e300, "--checkpoint", "d.npz", cwd=tmp_path)
    assert rc == 1 and err.count("\n") == 1 and len(err) < 400, err
    assert "e.g. --learning-rate 0.1, the min-char-rnn recipe's" in err
    rc, _, err = run_cli("train", "t.txt", *TINY_FLAGS, "--iters", 300, "--learning-rate", 1e38,
                         "--cell", "gru", "--dtype", "float32", "--checkpoint", "d.npz",
                         cwd=tmp_path)
    assert rc == 1 and re.search(r"diverged at iteration \d+: ", err), err
    assert not (tmp_path / "d.npz").exists()


def test_the_best_model_of_an_adam_run_is_its_state_then(tmp_path):
    """The best-model file of a batched-recipe run (Adam, an embedding) holds
    the model as it was at its iteration, Adam's moments and step count
    included: the state the same run (training.run) has when stopped there;
    and it resumes."""
    text = sentence_text()
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    settings = dict(batch_size=2, hidden_size=32, embedding_size=8, learning_rate=0.02,
                    sample_every=10**4, eval_every=100, iters=1500)
    args = ["t.txt"] + [a for k, v in settings.items() for a in (f"--{k.replace('_', '-')}", v)]
    rc, out, err = run_cli("train", *args, "--checkpoint", "a.npz", cwd=tmp_path)
    assert rc == 0, err
    best, last = load_checkpoint(tmp_path / "a.best.npz"), load_checkpoint(tmp_path / "a.npz")
    n = best.iteration
    assert n < last.iteration == last.model.adam_steps == 1500   # overfits: best earlier
    assert best.model.adam_steps == n and best.model.optimizer == "adam"

    class Where(training.Reporter):
        iteration = 0

        def progress(self, run, steps):
            self.iteration = run.iteration

    where = Where()   # calls into the core end at evaluations: the run stops at n exactly
    then = training.run(text, settings, reporter=where, stop=lambda: where.iteration >= n).run
    assert then.iteration == n
    assert same_model(then.model, best.model) and np.array_equal(then.hidden, best.hidden)
    rc, _, err = run_cli("train", "t.txt", "--resume", "a.best.npz", "--iters", n + 30,
                         "--checkpoint", "resumed.npz", cwd=tmp_path)
    assert rc == 0, err
    assert load_checkpoint(tmp_path / "resumed.npz").model.adam_steps == n + 30
