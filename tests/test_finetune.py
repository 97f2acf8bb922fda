"""Fine-tuning (charrnn-train NEW.txt --init-from MODEL.npz, training.run(...,
init_from=)): the run starts from the model's weights with a fresh optimizer
state, new characters join the vocabulary (each known character keeps its
weights, the new ones drawn by the model's initialisation), --fixed-vocab
refuses instead, and the command's checks."""
import json

import numpy as np
import pytest

from charrnn_ext import Vocab, load_checkpoint
from charrnn_ext.core import reference_gated
from charrnn_ext.run import training
from charrnn_ext.run.finetune import grown_vocab, start_model
from charrnn_ext.page.inspection import training_split
from charrnn_ext.use.scoring import score_text
from charrnn_ext.core.spec import init_params

from conftest import assert_cli_refusal, run_cli, run_many, sha
from model_kinds import HIDDEN, TEXT, kinds, rtol_of, small_checkpoint

NEW = "the fox sings: ZQX! over the lazy dog; quick Zebras.\n" * 30   # Z, X, !, ;, : are new


def _settings(ckpt, **extra):
    return {"seed": 4, "init": ckpt.hyperparameters["init"], "optimizer": "adam",
            "dropout": 0.0, **extra}


@kinds
def test_known_characters_keep_their_weights_and_new_ones_are_drawn(kind):
    ckpt = small_checkpoint(kind)
    vocab = grown_vocab(ckpt, NEW)
    new = sorted(set(NEW) - set(ckpt.vocab.chars))
    assert new and vocab.chars == ckpt.vocab.chars + "".join(new)     # appended, sorted
    model = start_model(ckpt, vocab, _settings(ckpt))
    old_at = [vocab.chars.index(c) for c in ckpt.vocab.chars]
    new_at = [vocab.chars.index(c) for c in new]
    cell, dtype, shape = kind
    m = ckpt.model
    fresh = (init_params(len(vocab), HIDDEN, 4, m.embedding_size, ckpt.hyperparameters["init"])
             if (m.cell, m.num_layers) == ("rnn", 1) else
             reference_gated.init_params(m.cell, len(vocab), HIDDEN, m.num_layers, 4,
                                         m.embedding_size))
    grown_axes = 0
    for name, before in ckpt.model.params.items():
        after = np.asarray(model.params[name])
        assert after.dtype == np.dtype(dtype)
        if after.shape == np.shape(before):
            assert np.array_equal(after, before), name
            continue
        axis = next(k for k in range(after.ndim) if after.shape[k] != before.shape[k])
        grown_axes += 1
        assert np.array_equal(np.take(after, old_at, axis), before), name
        expected = np.take(np.asarray(fresh[name]), new_at, axis).astype(dtype)
        assert np.array_equal(np.take(after, new_at, axis), expected), name
    # one-hot: the input weights, the output weights and bias; an embedding: its rows instead
    assert grown_axes == 3
    # the grown model reads the old text exactly as the model did (same states)
    ids_old, ids_new = ckpt.vocab.encode(TEXT[:200]), vocab.encode(TEXT[:200])
    np.testing.assert_allclose(model.advance(ids_new, ckpt.hidden[:, :1]),
                               ckpt.model.advance(ids_old, ckpt.hidden[:, :1]),
                               rtol=rtol_of(dtype), atol=rtol_of(dtype))
    assert all(not np.any(v) for v in model.memory.values())          # a fresh optimizer state
    assert model.optimizer == "adam" and model.adam_steps == 0


@kinds
def test_a_run_starts_from_the_weights(kind):
    """training.run(..., init_from=): one step away from the model's weights
    (each entry moved by at most about the learning rate), iteration 1, and a
    line naming the new characters."""
    ckpt = small_checkpoint(kind)
    lines = []
    result = training.run(NEW, {"iters": 1, "learning_rate": 0.001, "optimizer": "adam",
                                "batch_size": 1, "seq_length": 16, "val_fraction": 0.0},
                          init_from=ckpt, reporter=training.Printer(lines.append))
    run = result.run
    assert run.iteration == 1 and run.model.cell == ckpt.model.cell
    assert run.model.dtype == ckpt.model.dtype and run.model.num_layers == ckpt.model.num_layers
    vocab = run.vocab
    old_at = [vocab.chars.index(c) for c in ckpt.vocab.chars]
    for name, before in ckpt.model.params.items():
        after = np.asarray(run.model.params[name], dtype=np.float64)
        if after.shape != np.shape(before):
            axis = next(k for k in range(after.ndim) if after.shape[k] != before.shape[k])
            after = np.take(after, old_at, axis)
        assert np.abs(after - before).max() <= 0.0011, name
    note = [line for line in lines if line.startswith("fine-tuning")]
    assert note == ["fine-tuning a model (iteration 40, 42 characters): 5 new characters join "
                    "its vocabulary: '!' ':' ';' 'X' 'Z'"], lines


