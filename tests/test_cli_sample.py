"""charrnn-sample (``python -m charrnn_ext.sample``) and the functions
behind it (charrnn_ext.use.generation.generate, generate_blocks): the same text for
the same seed, primes, continuing from the state training left, streaming
and Ctrl-C, bad input in one line; a trained model's samples read like its
text. The runs are subprocesses in temporary directories.

The model's own sampling (CharRNN.sample against the reference):
test_model_sampling.
"""
import re
import subprocess
import sys
from collections import Counter

import numpy as np

from charrnn_ext import Checkpoint, load_checkpoint
from charrnn_ext.use.generation import generate, generate_blocks

from conftest import ENV, interrupt, run_cli, run_many


def test_sample_is_deterministic_with_a_seed(tiny_run):
    ckpt_path, _ = tiny_run
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


def test_sample_bad_input(tiny_run, tmp_path):
    ckpt_path, _ = tiny_run
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


def test_samples_read_like_the_training_text(long_run):
    d, _ = long_run
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


def test_sampling_continues_from_the_saved_state(long_run):
    """Default: from the state training left (the checkpoint's hidden); the
    prime is read from there. --from-zero: min-char-rnn's sample() from zero."""
    saved = load_checkpoint(long_run[0] / "words.npz")
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


def test_streamed_text_does_not_depend_on_block_sizes(long_run):
    ckpt = load_checkpoint(long_run[0] / "words.npz")
    pieces = list(generate_blocks(ckpt, 5000, 1.0, "The", seed=2, block_seconds=1e-9))
    assert len(pieces) > 20 and pieces[0] == "The"
    whole = "".join(generate_blocks(ckpt, 5000, 1.0, "The", seed=2, block_seconds=100.0))
    assert "".join(pieces) == whole and len(whole) == 5003


def test_sample_streams_and_stops_at_ctrl_c(long_run):
    """A huge --length prints as it goes; Ctrl-C stops within a second, exit
    130, the text so far printed, no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "charrnn_ext.sample", "words.npz",
                             "--length", str(10**9)], cwd=long_run[0], env=ENV,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        first = proc.stdout.read(2000)      # output arrives while generating
        assert len(first) == 2000
        rest, err, waited = interrupt(proc, timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert waited < 1.0, waited
    assert b"Traceback" not in err and err.count(b"\n") == 1
    assert (first + rest).endswith(b"\n") and len(first + rest) < 10**8


def test_sampling_at_a_tiny_temperature_is_greedy_and_quiet(long_run):
    rc1, greedy, err1 = run_cli("sample", "words.npz", "--temperature", 0, "--length", 50,
                                cwd=long_run[0])
    rc2, tiny, err2 = run_cli("sample", "words.npz", "--temperature", 1e-320, "--length", 50,
                              cwd=long_run[0])
    assert rc1 == rc2 == 0 and err1 == err2 == ""
    assert tiny[0] == greedy[0]


# ---------------------------------------------------------------------------
# the batched recipe's models: Adam and an input embedding
# ---------------------------------------------------------------------------

def one_hot_twin(model):
    """The one-hot model computing what an embedded one does: Wxh @ embed.T
    (H, V) reads the one-hot input as Wxh reads embed[ix]."""
    from charrnn_ext import CharRNN
    params = {n: np.array(model.params[n]) for n in ("Whh", "Why", "bh", "by")}
    params["Wxh"] = np.array(model.params["Wxh"]) @ np.array(model.params["embed"]).T
    return CharRNN.from_params(params)


def test_sample_an_embedded_adam_model(cli_texts, tmp_path):
    """charrnn-sample on a batched-recipe checkpoint (Adam, an embedding):
    the text generate() and the model's own sample() give, primed or not;
    greedy text is its one-hot twin's."""
    rc, _, err = run_cli("train", "en.txt", "--batch-size", 2, "--hidden-size", 16,
                         "--embedding-size", 6, "--seq-length", 16, "--iters", 150,
                         "--sample-every", 1000, "--eval-every", 1000,
                         "--checkpoint", tmp_path / "e.npz", cwd=cli_texts)
    assert rc == 0, err
    path = tmp_path / "e.npz"
    ckpt = load_checkpoint(path)
    assert ckpt.model.embedding_size == 6 and ckpt.model.optimizer == "adam"
    runs = run_many([
        ("sample", path, "--length", 60, "--seed", 3),
        ("sample", path, "--length", 40, "--seed", 3, "--prime", "the ", "--temperature", 0.7),
        ("sample", path, "--length", 60, "--temperature", 0),
        ("sample", path, "--length", 30, "--from-zero", "--seed", 1),
    ], cwd=tmp_path)
    assert all(rc == 0 and err == "" for rc, _, err in runs), runs
    (_, plain, _), (_, primed, _), (_, greedy, _), (_, zero, _) = runs
    assert plain == generate(ckpt, 60, seed=3) + "\n" and len(plain) == 61
    assert set(plain[:-1]) <= set(ckpt.vocab.chars)
    assert zero == generate(ckpt, 30, seed=1, from_zero=True) + "\n"
    ids = ckpt.vocab.encode("the ")
    h = ckpt.model.advance(ids[:-1], ckpt.hidden[:, :1])
    gen = ckpt.model.sample(h, int(ids[-1]), 40, temperature=0.7, rng=np.random.default_rng(3))
    assert primed == "the " + ckpt.vocab.decode(gen) + "\n"
    twin = Checkpoint(model=one_hot_twin(ckpt.model), vocab=ckpt.vocab, hidden=ckpt.hidden,
                      rng=np.random.default_rng(0), iteration=ckpt.iteration,
                      position=ckpt.position)
    assert greedy == generate(twin, 60, temperature=0) + "\n"
