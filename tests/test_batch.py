"""B parallel streams (issue 9): CharRNN.train_step, loss_and_grads and loss
on inputs/targets (B, T) and hprev (H, B), against the batched numpy
reference (reference.batch_lossFun: the obvious loop over lossFun, raw
gradients averaged over streams, then clipped).

Semantics: the loss is the mean over streams of each stream's summed chunk
loss; the gradients are the mean over streams, clipped to [-5, 5]; one
Adagrad update. The recurrence of B streams runs on the core's own kernel
below core.gemm_min_streams() streams and on dgemm from there on: both are
checked (B = 2 and 7 below the default threshold, 32 above it, and each B
forced through both kernels).
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import charrnn_ext
from charrnn_ext import CharRNN, PARAM_NAMES, Vocab, reference
from charrnn_ext._dispatch import core
from charrnn_ext.defaults import CLIP, LEARNING_RATE

from conftest import assert_close, copy_dict, english_like_text, random_memory, random_params

RTOL = 1e-10        # loss, gradients, hidden states
TRAIN_RTOL = 1e-9   # parameters and memory after a step (see tests/test_parity.py)


# ---------------------------------------------------------------------------
# parity with the batched reference
# ---------------------------------------------------------------------------

BATCH_SHAPES = [
    *(pytest.param(65, 100, 25, B, id=f"V65-H100-T25-B{B}") for B in (1, 2, 7, 32)),
    *(pytest.param(3001, 200, 30, B, id=f"V3001-H200-T30-B{B}") for B in (1, 2, 7)),
    pytest.param(517, 200, 30, 32, id="V517-H200-T30-B32-four-stripes"),
    *(pytest.param(29, 512, 20, B, id=f"V29-H512-T20-B{B}") for B in (1, 2, 7, 32)),
]


# ---------------------------------------------------------------------------
# training: 100 teacher-forced steps at B = 8
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# B = 1 through the batched API is the 1-D call, bit for bit
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# gradient check of the mean loss at B = 3
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# properties over (B, T, V, H)
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# bad shapes: clear ValueErrors, nothing changed
# ---------------------------------------------------------------------------

V_BAD, H_BAD = 10, 6
X2 = np.arange(8).reshape(2, 4) % V_BAD


BAD_SHAPES = [
    pytest.param(X2, X2[:1], None, r"number of streams \(B = 2 vs 1\)", id="B-mismatch-targets"),
    pytest.param(X2, X2[:, :3], None, r"differ in length \(4 vs 3\)", id="T-mismatch"),
    pytest.param(X2, X2[0], None, "both be 1-D .* or both 2-D", id="2-D-vs-1-D"),
    pytest.param(X2, X2, np.zeros((H_BAD, 3)), r"shape \(6, 2\) \(H, B\).*got \(6, 3\)",
                 id="hprev-B-mismatch"),
    pytest.param(X2, X2, np.zeros((H_BAD, 1)), r"one hidden state, but the inputs hold B = 2",
                 id="hprev-H1-with-B2"),
    pytest.param(X2, X2, np.zeros(H_BAD), r"one hidden state, but the inputs hold B = 2",
                 id="hprev-1-D-with-B2"),
    pytest.param(X2, X2, np.zeros((2, H_BAD)), r"shape \(6, 2\)", id="hprev-transposed"),
    pytest.param(X2[0], X2[0], np.zeros((H_BAD, 2)), "for 1-D inputs", id="1-D-inputs-with-(H,2)"),
    pytest.param(np.zeros((0, 4), int), np.zeros((0, 4), int), None, r"no streams \(B = 0\)",
                 id="B0"),
    pytest.param(np.zeros((2, 0), int), np.zeros((2, 0), int), None, "empty", id="T0"),
    pytest.param([[1, 2, 3], [4, 5]], [[1, 2, 3], [4, 5, 6]], None, "rows differ in length",
                 id="ragged-inputs"),
    pytest.param([[1, 2, 3], [4, 5, 6]], [[1, 2], [4, 5, 6]], None, "rows differ in length",
                 id="ragged-targets"),
    pytest.param(np.zeros((2, 3, 4), int), np.zeros((2, 3, 4), int), None, r"1-D \(T,\) or 2-D",
                 id="3-D"),
    pytest.param([[1, 2], [3, V_BAD]], [[1, 2], [3, 4]], None, r"inputs\[1, 1\] = 10 is outside",
                 id="id-out-of-range"),
]


@pytest.mark.parametrize("method", ["train_step", "loss_and_grads", "loss"])
@pytest.mark.parametrize("inputs,targets,hprev,message", BAD_SHAPES)
def test_bad_shapes_are_clear_value_errors(method, inputs, targets, hprev, message):
    model = CharRNN(V_BAD, H_BAD, seed=0)
    before = {n: model.params[n].copy() for n in PARAM_NAMES}
    with pytest.raises(ValueError, match=message):
        getattr(model, method)(inputs, targets, hprev)
    for n in PARAM_NAMES:
        assert np.array_equal(model.params[n], before[n])


def test_advance_and_sample_stay_single_stream():
    model = CharRNN(V_BAD, H_BAD, seed=0)
    with pytest.raises(ValueError, match="1-D"):
        model.advance(X2, None)
    with pytest.raises(ValueError):
        model.sample(np.zeros((H_BAD, 2)), 0, 5)


# ---------------------------------------------------------------------------
# threads: identical results for any thread count at B > 1
# ---------------------------------------------------------------------------

