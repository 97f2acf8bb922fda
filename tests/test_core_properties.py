"""Property-based tests (hypothesis): over random small shapes, chunks,
hidden states, parameters, learning rates and numbers of streams, the core
equals the reference (one stream: lossFun, train_step, sample; B streams:
batch_lossFun, batch_train_step, through both recurrence kernels).

Parameters come from a drawn numpy seed (hypothesis shrinks the shapes and
chunks, the seed reproduces the arrays). The recurrent weights are scaled so
that the recurrence is not chaotic (see test_core_parity's note); the input
and output layers range up to large weights, so clipping is often active.
"""
import numpy as np
from hypothesis import given, settings, strategies as st

from charrnn_ext import CharRNN, PARAM_NAMES
from charrnn_ext.core import reference
from charrnn_ext.core._dispatch import core

from conftest import (RTOL, TRAIN_RTOL, assert_close, copy_dict, id_lists, random_memory,
                      random_params, same_loss)


# ---------------------------------------------------------------------------
# one stream
# ---------------------------------------------------------------------------

@st.composite
def problems(draw, max_V=12, max_H=10, max_T=30, n_chunks=1):
    V = draw(st.integers(1, max_V))
    H = draw(st.integers(1, max_H))
    seed = draw(st.integers(0, 2**32 - 1))
    out_scale = draw(st.sampled_from([0.01, 0.1, 1.0, 3.0]))
    rec_scale = draw(st.floats(0.0, 0.9)) / np.sqrt(H)
    chunks = []
    for _ in range(n_chunks):
        T = draw(st.integers(1, max_T))
        inputs = draw(st.lists(st.integers(0, V - 1), min_size=T, max_size=T))
        targets = draw(st.lists(st.integers(0, V - 1), min_size=T, max_size=T))
        chunks.append((inputs, targets))
    rng = np.random.default_rng(seed)
    shapes = {"Wxh": (H, V), "Whh": (H, H), "Why": (V, H), "bh": (H, 1), "by": (V, 1)}
    scales = {"Wxh": out_scale, "Whh": rec_scale, "Why": out_scale, "bh": 0.3, "by": 0.3}
    params = {n: rng.standard_normal(shapes[n]) * scales[n] for n in PARAM_NAMES}
    memory = {n: rng.uniform(0, 1, shapes[n]) * draw(st.sampled_from([0.0, 1.0]))
              for n in PARAM_NAMES}
    hprev = rng.uniform(-1, 1, (H, 1))
    return V, H, params, memory, hprev, chunks


@given(problems())
def test_loss_and_grads_equals_reference(problem):
    V, H, params, _, hprev, [(inputs, targets)] = problem
    model = CharRNN.from_params(params)
    loss, grads, h = model.loss_and_grads(inputs, targets, hprev)
    ref_loss, ref_grads, ref_h = reference.lossFun(inputs, targets, hprev, params)
    same_loss(loss, ref_loss, len(inputs))
    assert_close(h, ref_h, RTOL, "h")
    for n in PARAM_NAMES:
        assert_close(grads[n], ref_grads[n], RTOL, f"d{n}")
    # forward-only loss agrees too
    same_loss(model.loss(inputs, targets, hprev), ref_loss, len(inputs))
    # nothing was updated
    for n in PARAM_NAMES:
        np.testing.assert_array_equal(model.params[n], params[n])


@given(problems(n_chunks=3), st.floats(1e-3, 1.0))
def test_train_steps_equal_reference(problem, lr):
    """Three consecutive fused steps on different chunks (state carried), each
    compared with the reference started from the same state."""
    V, H, params, memory, hprev, chunks = problem
    model = CharRNN.from_params(params, memory)
    ref_params, ref_memory = copy_dict(params), copy_dict(memory)
    h_ref = hprev
    for k, (inputs, targets) in enumerate(chunks):
        loss, h = model.train_step(inputs, targets, h_ref, learning_rate=lr)
        ref_loss, h_ref = reference.train_step(inputs, targets, h_ref, ref_params, ref_memory, lr)
        same_loss(loss, ref_loss, len(inputs))
        assert_close(h, h_ref, RTOL, f"chunk {k}: h")
        for n in PARAM_NAMES:
            assert_close(model.params[n], ref_params[n], TRAIN_RTOL, f"chunk {k}: {n}")
            assert_close(model.memory[n], ref_memory[n], TRAIN_RTOL, f"chunk {k}: memory {n}")
        # restart the core from the reference's state: errors never compound
        model = CharRNN.from_params(ref_params, ref_memory)


