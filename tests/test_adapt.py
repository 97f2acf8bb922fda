"""charrnn-sample --adapt FILE (charrnn_ext.use.scoring.adapt): FILE read with
dynamic evaluation's steps (score.dynamic_read, charrnn-score --dynamic's
rate and chunks), then generation from where FILE ends with the weights it
taught; the model (object and file) never changed; the command's checks."""
import numpy as np
import pytest

from charrnn_ext.use.generation import generate
from charrnn_ext.use.scoring import Dynamic, adapt, default_rate, score_text

from conftest import assert_cli_refusal, run_cli, run_many, sha
from model_kinds import kinds, small_checkpoint

# words of the checkpoints' vocabulary in an order of their own
FILE = "Seven dogs sing while the fox papers green trees. " * 12


@kinds
def test_adapting_lowers_the_loss_on_the_file(kind):
    """The adapted model's loss on FILE (from a zero state) is lower than the
    trained model's; its weights are the ones dynamic evaluation's read ends
    with (the same steps as charrnn-score --dynamic's, its default rate),
    its state the one after FILE; the checkpoint is unchanged."""
    ckpt = small_checkpoint(kind)
    before = {k: np.array(v) for k, v in ckpt.model.params.items()}
    hidden = ckpt.hidden.copy()
    adapted = adapt(ckpt, FILE)
    static = score_text(ckpt, FILE, from_zero=True).bits_per_char
    assert score_text(adapted, FILE, from_zero=True).bits_per_char < static - 0.05
    assert all(np.array_equal(ckpt.model.params[k], v) for k, v in before.items())
    assert np.array_equal(ckpt.hidden, hidden) and adapted.model is not ckpt.model
    # the steps are charrnn-score --dynamic's: its default rate (a third of the rate
    # training ended at), chunks of 25, each a training step of a copy, in order
    model, h = ckpt.model.copy(), ckpt.hidden[:, :1]
    ids = ckpt.vocab.encode(FILE)
    for a in range(1, ids.size, 25):
        b = min(a + 25, ids.size)
        _, h = model.train_step(ids[a - 1:b - 1], ids[a:b], h, learning_rate=default_rate(ckpt))
    for name, value in model.params.items():
        assert np.array_equal(adapted.model.params[name], value), name
    # its state: the one after FILE's last character
    np.testing.assert_array_equal(adapted.hidden, model.advance(ids[-1:], h))


@kinds
def test_generation_continues_from_the_file(kind):
    """generate() from the adapted checkpoint: deterministic for a seed,
    different from the unadapted model's, and a prime is read after FILE."""
    ckpt = small_checkpoint(kind)
    adapted = adapt(ckpt, FILE)
    a = generate(adapted, 200, seed=3)
    assert a == generate(adapt(ckpt, FILE), 200, seed=3)
    assert a != generate(ckpt, 200, seed=3)
    # a prime is read from the state after FILE, with the adapted weights
    g = generate(adapted, 40, 0.0, prime="The ")
    h = adapted.model.advance(ckpt.vocab.encode("The"), adapted.hidden)
    ids = adapted.model.sample(h, int(ckpt.vocab.encode(" ")[0]), 40, temperature=0)
    assert g == "The " + ckpt.vocab.decode(ids)


def test_adapt_refuses_bad_text():
    ckpt = small_checkpoint(("rnn", "float64", "1x-onehot"))
    with pytest.raises(ValueError, match="empty"):
        adapt(ckpt, "")
    with pytest.raises(ValueError, match="not in the model's vocabulary"):
        adapt(ckpt, "Zebra\u00e9")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("adapt")
    ckpt = small_checkpoint(("gru", "float32", "2x-embed5"))
    ckpt.save(d / "m.npz")
    (d / "file.txt").write_text(FILE, encoding="utf-8")
    (d / "bad.txt").write_text("Zebra\u00e9", encoding="utf-8")
    (d / "empty.txt").write_text("", encoding="utf-8")
    return d, ckpt


def test_cli(saved):
    d, ckpt = saved
    digest = sha(d / "m.npz")
    results = run_many([("sample", "m.npz", "--adapt", "file.txt", "--length", 80, "--seed", 2),
                        ("sample", "m.npz", "--adapt", "file.txt", "--length", 30, "--beam", 2,
                         "--prime", "The ", "--adapt-lr", 0.01, "--adapt-chunk", 10)], cwd=d)
    assert all(rc == 0 for rc, _, _ in results), [err for _, _, err in results]
    assert results[0][1] == generate(adapt(ckpt, FILE), 80, seed=2) + "\n"
    assert results[1][1] == generate(adapt(ckpt, FILE, Dynamic(0.01, 10)), 30, prime="The ",
                                     beam=2) + "\n"
    assert sha(d / "m.npz") == digest


def test_cli_refusals(saved):
    d, _ = saved
    cases = [
        (("sample", "m.npz", "--adapt", "missing.txt"), ("missing.txt",)),
        (("sample", "m.npz", "--adapt", "bad.txt"), ("--adapt bad.txt", "'é'", "m.npz")),
        (("sample", "m.npz", "--adapt", "empty.txt"), ("empty.txt", "empty")),
        (("sample", "m.npz", "--adapt", "file.txt", "--adapt-lr", 0), ("--adapt-lr",)),
        (("sample", "m.npz", "--adapt", "file.txt", "--adapt-chunk", 0), ("--adapt-chunk",)),
    ]
    results = run_many([job for job, _ in cases], cwd=d)
    for (job, words), result in zip(cases, results):
        assert_cli_refusal(result, *words)
