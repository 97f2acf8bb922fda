"""Decoding beyond temperature: top-k and top-p (nucleus) draws in the core
(CharRNN.sample / CharRNN.sample against reference.sample, the drawn
ids always in the kept set, top-k 1 and a tiny top-p exactly greedy), and
charrnn-sample's --top-k, --top-p, --stop, --num-samples and --prime-file
(with charrnn_ext.use.generation.generate and generate_samples)."""
import numpy as np
import pytest

from charrnn_ext import CharRNN
from charrnn_ext.core import reference
from charrnn_ext.use.generation import generate, generate_blocks, generate_samples

from conftest import assert_cli_refusal, random_params, run_cli, run_many
from model_kinds import kinds, small_checkpoint


def _logits(model, state) -> np.ndarray:
    """Why h + by at a state (S, 1), in float64 (h: the top layer's)."""
    Why = np.asarray(model.params["Why"], dtype=np.float64)
    by = np.asarray(model.params["by"], dtype=np.float64).ravel()
    return Why @ np.asarray(model.top_hidden(state), dtype=np.float64).ravel() + by


@kinds
@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_top_k_1_and_a_tiny_top_p_are_greedy(kind, temperature):
    """Exactly the ids of temperature 0, whatever the temperature and seed."""
    ckpt = small_checkpoint(kind)
    model, h = ckpt.model, ckpt.hidden[:, :1]
    greedy = model.sample(h, 3, 200, temperature=0)
    for seed in (0, 1):
        assert np.array_equal(model.sample(h, 3, 200, temperature, seed, top_k=1), greedy)
        assert np.array_equal(model.sample(h, 3, 200, temperature, seed, top_p=1e-9), greedy)
        assert np.array_equal(model.sample(h, 3, 200, temperature, seed, top_k=4, top_p=1e-9),
                              greedy)
    assert not np.array_equal(model.sample(h, 3, 200, temperature, 0, top_k=3), greedy)


@kinds
def test_every_draw_is_in_the_kept_set(kind):
    """Replayed state by state: each id drawn with top_k 3 is among the 3
    largest logits; each drawn with top_p 0.5 is in the smallest set of
    likeliest ids whose probabilities reach 0.5."""
    ckpt = small_checkpoint(kind)
    model, h0 = ckpt.model, ckpt.hidden[:, :1]
    for filters in ({"top_k": 3}, {"top_p": 0.5}):
        ids = model.sample(h0, 2, 150, 1.5, 7, **filters)
        h, x = h0, 2
        for drawn in ids.tolist():
            h = model.advance([x], h)
            y = _logits(model, h)
            tol = 1e-4 * (1.0 + np.abs(y).max())   # the model's own rounding (float32)
            if "top_k" in filters:
                assert y[drawn] >= np.sort(y)[-3] - tol
            else:
                p = np.exp((y - y.max()) / 1.5)
                p /= p.sum()
                assert p[y > y[drawn] + tol].sum() < 0.5 + 1e-4
            x = drawn


@pytest.mark.parametrize("filters", [{"top_k": 5}, {"top_p": 0.7}, {"top_k": 12, "top_p": 0.9},
                                     {"top_k": 40}, {"top_p": 1.0}])
def test_filtered_draws_equal_the_reference(filters):
    """min-char-rnn's model: id for id as reference.sample (rng.choice over the
    filtered, renormalised softmax); top_k >= V or top_p 1 filter nothing."""
    rng = np.random.default_rng(100)
    params = random_params(40, 32, rng, dict(Wxh=0.5, Whh=0.2, Why=1.0, bh=0.3, by=0.5))
    model, h = CharRNN.from_params(params), rng.uniform(-1, 1, (32, 1))
    for T in (0.7, 1.3):
        ids = model.sample(h, 5, 300, temperature=T, rng=np.random.default_rng(3), **filters)
        ref = reference.sample(h, 5, 300, params, temperature=T, rng=np.random.default_rng(3),
                               **filters)
        assert ids.tolist() == ref
    if filters.get("top_k", 0) < 40 and filters.get("top_p", 1.0) < 1:
        plain = model.sample(h, 5, 300, temperature=1.3, rng=np.random.default_rng(3))
        assert not np.array_equal(plain, ids)