def test_fixed_vocab_refuses_new_characters():
    ckpt = small_checkpoint(("rnn", "float64", "1x-onehot"))
    with pytest.raises(ValueError, match="5 characters the model's vocabulary lacks: '!' ':'"):
        grown_vocab(ckpt, NEW, fixed_vocab=True)
    assert grown_vocab(ckpt, TEXT[:100], fixed_vocab=True) == ckpt.vocab
    with pytest.raises(ValueError, match="lacks 1 character of the model's"):
        start_model(ckpt, Vocab(sorted(set(ckpt.vocab.chars) - {"q"})), _settings(ckpt))


@kinds
def test_a_character_sorting_first_joins_after_the_known_ones(kind, tmp_path):
    """'\t' sorts before every known character: it still joins at the end (id
    V), every known character keeps its id and its weights bit for bit; the
    saved run keeps that order, and scoring, the training text's check and
    resuming read its ids through it."""
    ckpt = small_checkpoint(kind)
    V, text = len(ckpt.vocab), "\t" + TEXT[:300].replace(" ", "\t", 7)
    vocab = grown_vocab(ckpt, text)
    assert vocab.chars == ckpt.vocab.chars + "\t"
    assert np.array_equal(vocab.encode(TEXT), ckpt.vocab.encode(TEXT))    # old ids kept
    model = start_model(ckpt, vocab, _settings(ckpt))
    for name, before in ckpt.model.params.items():
        after = np.asarray(model.params[name])
        if after.shape != np.shape(before):
            axis = next(k for k in range(after.ndim) if after.shape[k] != before.shape[k])
            after = np.take(after, np.arange(V), axis)
        assert np.array_equal(after, before), name
    result = training.run(text, {"iters": 2, "learning_rate": 0.001, "optimizer": "adam",
                                 "batch_size": 1, "seq_length": 16, "val_fraction": 0.0},
                          init_from=ckpt, checkpoint=tmp_path / "t.npz")
    tuned = load_checkpoint(tmp_path / "t.npz")
    assert tuned.vocab.chars == ckpt.vocab.chars + "\t" and tuned.vocab == result.run.vocab
    ids = tuned.vocab.encode(text)
    s = score_text(tuned, text, from_zero=True)
    own = tuned.model.loss(ids[:-1], ids[1:], None) / (len(text) - 1) / np.log(2)
    assert s.bits_per_char == pytest.approx(own, rel=1e-9, abs=0)
    assert training_split(tuned, text) is not None
    more = training.run(text, {"iters": 3}, resume=tuned)     # resuming reads the same ids
    assert more.run.vocab == tuned.vocab and more.run.iteration == 3

# -- the command -------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("finetune")
    ckpt = small_checkpoint(("gru", "float32", "2x-embed5"), optimizer="adam")
    ckpt.save(d / "base.npz")
    (d / "new.txt").write_text(NEW, encoding="utf-8")
    (d / "same.txt").write_text(TEXT, encoding="utf-8")
    return d, ckpt