@settings(max_examples=max(10, settings.default.max_examples // 2))
@given(problems(max_T=5), st.integers(1, 600))
def test_forward_loss_any_length_equals_reference(problem, length):
    V, H, params, _, hprev, _ = problem
    rng = np.random.default_rng(length)
    inputs = rng.integers(0, V, length)
    targets = rng.integers(0, V, length)
    model = CharRNN.from_params(params)
    loss, h = model.loss(inputs, targets, hprev, return_hidden=True)
    ref_loss, _, ref_h = reference.lossFun(inputs, targets, hprev, params)
    same_loss(loss, ref_loss, length)
    assert_close(h, ref_h, RTOL, "h")
    assert_close(model.advance(inputs, hprev), ref_h, RTOL, "advance")


@settings(max_examples=max(10, settings.default.max_examples // 2))
@given(problems(max_T=3), st.integers(0, 60), st.sampled_from([0.0, 0.5, 1.0, 2.0]),
       st.integers(0, 2**32 - 1))
def test_sample_equals_reference(problem, n, temperature, rng_seed):
    V, H, params, _, hprev, [(inputs, _)] = problem
    model = CharRNN.from_params(params)
    seed_ix = inputs[0]
    ids = model.sample(hprev, seed_ix, n, temperature=temperature, rng=np.random.default_rng(rng_seed))
    ref = reference.sample(hprev, seed_ix, n, params, temperature=temperature,
                           rng=np.random.default_rng(rng_seed))
    assert len(ids) == n
    assert ids.tolist() == ref
    assert all(0 <= i < V for i in ref)


# ---------------------------------------------------------------------------
# B streams
# ---------------------------------------------------------------------------

@st.composite
def batch_problems(draw, max_B=9, max_T=12, max_V=12, max_H=10):
    B = draw(st.integers(1, max_B))
    T = draw(st.integers(1, max_T))
    V = draw(st.integers(1, max_V))
    H = draw(st.integers(1, max_H))
    seed = draw(st.integers(0, 2**32 - 1))
    out_scale = draw(st.sampled_from([0.01, 0.1, 1.0, 3.0]))
    rec_scale = draw(st.floats(0.0, 0.9)) / np.sqrt(H)
    rng = np.random.default_rng(seed)
    params = random_params(V, H, rng, dict(Wxh=out_scale, Whh=rec_scale, Why=out_scale,
                                           bh=0.3, by=0.3))
    keep = draw(st.sampled_from([0.0, 1.0]))          # zero memory: Adagrad's first step
    memory = {n: m * keep for n, m in random_memory(V, H, rng).items()}
    inputs = rng.integers(0, V, (B, T))
    targets = rng.integers(0, V, (B, T))
    hprev = rng.uniform(-1, 1, (H, B))
    return params, memory, inputs, targets, hprev


@given(batch_problems(), st.sampled_from([2, 4, 1000]))
def test_batch_properties(prob, threshold):
    params, memory, inputs, targets, hprev = prob
    old = core._set_gemm_min_streams(threshold)
    try:
        model = CharRNN.from_params(params, memory)
        loss, grads, h = model.loss_and_grads(inputs, targets, hprev)
        ref_loss, ref_grads, ref_h = reference.batch_lossFun(id_lists(inputs), id_lists(targets),
                                                             hprev, params)
        same_loss(loss, ref_loss, inputs.shape[1])
        assert_close(h, ref_h, RTOL, "h")
        for n in PARAM_NAMES:
            assert_close(grads[n], ref_grads[n], RTOL, f"d{n}")
        same_loss(model.loss(inputs, targets, hprev), ref_loss, inputs.shape[1])
        lr = 0.05
        loss, h = model.train_step(inputs, targets, hprev, learning_rate=lr)
        ref_params, ref_memory = copy_dict(params), copy_dict(memory)
        reference.batch_train_step(id_lists(inputs), id_lists(targets), hprev, ref_params,
                                   ref_memory, lr)
        for n in PARAM_NAMES:
            assert_close(model.params[n], ref_params[n], TRAIN_RTOL, n)
            assert_close(model.memory[n], ref_memory[n], TRAIN_RTOL, f"memory {n}")
    finally:
        core._set_gemm_min_streams(old)