@pytest.mark.parametrize("cell", ["rnn", "gru"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_tied_logits_rank_by_id_in_the_core(cell, dtype):
    """Ids 3 and 7 have the same output row and bias, the largest: their
    logits tie exactly at every step. Greedy takes 3 (the first argmax), so
    do top_k 1 and a tiny top_p; top_k 2 draws both, never another id."""
    rng = np.random.default_rng(0)
    model = CharRNN(9, 6, 0, cell=cell, dtype=dtype)
    params = {k: np.array(v) for k, v in model.params.items()}
    params["Why"][7] = params["Why"][3]
    params["by"][...] = 0.0
    params["by"][3] = params["by"][7] = 3.0
    model = CharRNN.from_params(params, dtype=dtype)
    h = rng.uniform(-0.5, 0.5, (model.state_size, 1))
    assert set(model.sample(h, 0, 50, temperature=0).tolist()) == {3}
    assert set(model.sample(h, 0, 50, 1.0, 1, top_k=1).tolist()) == {3}
    assert set(model.sample(h, 0, 50, 1.0, 1, top_p=1e-9).tolist()) == {3}
    assert set(model.sample(h, 0, 200, 1.0, 1, top_k=2).tolist()) == {3, 7}


def test_top_filter_ranks_ties_by_id():
    y = np.array([1.0, 3.0, 3.0, 2.0, 3.0])
    p = np.exp(y - 3.0)
    assert np.flatnonzero(reference.top_filter(y, p, top_k=1)).tolist() == [1]
    assert np.flatnonzero(reference.top_filter(y, p, top_k=2)).tolist() == [1, 2]
    assert np.flatnonzero(reference.top_filter(y, p, top_p=0.5)).tolist() == [1, 2]
    assert np.flatnonzero(reference.top_filter(y, p, top_p=0.95)).tolist() == [1, 2, 3, 4]
    assert np.flatnonzero(reference.top_filter(y, p, top_p=0.99)).tolist() == [0, 1, 2, 3, 4]


def test_filters_are_checked():
    model = CharRNN(5, 4, 0)
    for bad in ({"top_k": -1}, {"top_k": 1.5}, {"top_k": True}, {"top_p": 0.0},
                {"top_p": 1.5}, {"top_p": float("nan")}, {"top_p": "0.5"}):
        with pytest.raises(ValueError, match="top_"):
            model.sample(None, 0, 5, 1.0, 0, **bad)
    gated = CharRNN(5, 4, 0, cell="gru")
    with pytest.raises(ValueError, match="top_k"):
        gated.sample(None, 0, 5, 1.0, 0, top_k=-2)


# -- generate(): the prime, the stop text, samples -------------------------------


@kinds
def test_generate_greedy_equivalents_from_the_training_state(kind):
    """Without a prime, the first character is drawn at the training state by
    the same filter: top_k 1 is still greedy from the first character on."""
    ckpt = small_checkpoint(kind)
    greedy = generate(ckpt, 120, temperature=0)
    assert generate(ckpt, 120, temperature=0.9, seed=4, top_k=1) == greedy
    assert generate(ckpt, 120, temperature=0.9, seed=4, top_p=1e-12) == greedy
    primed = generate(ckpt, 60, temperature=0, prime="the ")
    assert generate(ckpt, 60, temperature=2.0, prime="the ", top_k=1) == primed


def test_stop_ends_right_after_the_first_occurrence():
    ckpt = small_checkpoint(("lstm", "float64", "1x-onehot"))
    full = generate(ckpt, 400, temperature=0.8, seed=2, prime="the ")
    body = full[len("the "):]
    for at in (3, 15, 16, 17, 40, 150):   # stops inside and across the 16-character blocks
        stop = body[at:at + 3]
        first = body.index(stop)
        pieces = list(generate_blocks(ckpt, 400, 0.8, "the ", 2, block_seconds=0.0, stop=stop))
        assert "".join(pieces) == "the " + body[:first + 3], (at, stop)
    assert generate(ckpt, 400, 0.8, "the ", 2, stop="\x00never") == full
    # the prime is not searched: a stop that only the prime holds changes nothing
    assert generate(ckpt, 50, 0.8, "the qu", 2, stop="qu" + "\x01") == \
        generate(ckpt, 50, 0.8, "the qu", 2)


def test_samples_share_the_start_and_one_stream_of_draws():
    ckpt = small_checkpoint(("gru", "float32", "2x-embed5"))
    samples = generate_samples(ckpt, 3, 60, 1.0, "the ", seed=5, top_p=0.9)
    assert len(set(samples)) == 3 and all(s.startswith("the ") for s in samples)
    assert generate_samples(ckpt, 3, 60, 1.0, "the ", seed=5, top_p=0.9) == samples
    rng = np.random.default_rng(5)
    assert samples[0] == generate(ckpt, 60, 1.0, "the ", rng, top_p=0.9)
    assert samples[1] == generate(ckpt, 60, 1.0, "the ", rng, top_p=0.9)


# -- charrnn-sample ------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("decoding")
    ckpt = small_checkpoint(("gru", "float64", "2x-embed5"))
    ckpt.save(d / "m.npz")
    (d / "prime.txt").write_text("the quick\nbrown ", encoding="utf-8")
    (d / "bad.txt").write_text("the é", encoding="utf-8")
    return d, ckpt


def test_cli_decoding_flags(saved):
    d, ckpt = saved
    runs = run_many([
        ("sample", "m.npz", "--length", 80, "--top-k", 1, "--temperature", 1.5),
        ("sample", "m.npz", "--length", 80, "--temperature", 0),
        ("sample", "m.npz", "--length", 80, "--top-p", 0.8, "--seed", 3),
        ("sample", "m.npz", "--length", 300, "--stop", "o", "--prime", "the "),
        ("sample", "m.npz", "--length", 50, "--num-samples", 3, "--prime", "the ", "--seed", 9),
        ("sample", "m.npz", "--length", 40, "--prime-file", "prime.txt", "--seed", 1),
    ], cwd=d)
    assert all(rc == 0 for rc, _, _ in runs), runs
    (_, topk1, _), (_, greedy, _), (_, nucleus, _), (_, stopped, _), (_, many, _), \
        (_, from_file, _) = runs
    assert topk1 == greedy
    assert nucleus == generate(ckpt, 80, 1.0, seed=3, top_p=0.8) + "\n"
    assert stopped.startswith("the ") and stopped.endswith("o\n") and stopped.count("o") == 1
    headers = [line for line in many.splitlines() if line.startswith("--- sample")]
    assert headers == ["--- sample 1 of 3 ---", "--- sample 2 of 3 ---", "--- sample 3 of 3 ---"]
    texts = many.split("--- sample ")[1:]
    bodies = [t.split(" ---\n", 1)[1] for t in texts]
    assert bodies == [s + "\n" for s in generate_samples(ckpt, 3, 50, 1.0, "the ", seed=9)]
    assert from_file == generate(ckpt, 40, 1.0, "the quick\nbrown ", 1) + "\n"


def test_cli_stop_reads_escapes(saved):
    d, ckpt = saved
    full = generate(ckpt, 300, 1.0, "the ", 0)
    body = full[4:]
    if "\n" not in body:
        pytest.skip("no newline in this sample")
    rc, out, err = run_cli("sample", "m.npz", "--length", 300, "--prime", "the ", "--stop",
                           "\\n", cwd=d)
    assert rc == 0 and out == "the " + body[:body.index("\n") + 1] + "\n", err


def test_cli_decoding_refusals(saved):
    d, _ = saved
    cases = [
        (("sample", "m.npz", "--prime", "a", "--prime-file", "prime.txt"), ("not allowed with",)),
        (("sample", "m.npz", "--prime-file", "bad.txt"), ("--prime-file bad.txt", "'é'")),
        (("sample", "m.npz", "--prime-file", "missing.txt"), ("missing.txt: no such file",)),
        (("sample", "m.npz", "--top-p", 0), ("--top-p: must be in (0, 1]",)),
        (("sample", "m.npz", "--top-k", -1), ("--top-k",)),
        (("sample", "m.npz", "--num-samples", 0), ("--num-samples: must be a positive",)),
        (("sample", "m.npz", "--stop", ""), ("--stop: the text is empty",)),
    ]
    results = run_many([job for job, _ in cases], cwd=d)
    for (job, words), result in zip(cases, results):
        assert result[1] == "", job
        assert_cli_refusal(result, *words)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_every_cell_checks_its_draws_alike(cell):
    """A stacked or gated model's sample checks rng as min-char-rnn's does (one helper)."""
    model = CharRNN(6, 4, 0, cell=cell, num_layers=2)

    class Short(np.random.Generator):
        def random(self, n):
            return np.zeros(max(n - 1, 0))

    with pytest.raises(TypeError, match="rng must be a numpy Generator"):
        model.sample(None, 0, 3, rng="abc")
    with pytest.raises(ValueError, match="must give 3 floats"):
        model.sample(None, 0, 3, rng=Short(np.random.PCG64(0)))