def test_cli_fine_tunes_and_grows_the_vocabulary(saved):
    d, ckpt = saved
    digest = sha(d / "base.npz")
    rc, out, err = run_cli("train", "new.txt", "--init-from", "base.npz", "--iters", 30,
                           "--sample-every", 10, "--eval-every", 30, "--seq-length", 16,
                           "--batch-size", 2, cwd=d)
    assert rc == 0, err
    assert "fine-tuning base.npz (iteration 40, 42 characters): 5 new characters join its " \
           "vocabulary: '!' ':' ';' 'X' 'Z'" in out
    tuned = load_checkpoint(d / "new.npz")
    assert tuned.iteration == 30 and len(tuned.vocab) == 47
    assert (tuned.model.cell, tuned.model.num_layers, tuned.model.embedding_size,
            tuned.model.dtype.name, tuned.model.hidden_size) == ("gru", 2, 5, "float32", HIDDEN)
    assert tuned.hyperparameters["learning_rate"] == ckpt.hyperparameters["learning_rate"]
    assert sha(d / "base.npz") == digest
    # old ids kept ('!' sorts first, yet joins last); every command reads the ids in that order
    assert tuned.vocab.chars == ckpt.vocab.chars + "!:;XZ"
    results = run_many([("score", "new.npz", "new.txt", "--from-zero", "--json"),
                        ("sample", "new.npz", "--prime", "ZQX!", "--length", 20, "--seed", 1),
                        ("export", "new.npz", "new.safetensors"),
                        ("train", "new.txt", "--resume", "new.npz", "--iters", 35,
                         "--checkpoint", "more.npz")], cwd=d)
    assert all(rc == 0 for rc, _, _ in results), [err for _, _, err in results]
    ids = tuned.vocab.encode(NEW)
    own = tuned.model.loss(ids[:-1], ids[1:], None) / (ids.size - 1) / np.log(2)
    assert json.loads(results[0][1])["bits_per_char"] == pytest.approx(own, rel=2e-5)
    assert results[1][1].startswith("ZQX!")
    from safetensors import safe_open
    with safe_open(str(d / "new.safetensors"), "np") as f:
        assert "".join(json.loads(f.metadata()["vocab"])) == tuned.vocab.chars
    more = load_checkpoint(d / "more.npz")
    assert more.iteration == 35 and more.vocab == tuned.vocab


def test_cli_refusals(saved):
    d, _ = saved
    cases = [
        (("train", "new.txt", "--init-from", "base.npz", "--fixed-vocab"),
         ("--fixed-vocab", "new.txt", "5 characters the model's vocabulary lacks")),
        (("train", "new.txt", "--init-from", "base.npz", "--resume", "base.npz"),
         ("--init-from", "--resume", "give one of them")),
        (("train", "new.txt", "--init-from", "base.npz", "--hidden-size", 20),
         ("--hidden-size 20 differs from the hidden size 10 of --init-from base.npz",)),
        (("train", "new.txt", "--init-from", "base.npz", "--cell", "lstm"),
         ("--cell lstm differs",)),
        (("train", "new.txt", "--init-from", "base.npz", "--checkpoint", "base.npz",
          "--overwrite"), ("is the same file as --init-from",)),
        (("train", "new.txt", "--fixed-vocab"), ("--fixed-vocab goes with --init-from",)),
        (("train", "new.txt", "--init-from", "new.txt"), ("--init-from", "not a charrnn_ext")),
    ]
    results = run_many([job for job, _ in cases], cwd=d)
    for (job, words), result in zip(cases, results):
        assert_cli_refusal(result, *words)
    rc, out, err = run_cli("train", "same.txt", "--init-from", "base.npz", "--fixed-vocab",
                           "--iters", 5, "--checkpoint", "same.npz", cwd=d)
    assert rc == 0 and "no new characters" in out, err


def test_resume_reads_a_text_in_the_checkpoints_vocabulary(saved):
    """--resume: a text whose characters the checkpoint knows (all or some of
    them) is read in its ids; a new character is refused by name."""
    d, ckpt = saved
    part = "".join(c for c in TEXT if c not in "qQ")          # lacks two known characters
    (d / "part.txt").write_text(part, encoding="utf-8")
    rc, out, err = run_cli("train", "part.txt", "--resume", "base.npz", "--iters", 45,
                           "--checkpoint", "part.npz", cwd=d)
    assert rc == 0, err
    assert load_checkpoint(d / "part.npz").vocab == ckpt.vocab
    assert_cli_refusal(run_cli("train", "new.txt", "--resume", "base.npz", "--checkpoint",
                               "x.npz", cwd=d),
                       "5 characters not in the vocabulary of base.npz",
                       "'!' ':' ';' 'X' 'Z'", "--init-from")
