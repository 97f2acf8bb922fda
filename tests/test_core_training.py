"""Training parity: fused ``train_step`` vs the reference's lossFun + Adagrad,
on generated "real-looking" text, over the seed's data pass (conftest's
data_pass: chunks of seq_length left to right, hidden state carried, reset
at the wrap), one stream and B = 8 streams (the batched reference).

Training at lr 0.1 is chaotic (a 1e-15 change in one weight grows to O(1)
differences within ~20 steps, in the reference itself), so the long
comparison is step by step: each core step starts from the reference's state
through ``CharRNN.from_params(params, memory)``. Only the first 3 steps run
free from one init.
"""
import numpy as np
import pytest

from charrnn_ext import CharRNN, PARAM_NAMES, Vocab
from charrnn_ext.core import reference
from charrnn_ext.defaults import LEARNING_RATE, SEQ_LENGTH

from conftest import (assert_close, cjk_text, copy_dict, data_pass, english_like_text,
                      reference_train_step)


TOL = 1e-9
N_STEPS = 200


def generated_text(name):
    return {
        # ~2000 characters: 200 steps of 25 wrap around the data twice
        "english": lambda: english_like_text(2000, seed=1),
        # a few hundred distinct ideographs; 1500 characters, several wraps
        "cjk": lambda: cjk_text(1500, n_distinct=300, seed=2),
    }[name]()


def encoded(text):
    """(ids, V) of a text under its own vocabulary."""
    vocab = Vocab.from_text(text)
    return vocab.encode(text), len(vocab)


def teacher_forced(ids, V, H, steps, streams=None, seq_length=SEQ_LENGTH, seed=0):
    """``steps`` steps of the data pass (B = ``streams``), each core step
    started from the reference's state (params, memory, h) and compared with
    the reference's step: loss, h, params and memory within TOL. Returns the
    reference's losses and the number of resets."""
    B = 1 if streams is None else streams
    params = reference.init_params(V, H, seed=seed)
    memory = {n: np.zeros_like(p) for n, p in params.items()}
    losses, resets = [], 0
    for step, (inputs, targets, reset) in enumerate(data_pass(ids, seq_length, steps, streams)):
        if reset:
            hprev = np.zeros((H, B))
            resets += 1
        assert inputs.shape[-1] == targets.shape[-1] == seq_length
        model = CharRNN.from_params(params, memory)
        loss, h = model.train_step(inputs, targets, hprev, learning_rate=LEARNING_RATE)
        # the reference's step, on its own state
        loss_ref, h_ref = reference_train_step(inputs, targets, hprev, params, memory,
                                               LEARNING_RATE)
        where = f"step {step}"
        assert abs(loss - loss_ref) <= TOL * abs(loss_ref), f"{where}: loss {loss!r} vs {loss_ref!r}"
        assert h.shape == (H, B)
        assert_close(h, h_ref, TOL, f"{where}: h")
        for n in PARAM_NAMES:
            assert_close(model.params[n], params[n], TOL, f"{where}: {n}")
            assert_close(model.memory[n], memory[n], TOL, f"{where}: memory {n}")
        hprev = h_ref
        losses.append(loss_ref)
    return losses, resets


@pytest.mark.parametrize("name", ["english", "cjk"])
def test_generated_texts_look_real(name):
    text = generated_text(name)
    vocab = Vocab.from_text(text)
    if name == "english":
        assert 25 <= len(vocab) <= 60
        assert text.count(" ") > len(text) / 10 and "." in text and "\n" in text
    else:
        assert 200 <= len(vocab) <= 310
        assert "，" in text and "。" in text


@pytest.mark.parametrize("name,hidden", [("english", 100), ("cjk", 64)])
def test_two_hundred_steps_from_reference_state(name, hidden):
    ids, V = encoded(generated_text(name))
    losses, resets = teacher_forced(ids, V, hidden, N_STEPS)
    assert resets >= 2, "the data pass never wrapped"
    # training makes progress (the comparison is on a learning run, not noise)
    assert np.mean(losses[-20:]) < np.mean(losses[:20])


def test_hundred_teacher_forced_steps_at_b8():
    """Each core step starts from the reference's state (params, memory, h):
    loss, h, params and memory within 1e-9 for 100 steps of 8 streams."""
    ids, V = encoded(english_like_text(4000, seed=21))
    losses, resets = teacher_forced(ids, V, 64, 100, streams=8, seq_length=25, seed=3)
    assert resets >= 2, "the streams never wrapped"
    assert np.mean(losses[-20:]) < np.mean(losses[:20])   # a learning run


@pytest.mark.parametrize("name,hidden", [("english", 100), ("cjk", 50)])
def test_first_three_steps_free_running(name, hidden):
    ids, V = encoded(generated_text(name))
    H = hidden
    model = CharRNN(V, H, seed=42)
    params = reference.init_params(V, H, seed=42)
    memory = {n: np.zeros_like(p) for n, p in params.items()}
    for n in PARAM_NAMES:
        np.testing.assert_array_equal(model.params[n], params[n])
    h_core = np.zeros((H, 1))
    h_ref = np.zeros((H, 1))
    for step, (inputs, targets, _) in enumerate(data_pass(ids, SEQ_LENGTH, 3)):
        loss, h_core = model.train_step(inputs, targets, h_core, learning_rate=LEARNING_RATE)
        loss_ref, h_ref = reference.train_step(inputs, targets, h_ref, params, memory, LEARNING_RATE)
        assert abs(loss - loss_ref) <= TOL * loss_ref, f"step {step}"
        assert_close(h_core, h_ref, TOL, f"step {step}: h")
        for n in PARAM_NAMES:
            assert_close(model.params[n], params[n], TOL, f"step {step}: {n}")
            assert_close(model.memory[n], memory[n], TOL, f"step {step}: memory {n}")
    # three steps really changed the model
    init = reference.init_params(V, H, seed=42)
    assert all(not np.array_equal(model.params[n], init[n]) for n in PARAM_NAMES)


def test_grads_after_train_step_are_the_clipped_gradients():
    """model.grads after a fused step holds the step's clipped gradients."""
    ids, V = encoded(english_like_text(300, seed=3))
    H = 32
    params = reference.init_params(V, H, seed=1)
    model = CharRNN.from_params(params)
    inputs, targets = ids[:25], ids[1:26]
    model.train_step(inputs, targets, np.zeros(H))
    _, ref_grads, _ = reference.lossFun(inputs, targets, np.zeros((H, 1)), params)
    for n in PARAM_NAMES:
        assert_close(model.grads[n], ref_grads[n], 1e-10, f"d{n}")


def test_learning_rate_is_applied():
    """Same state, two learning rates: parameter changes scale with lr
    (Adagrad's step is lr * g / sqrt(mem + eps))."""
    ids, V = encoded(english_like_text(300, seed=4))
    H = 20
    params = reference.init_params(V, H, seed=2)
    steps = {}
    for lr in (0.1, 0.01):
        model = CharRNN.from_params(params)
        model.train_step(ids[:25], ids[1:26], np.zeros(H), learning_rate=lr)
        steps[lr] = {n: model.params[n] - params[n] for n in PARAM_NAMES}
        ref_params, ref_memory = copy_dict(params), {n: np.zeros_like(p) for n, p in params.items()}
        reference.train_step(ids[:25], ids[1:26], np.zeros((H, 1)), ref_params, ref_memory, lr)
        for n in PARAM_NAMES:
            assert_close(model.params[n], ref_params[n], TOL, f"lr {lr}: {n}")
    for n in PARAM_NAMES:
        assert_close(steps[0.01][n] * 10, steps[0.1][n], 1e-8, n)
