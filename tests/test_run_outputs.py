"""What a training run leaves for the user: a fresh run replaces a checkpoint
together with its best-model file; a diverged run says so (exit 1) and what
to change; a model no better than a uniform guess is never called best.

The CLI runs are subprocesses in temporary directories (``conftest.run_cli``)."""
import math

import numpy as np
import pytest

from charrnn_ext import evaluate, load_checkpoint
from conftest import english_like_text, run_cli, sha

SMALL = ["--hidden-size", 16, "--seq-length", 16, "--sample-every", 1000]


@pytest.fixture
def words(tmp_path):
    (tmp_path / "t.txt").write_text(english_like_text(20_000, seed=4), encoding="utf-8")
    return tmp_path


def _zipf_text(path, n=30_000, symbols=2000):
    """A text of many symbols (like classical Chinese): Zipf-distributed ideographs."""
    rng = np.random.default_rng(0)
    w = 1 / np.arange(1, symbols + 1)
    ids = rng.choice(symbols, n, p=w / w.sum())
    path.write_text("".join(chr(0x4E00 + int(i)) for i in ids), encoding="utf-8")


def _old_run(d, name="q.npz", iters=600, *extra):
    rc, _, err = run_cli("train", "t.txt", *SMALL, "--iters", iters, "--eval-every", 200,
                         "--checkpoint", name, *extra, cwd=d)
    assert rc == 0, err
    return load_checkpoint(d / name)


@pytest.mark.parametrize("extra", [(), ("--hidden-size", 24)])
def test_overwrite_replaces_the_run_and_its_best_file(words, extra):
    old = _old_run(words)
    assert old.best_iteration == 600
    rc, out, err = run_cli("train", "t.txt", *SMALL, "--iters", 100, "--eval-every", 20,
                           "--checkpoint", "q.npz", "--overwrite", *extra, cwd=words)
    assert rc == 0, err
    ckpt, best = load_checkpoint(words / "q.npz"), load_checkpoint(words / "q.best.npz")
    assert ckpt.iteration == 100 and best.iteration == ckpt.best_iteration <= 100
    assert best.best_val_bpc == ckpt.best_val_bpc == min(ckpt.history["val_bpc"][1:])
    assert f"kept in {words / 'q.best.npz'}" in out or "kept in q.best.npz" in out


def test_overwrite_through_a_symlink(words):
    (words / "store").mkdir()
    _old_run(words, "store/real.npz")
    (words / "link.npz").symlink_to(words / "store" / "real.npz")
    rc, _, err = run_cli("train", "t.txt", *SMALL, "--iters", 100, "--eval-every", 20,
                         "--checkpoint", "link.npz", "--overwrite", cwd=words)
    assert rc == 0, err
    best = load_checkpoint(words / "store" / "real.best.npz")
    assert best.iteration <= 100 and (words / "link.npz").is_symlink()


def test_overwrite_without_keep_best_leaves_no_best_file_of_the_old_run(words):
    _old_run(words)
    rc, _, err = run_cli("train", "t.txt", *SMALL, "--iters", 50, "--checkpoint", "q.npz",
                         "--overwrite", "--no-keep-best", cwd=words)
    assert rc == 0, err
    assert load_checkpoint(words / "q.npz").iteration == 50
    assert not (words / "q.best.npz").exists()


def test_a_failed_fresh_run_leaves_the_old_run_whole(words):
    _old_run(words)
    before = {p: sha(words / p) for p in ("q.npz", "q.best.npz")}
    rc, _, err = run_cli("train", "t.txt", *SMALL, "--iters", 3000, "--eval-every", 10,
                         "--learning-rate", 1e6, "--checkpoint", "q.npz", "--overwrite",
                         cwd=words)
    assert rc == 1 and "training diverged" in err, err
    assert {p: sha(words / p) for p in before} == before


def test_resume_keeps_its_own_best_and_judges_a_foreign_one_anew(words):
    _old_run(words, "a.npz", 400)
    rc, _, err = run_cli("train", "t.txt", "--resume", "a.npz", "--iters", 600, cwd=words)
    assert rc == 0, err
    a = load_checkpoint(words / "a.npz")
    assert a.best_iteration is not None and \
        load_checkpoint(words / "a.best.npz").iteration == a.best_iteration
    # another run's best file beside the checkpoint is not this run's best
    _old_run(words, "b.npz", 1000)
    (words / "a.best.npz").write_bytes((words / "b.best.npz").read_bytes())
    rc, _, err = run_cli("train", "t.txt", "--resume", "a.npz", "--iters", 800, cwd=words)
    assert rc == 0, err
    a = load_checkpoint(words / "a.npz")
    assert a.best_iteration <= 800
    assert load_checkpoint(words / "a.best.npz").iteration == a.best_iteration


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
    assert "try a lower --learning-rate (e.g. --learning-rate 0.05)" in err
    assert not (tmp_path / "z.npz").exists() and not (tmp_path / "z.best.npz").exists()


def test_a_model_no_better_than_a_uniform_guess_is_never_kept_as_best(tmp_path):
    _zipf_text(tmp_path / "z.txt")
    rc, out, err = run_cli("train", "z.txt", "--hidden-size", 128, "--seq-length", 30,
                           "--iters", 100, "--eval-every", 100, "--sample-every", 1000,
                           "--checkpoint", "z.npz", cwd=tmp_path)
    assert rc == 0, err
    ckpt = load_checkpoint(tmp_path / "z.npz")
    uniform = math.log2(len(ckpt.vocab))
    assert ckpt.history["val_bpc"][-1] > uniform   # this short run is worse than uniform
    assert ckpt.best_val_bpc is None and not (tmp_path / "z.best.npz").exists()
    assert "best validation" not in out
    assert "warning: this model is no better than a uniform guess" in out


def test_figures_are_those_of_the_saved_state(words):
    ckpt = _old_run(words)
    text = (words / "t.txt").read_text(encoding="utf-8")
    from charrnn_ext import Vocab
    ids = Vocab.from_text(text).encode(text)
    n_train = ids.size - int(ids.size * 0.05)
    s = evaluate(ckpt.model, ids, n_train, ckpt.hidden, ckpt.position)
    assert s.val_bpc == ckpt.history["val_bpc"][-1]
