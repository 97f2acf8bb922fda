"""Beam search (charrnn-sample --beam N, generate(..., beam=N), charrnn_ext.use.beam):
width 1 is greedy decoding exactly, a full-width search of two characters
finds the likeliest pair (checked against the core's own trace), the search
is deterministic, and the command's output and refusals."""
import numpy as np
import pytest

from charrnn_ext.use.beam import search
from charrnn_ext.use.generation import generate

from conftest import assert_cli_refusal, run_cli, run_many
from model_kinds import kinds, rtol_of, small_checkpoint

PRIME = "The small fox "


@kinds
def test_width_1_is_greedy_decoding(kind):
    """The text of --beam 1 is the one of --temperature 0 (the core's argmax),
    after a prime, from training's state and from a zero state."""
    ckpt = small_checkpoint(kind)
    for start in ({"prime": PRIME}, {}, {"from_zero": True}):
        greedy = generate(ckpt, 120, 0.0, **start)
        assert generate(ckpt, 120, beam=1, **start) == greedy, start
        assert generate(ckpt, 120, 0.7, seed=5, beam=1, **start) == greedy   # no draws


@kinds
def test_a_full_width_finds_the_likeliest_pair(kind):
    """Width V over two characters keeps every first character, so the best
    pair is found: its log-probability (by the core's trace of the prime then
    the pair) is the largest over all V^2 pairs, and the search's own figure
    agrees with the trace's."""
    ckpt = small_checkpoint(kind)
    model, V = ckpt.model, ckpt.model.vocab_size
    ids = ckpt.vocab.encode(PRIME)
    h0 = model.advance(ids[:-1], ckpt.hidden[:, :1])
    scores = np.empty((V, V))
    for c in range(V):            # trace reads x then c: probs of c, then of the next after c
        _, probs = model.trace(np.array([ids[-1], c]), h0)
        scores[c] = np.log(np.asarray(probs[0, c], np.float64)) + \
            np.log(np.asarray(probs[1], np.float64))
    path, logp = search(model, model.advance(ids[-1:], h0), 2, V)
    tol = 10 * rtol_of(kind[1])
    assert logp == pytest.approx(scores[path[0], path[1]], rel=tol)
    assert logp >= scores.max() - tol * abs(scores.max())
    narrow = search(model, model.advance(ids[-1:], h0), 2, 1)
    assert narrow[1] <= logp + tol * abs(logp)


@kinds
def test_deterministic_and_wider_beams_differ(kind):
    ckpt = small_checkpoint(kind)
    a = generate(ckpt, 80, prime=PRIME, beam=4)
    assert a == generate(ckpt, 80, prime=PRIME, beam=4, seed=9)
    assert a.startswith(PRIME) and len(a) == len(PRIME) + 80
    h = ckpt.model.advance(ckpt.vocab.encode(PRIME), ckpt.hidden[:, :1])
    ids, logp = search(ckpt.model, h, 80, 4)
    assert ckpt.vocab.decode(ids) == a[len(PRIME):]
    # the returned figure is the path's log-probability under the model (the core's trace
    # of the prime's last character then the path)
    h0 = ckpt.model.advance(ckpt.vocab.encode(PRIME[:-1]), ckpt.hidden[:, :1])
    _, probs = ckpt.model.trace(np.concatenate([ckpt.vocab.encode(PRIME[-1]), ids[:-1]]), h0)
    traced = np.log(np.asarray(probs, np.float64)[np.arange(ids.size), ids]).sum()
    assert logp == pytest.approx(traced, rel=10 * rtol_of(kind[1]))


def test_library_refusals():
    ckpt = small_checkpoint(("gru", "float32", "2x-embed5"))
    for bad in (0.5, -1, 1001, True):
        with pytest.raises(ValueError, match="beam width"):
            generate(ckpt, 10, beam=bad)
    with pytest.raises(ValueError, match="no top_k or top_p"):
        generate(ckpt, 10, beam=2, top_k=3)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("beam")
    ckpt = small_checkpoint(("lstm", "float64", "2x-embed5"))
    ckpt.save(d / "m.npz")
    return d, ckpt


def test_cli(saved):
    d, ckpt = saved
    jobs = [("sample", "m.npz", "--beam", 3, "--length", 50, "--prime", PRIME),
            ("sample", "m.npz", "--beam", 1, "--length", 50, "--prime", PRIME),
            ("sample", "m.npz", "--temperature", 0, "--length", 50, "--prime", PRIME),
            ("sample", "m.npz", "--beam", 3, "--length", 50, "--prime", PRIME, "--stop", "e")]
    results = run_many(jobs, cwd=d)
    assert all(rc == 0 for rc, _, _ in results), [err for _, _, err in results]
    beam3, beam1, greedy, stopped = (out for _, out, _ in results)
    assert beam3 == generate(ckpt, 50, prime=PRIME, beam=3) + "\n"
    assert beam1 == greedy
    generated = beam3[len(PRIME):]
    assert stopped == PRIME + generated[:generated.index("e") + 1] + "\n"


def test_cli_refusals(saved):
    d, _ = saved
    cases = [
        (("sample", "m.npz", "--beam", 0), ("--beam", "0")),
        (("sample", "m.npz", "--beam", 1001), ("--beam 1001", "at most 1000")),
        (("sample", "m.npz", "--beam", 2, "--top-k", 3), ("--beam", "no --top-k")),
        (("sample", "m.npz", "--beam", 2, "--temperature", 0.5, "--top-p", 0.9),
         ("no --top-p or --temperature",)),
        (("sample", "m.npz", "--beam", 2, "--num-samples", 2), ("no --num-samples",)),
    ]
    results = run_many([job for job, _ in cases], cwd=d)
    for (job, words), result in zip(cases, results):
        assert_cli_refusal(result, *words)
