"""What a user takes home from a run: a saved model (never replacing an
earlier one), the best model kept, honest figures, samples that continue the
state training left, streamed and interruptible; and runs that end cleanly
when something around them fails (outputs, locks, paths, signals).

The CLI runs are subprocesses in temporary directories (``conftest.run_cli``).
"""
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from charrnn_ext import CharRNN, Checkpoint, Vocab, evaluate, load_checkpoint
from charrnn_ext.sample import generate, generate_blocks
from conftest import ENV, english_like_text, run_cli, run_many, sha

REPO = Path(__file__).resolve().parent.parent
SMALL = ["--hidden-size", 16, "--seq-length", 16, "--sample-length", 20]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A model trained for a few thousand iterations on generated English,
    through the command users run (default checkpoint name)."""
    d = tmp_path_factory.mktemp("takehome")
    (d / "words.txt").write_text(english_like_text(60_000, seed=3), encoding="utf-8")
    rc, out, err = run_cli("train", "words.txt", "--hidden-size", 64, "--iters", 4000,
                           "--sample-every", 1000, "--eval-every", 500, cwd=d)
    assert rc == 0, err
    return d, out


# ---------------------------------------------------------------------------
# the saved model, the best model, the figures
# ---------------------------------------------------------------------------

def test_default_checkpoint_is_printed_and_never_replaces_a_model(model_dir, tmp_path):
    d, out = model_dir
    assert "saving to words.npz, the best model to words.best.npz" in out
    assert out.splitlines()[-1] == "sample from it: python -m charrnn_ext.sample words.npz"
    assert load_checkpoint(d / "words.npz").iteration == 4000
    # a second run of the same command picks the next free name
    (tmp_path / "words.txt").write_bytes((d / "words.txt").read_bytes())
    (tmp_path / "words.npz").write_bytes((d / "words.npz").read_bytes())
    before = sha(tmp_path / "words.npz")
    rc, out, err = run_cli("train", "words.txt", *SMALL, "--iters", 20, cwd=tmp_path)
    assert rc == 0, err
    assert "saving to words-2.npz" in out and sha(tmp_path / "words.npz") == before
    assert load_checkpoint(tmp_path / "words-2.npz").iteration == 20
    # and the next one, even when only a best-model file holds the name
    (tmp_path / "words-3.best.npz").write_bytes((d / "words.best.npz").read_bytes())
    rc, out, err = run_cli("train", "words.txt", *SMALL, "--iters", 20, cwd=tmp_path)
    assert rc == 0 and "saving to words-4.npz" in out, err


def test_kept_best_model_rescores_exactly(model_dir):
    d, out = model_dir
    ckpt, best = load_checkpoint(d / "words.npz"), load_checkpoint(d / "words.best.npz")
    text = (d / "words.txt").read_text(encoding="utf-8")
    ids = Vocab.from_text(text).encode(text)
    n_train = ids.size - int(ids.size * 0.05)
    vals = ckpt.history["val_bpc"]
    assert ckpt.best_val_bpc == best.best_val_bpc == vals.min()
    assert best.iteration == ckpt.best_iteration == ckpt.history["val_iteration"][np.argmin(vals)]
    assert evaluate(best.model, ids, n_train, best.hidden, best.position).val_bpc == best.best_val_bpc
    m = re.search(r"^best validation: (\S+) bits/char at iteration (\d+), kept in words.best.npz$",
                  out, re.M)
    assert m and int(m.group(2)) == best.iteration
    # the model learnt: far below a uniform guess, train and validation alike
    V = len(ckpt.vocab)
    assert best.best_val_bpc < 0.7 * math.log2(V)
    assert ckpt.history["train_bpc"][-1] < 0.7 * math.log2(V)


def test_checkpoint_prints_in_one_line(model_dir):
    text = repr(load_checkpoint(model_dir[0] / "words.npz"))
    assert "\n" not in text and len(text) < 250 and "iteration 4000" in text
    assert str(load_checkpoint(model_dir[0] / "words.npz")) == text


# ---------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------

def _char_stats_close(sample: str, text: str, varied: bool = True) -> None:
    """The sample reads like the text: made of the text's common characters,
    no character repeated in a longer run than the text has (the saturated
    mode prints runs like QQZZKK), and, unless greedy, varied."""
    counts = Counter(text)
    common, mass = set(), 0
    for ch, c in counts.most_common():
        if mass >= 0.95 * len(text):
            break
        common.add(ch)
        mass += c
    assert sum(ch in common for ch in sample) >= 0.9 * len(sample), sample
    longest_text = max(len(m.group(0)) for m in re.finditer(r"(.)\1*", text, re.S))
    longest = max(len(m.group(0)) for m in re.finditer(r"(.)\1*", sample, re.S))
    assert longest <= longest_text + 1, sample
    if varied:
        assert len(set(sample)) >= 8, sample


def test_samples_read_like_the_training_text(model_dir):
    d, _ = model_dir
    text = (d / "words.txt").read_text(encoding="utf-8")
    results = run_many([
        ("sample", "words.npz", "--prime", "The", "--temperature", 0, "--length", 300),
        ("sample", "words.npz", "--length", 2000, "--temperature", 0.8),
        ("sample", "words.best.npz", "--length", 300),
    ], cwd=d)
    for rc, out, err in results:
        assert rc == 0 and err == "", err
    greedy, warm, best = (out[:-1] for _, out, _ in results)
    assert greedy.startswith("The") and len(greedy) == 303
    # greedy decoding repeats the likeliest words (as min-char-rnn's would), but
    # they are words of the text, not the saturated mode's garbage
    _char_stats_close(greedy[3:], text, varied=False)
    words = set(re.findall(r"[A-Za-z]+", text))
    generated = re.findall(r"[A-Za-z]+", greedy[3:])[:-1]  # the last one may be cut off
    assert len(generated) >= 20 and sum(w in words for w in generated) >= 0.9 * len(generated)
    _char_stats_close(best, text)
    # at temperature 0.8 the character frequencies follow the text's
    f_text, f_warm = Counter(text), Counter(warm)
    tv = 0.5 * sum(abs(f_text[c] / len(text) - f_warm[c] / len(warm)) for c in f_text | f_warm)
    assert tv < 0.2, warm


def test_sampling_continues_from_the_saved_state(model_dir):
    """Default: from the state training left (the checkpoint's hidden); the
    prime is read from there. --from-zero: min-char-rnn's sample() from zero."""
    saved = load_checkpoint(model_dir[0] / "words.npz")
    model, vocab = saved.model, saved.vocab
    assert np.abs(saved.hidden).max() > 0.1
    # a state far from zero, so that the two starts give different text
    hidden = np.random.default_rng(1).uniform(-1, 1, (model.hidden_size, 1))
    ckpt = Checkpoint(model=model, vocab=vocab, hidden=hidden)
    prime = vocab.encode("The")
    h = model.advance(prime[:-1], hidden)
    expected = model.sample(h, int(prime[-1]), 200, temperature=0.7, rng=np.random.default_rng(5))
    assert generate(ckpt, 200, 0.7, "The", seed=5) == "The" + vocab.decode(expected)
    h0 = model.advance(prime[:-1], None)
    zero = model.sample(h0, int(prime[-1]), 200, temperature=0.7, rng=np.random.default_rng(5))
    assert generate(ckpt, 200, 0.7, "The", seed=5, from_zero=True) == "The" + vocab.decode(zero)
    assert vocab.decode(zero) != vocab.decode(expected)
    # without a prime, the first character is the model's own prediction at that state
    y = model.params["Why"] @ hidden + model.params["by"]
    first = int(np.argmax(y))
    rest = model.sample(hidden, first, 99, temperature=0)
    assert generate(ckpt, 100, 0) == vocab.decode([first, *rest])
    assert generate(saved, 100, 0) != generate(ckpt, 100, 0)
    newline = vocab.chars.index("\n")
    assert generate(ckpt, 50, 0, from_zero=True) == vocab.decode(
        model.sample(None, newline, 50, temperature=0))


def test_streamed_text_does_not_depend_on_block_sizes(model_dir):
    ckpt = load_checkpoint(model_dir[0] / "words.npz")
    pieces = list(generate_blocks(ckpt, 5000, 1.0, "The", seed=2, block_seconds=1e-9))
    assert len(pieces) > 20 and pieces[0] == "The"
    whole = "".join(generate_blocks(ckpt, 5000, 1.0, "The", seed=2, block_seconds=100.0))
    assert "".join(pieces) == whole and len(whole) == 5003


def test_sample_streams_and_stops_at_ctrl_c(model_dir):
    """A huge --length prints as it goes; Ctrl-C stops within a second, exit
    130, the text so far printed, no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "charrnn_ext.sample", "words.npz",
                             "--length", str(10**9)], cwd=model_dir[0], env=ENV,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        first = proc.stdout.read(2000)      # output arrives while generating
        assert len(first) == 2000
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=30)
        waited = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert waited < 1.0, waited
    assert b"Traceback" not in err and err.count(b"\n") == 1
    assert (first + rest).endswith(b"\n") and len(first + rest) < 10**8


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
    proc = subprocess.run([sys.executable, "-S", "-m", "charrnn_ext.train", "x.txt"],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "pip install ." in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------
# progress bar and plot
# ---------------------------------------------------------------------------

def test_progress_bar_on_a_terminal_without_a_size(tmp_path):
    """Some consoles report 0 x 0: the bar still shows, with a moving loss."""
    pty = pytest.importorskip("pty")
    import fcntl
    import struct
    import termios
    (tmp_path / "t.txt").write_text(english_like_text(5000), encoding="utf-8")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "charrnn_ext.train", "t.txt", *map(str, SMALL),
                             "--iters", "3000", "--sample-every", "100000"], cwd=tmp_path,
                            env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=slave)
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


def test_plot_reaches_the_last_iteration(tmp_path, monkeypatch):
    """The curves go through the end of the run: the open interval and the
    final evaluation are drawn; bits per character throughout."""
    from charrnn_ext import train

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


# ---------------------------------------------------------------------------
# runs that end cleanly: locks, paths, failing outputs, signals, memory
# ---------------------------------------------------------------------------

@pytest.fixture
def text_dir(tmp_path):
    (tmp_path / "t.txt").write_text(english_like_text(8000, seed=1), encoding="utf-8")
    return tmp_path


def _start_training(cwd, *args, stdout=subprocess.PIPE, **kw):
    return subprocess.Popen([sys.executable, "-m", "charrnn_ext.train", "t.txt",
                             *map(str, SMALL), *map(str, args)], cwd=cwd, env=ENV,
                            stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE, **kw)


def _wait_for_line(proc, prefix: bytes):
    for line in proc.stdout:
        if line.startswith(prefix):
            return
    raise AssertionError(f"no line starting with {prefix!r}")


def test_a_second_run_on_the_same_checkpoint_is_refused(text_dir):
    first = _start_training(text_dir, "--iters", 10**8, "--sample-every", 100, "--checkpoint", "m.npz")
    try:
        _wait_for_line(first, b"iter 0,")
        rc, out, err = run_cli("train", "t.txt", *SMALL, "--iters", 10, "--checkpoint", "m.npz",
                               "--overwrite", cwd=text_dir)
        assert rc == 2 and out == "" and err.count("\n") == 1
        assert "another run is writing --checkpoint m.npz or its best-model file" in err
        assert f"(process {first.pid})" in err
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=60) == 130
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


@pytest.mark.parametrize("args,message", [
    (("--checkpoint", "m.npz", "--plot", "m.npz"), "--checkpoint m.npz is the same file as --plot m.npz"),
    (("--checkpoint", "m.npz", "--plot", "t.txt"), "is the same file as the input text t.txt"),
    (("--checkpoint", "m.npz", "--plot", "m.best.npz"), "the same file as the best-model file"),
    (("--resume", "r.npz", "--checkpoint", "c.npz", "--plot", "r.npz"), "--plot r.npz is the same"),
])
def test_outputs_must_not_name_inputs_or_each_other(text_dir, args, message):
    rc, _, err = run_cli("train", "t.txt", *SMALL, "--iters", 10, "--checkpoint", "r.npz",
                         cwd=text_dir)
    assert rc == 0, err
    before = {p.name: sha(p) for p in text_dir.iterdir() if p.is_file()}
    rc, out, err = run_cli("train", "t.txt", *SMALL, "--iters", 20, *args, cwd=text_dir)
    assert rc == 2 and message in err and err.count("\n") == 1, err
    assert {p.name: sha(p) for p in text_dir.iterdir() if p.is_file()} == before


def test_full_disk_on_stdout_stops_and_saves(text_dir):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with open("/dev/full", "w") as full:
        proc = _start_training(text_dir, "--iters", 10**8, "--sample-every", 50,
                               "--checkpoint", "m.npz", stdout=full)
        _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 1 and "Traceback" not in err and err.count("\n") == 1, err
    assert "cannot write to standard output" in err and "saved in m.npz" in err
    assert load_checkpoint(text_dir / "m.npz").iteration >= 1


def test_closed_stdout_descriptor_stops_and_saves(text_dir):
    """`charrnn-train ... >&-`: Python starts without a stdout at all."""
    proc = subprocess.Popen([sys.executable, "-m", "charrnn_ext.train", "t.txt", *map(str, SMALL),
                             "--iters", str(10**8), "--checkpoint", "m.npz"], cwd=text_dir,
                            env=ENV, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: os.close(1))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and b"Traceback" not in err and err.count(b"\n") == 1, err
    assert load_checkpoint(text_dir / "m.npz").iteration >= 1


def test_a_name_too_long_for_the_save_is_refused_before_training(text_dir):
    name = "m" * 250 + ".npz"   # fits the file system, its temporary name does not
    rc, out, err = run_cli("train", "t.txt", *SMALL, "--iters", 1000, "--checkpoint", name,
                           cwd=text_dir)
    assert rc == 2 and "iter 0" not in out and err.count("\n") == 1, err
    assert "cannot write" in err


def test_a_symlinked_checkpoint_is_written_through(text_dir):
    (text_dir / "store").mkdir()
    rc, _, err = run_cli("train", "t.txt", *SMALL, "--iters", 10, "--checkpoint", "store/real.npz",
                         cwd=text_dir)
    assert rc == 0, err
    (text_dir / "link.npz").symlink_to(text_dir / "store" / "real.npz")
    rc, _, err = run_cli("train", "t.txt", "--resume", "link.npz", "--iters", 30, cwd=text_dir)
    assert rc == 0, err
    assert (text_dir / "link.npz").is_symlink()
    assert load_checkpoint(text_dir / "store" / "real.npz").iteration == 30


def test_a_loss_far_above_a_uniform_guess_is_divergence(text_dir):
    rc, _, err = run_cli("train", "t.txt", *SMALL, "--iters", 10, "--checkpoint", "m.npz",
                         cwd=text_dir)
    assert rc == 0, err
    before = sha(text_dir / "m.npz")
    rc, out, err = run_cli("train", "t.txt", "--resume", "m.npz", "--iters", 5000,
                           "--learning-rate", 1e6, cwd=text_dir)
    assert rc == 1 and "training diverged" in err and "lower --learning-rate" in err, err
    assert "Traceback" not in err and err.count("\n") == 1
    assert sha(text_dir / "m.npz") == before


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


def test_memory_guard_honours_cgroup_limits(tmp_path):
    from charrnn_ext._cli import cgroup_room

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
# the best-model file across runs (found by an independent review)
# ---------------------------------------------------------------------------

def test_resuming_a_best_file_in_place_is_refused(text_dir):
    rc, _, err = run_cli("train", "t.txt", *SMALL, "--iters", 300, "--eval-every", 100,
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


def test_another_run_cannot_write_a_running_runs_best_file(text_dir):
    first = _start_training(text_dir, "--iters", 10**8, "--sample-every", 100, "--eval-every",
                            100, "--checkpoint", "m.npz")
    try:
        _wait_for_line(first, b"iter 100,")
        rc, _, err = run_cli("train", "t.txt", *SMALL, "--iters", 10, "--checkpoint",
                             "m.best.npz", "--overwrite", "--no-keep-best", cwd=text_dir)
        assert rc == 2 and "another run is writing" in err, err
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=60) == 130
    finally:
        first.kill()
    ckpt, best = load_checkpoint(text_dir / "m.npz"), load_checkpoint(text_dir / "m.best.npz")
    assert (best.iteration, best.best_val_bpc) == (ckpt.best_iteration, ckpt.best_val_bpc)


def test_best_score_follows_the_best_file_across_resumes(text_dir):
    """A resume with --no-keep-best keeps no best file, so it must not claim
    a best the file does not hold; the next resume reads the file's score."""
    args = [*SMALL, "--eval-every", 100]
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


def test_a_fresh_run_that_diverges_leaves_no_files(text_dir):
    rc, _, err = run_cli("train", "t.txt", *SMALL, "--iters", 3000, "--eval-every", 10,
                         "--learning-rate", 1e6, "--checkpoint", "f.npz", cwd=text_dir)
    assert rc == 1 and "training diverged" in err, err
    assert not (text_dir / "f.npz").exists() and not (text_dir / "f.best.npz").exists()
    rc, _, err = run_cli("train", "t.txt", *SMALL, "--iters", 30, "--checkpoint", "f.npz",
                         cwd=text_dir)
    assert rc == 0, err


def test_an_untrained_model_is_never_kept_as_best(text_dir):
    rc, _, err = run_cli("train", "t.txt", *SMALL, "--iters", 5, "--eval-every", 1000,
                         "--checkpoint", "m.npz", cwd=text_dir)
    assert rc == 0, err
    assert load_checkpoint(text_dir / "m.best.npz").iteration == 5


def test_a_default_name_too_long_for_the_best_file_is_refused_before_training(text_dir):
    stem = "y" * 235  # y...y.npz fits a 255-byte name, y...y.best.npz's temporary name does not
    (text_dir / f"{stem}.txt").write_bytes((text_dir / "t.txt").read_bytes())
    rc, out, err = run_cli("train", f"{stem}.txt", *SMALL, "--iters", 1000, cwd=text_dir)
    assert rc == 2 and "iter 0" not in out and err.count("\n") == 1, err
    assert "--checkpoint PATH" in err


def test_a_dangling_symlink_checkpoint_is_created_through(text_dir):
    (text_dir / "store").mkdir()
    (text_dir / "link.npz").symlink_to(text_dir / "store" / "real.npz")
    rc, out, err = run_cli("train", "t.txt", *SMALL, "--iters", 20, "--checkpoint", "link.npz",
                           cwd=text_dir)
    assert rc == 0, err
    assert (text_dir / "link.npz").is_symlink()
    assert load_checkpoint(text_dir / "store" / "real.npz").iteration == 20
    assert (text_dir / "store" / "real.best.npz").exists()  # beside the target
    assert not (text_dir / "link.best.npz").exists()


def test_devices_are_not_text(text_dir):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    rc, out, err = run_cli("train", "/dev/zero", cwd=text_dir)
    assert rc == 2 and "not a text file" in err and err.count("\n") == 1


def test_stored_sample_length_is_bounded(text_dir):
    """Settings a resumed run takes from a checkpoint pass the flags' checks."""
    rc, _, err = run_cli("train", "t.txt", *SMALL, "--iters", 5, "--checkpoint", "m.npz",
                         cwd=text_dir)
    assert rc == 0, err
    ckpt = load_checkpoint(text_dir / "m.npz")
    ckpt.hyperparameters["sample_length"] = 2**31 - 1
    ckpt.save(text_dir / "m.npz")
    rc, out, err = run_cli("train", "t.txt", "--resume", "m.npz", "--iters", 10, cwd=text_dir)
    assert rc == 2 and "sample_length" in err and "at most" in err, err


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
        _wait_for_line(proc, b"saving to")  # the evaluation at iteration 0 comes next
        time.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        waited = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == 130 and b"Traceback" not in err, err
    assert b"not measured (interrupted)" in out
    assert waited < 2.0, waited
    assert load_checkpoint(tmp_path / "m.npz").iteration >= 1


def test_sampling_at_a_tiny_temperature_is_greedy_and_quiet(model_dir):
    rc1, greedy, err1 = run_cli("sample", "words.npz", "--temperature", 0, "--length", 50,
                                cwd=model_dir[0])
    rc2, tiny, err2 = run_cli("sample", "words.npz", "--temperature", 1e-320, "--length", 50,
                              cwd=model_dir[0])
    assert rc1 == rc2 == 0 and err1 == err2 == ""
    assert tiny[0] == greedy[0]
