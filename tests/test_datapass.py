"""min-char-rnn's data pass, wherever it runs: CharRNN.train (the training
loop run in the core, issue 10) and the train command's steps, one stream
or B (--batch-size).

The oracles: conftest.data_pass, the seed's data pass written out once
(chunks left to right, reset to a zero state and position 0 when the next
chunk would not fit: ``n == 0 or p + T + 1 >= part``), driving
CharRNN.train_step (must agree bit for bit: the same kernels run in the same
order) and the numpy reference (within the parity tolerances).
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from threadpoolctl import threadpool_limits

from charrnn_ext import CharRNN, PARAM_NAMES, Vocab, load_checkpoint
from charrnn_ext.core import reference
from charrnn_ext.core.model import TrainingDiverged, chunk_wraps
from charrnn_ext.core.spec import init_params

from conftest import (TRAIN_RTOL, assert_close, copy_dict, data_pass, data_pass_end,
                      random_params, reference_train_step, run_cli, same_model)


def loop_of_train_steps(model, ids, B, T, steps, lr=0.1):
    H = model.hidden_size
    h, losses = np.zeros((H, B)), []
    for inputs, targets, reset in data_pass(ids, T, steps, streams=None if B == 1 else B):
        if reset:
            h = np.zeros((H, B))
        loss, h = model.train_step(inputs, targets, h, lr)
        losses.append(loss)
    return np.array(losses), h


@pytest.mark.parametrize("B", [1, 2, 5])
def test_train_equals_a_loop_of_train_steps_bit_for_bit(B):
    V, H, T = 23, 17, 6
    ids = np.random.default_rng(B).integers(0, V, 331).astype(np.int32)
    steps = 3 * (len(ids) // B) // T + 4      # several wraps of the data pass
    a, b = CharRNN(V, H, seed=1), CharRNN(V, H, seed=1)
    expected, h = loop_of_train_steps(a, ids, B, T, steps)
    losses, hb, position = b.train(ids, steps, T, streams=B)
    assert np.array_equal(losses, expected)
    assert np.array_equal(hb, h) and hb.shape == (H, B) if B > 1 else hb.shape == (H, 1)
    assert np.array_equal(hb.reshape(H, B), h.reshape(H, B))
    assert same_model(a, b)
    # the position of the next step: the last chunk's, plus T
    assert position == data_pass_end(len(ids), T, steps, streams=B)


@settings(max_examples=25, deadline=None)
@given(V=st.integers(2, 40), H=st.integers(1, 24), T=st.integers(1, 12), B=st.integers(1, 4),
       steps=st.integers(0, 60), cut=st.integers(0, 60), seed=st.integers(0, 2**16))
def test_train_in_pieces_equals_one_call(V, H, T, B, steps, cut, seed):
    """Any split of the steps over calls (the CLI's blocks; resuming) gives the
    same model, losses, state and position as one call."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, B * (T + 1) + int(rng.integers(0, 80))).astype(np.int32)
    cut = min(cut, steps)
    a, b = CharRNN(V, H, seed=seed), CharRNN(V, H, seed=seed)
    la, ha, pa = a.train(ids, steps, T, streams=B)
    l1, h1, p1 = b.train(ids, cut, T, streams=B)
    l2, h2, p2 = b.train(ids, steps - cut, T, hprev=h1, position=p1, streams=B)
    assert np.array_equal(np.concatenate([l1, l2]), la)
    assert np.array_equal(h2, ha) and p2 == pa
    assert same_model(a, b)


def test_train_matches_the_numpy_reference_over_the_seed_data_pass():
    V, H, T, steps = 19, 12, 7, 40
    rng = np.random.default_rng(3)
    ids = rng.integers(0, V, 150).astype(np.int32)
    params = random_params(V, H, rng)
    ref_params, ref_memory = copy_dict(params), {n: np.zeros_like(p) for n, p in params.items()}
    h, ref_losses = np.zeros((H, 1)), []
    for inputs, targets, reset in data_pass(ids, T, steps):
        if reset:
            h = np.zeros((H, 1))
        loss, h = reference.train_step(list(map(int, inputs)), list(map(int, targets)), h,
                                       ref_params, ref_memory, 0.1)
        ref_losses.append(loss)
    model = CharRNN.from_params(params)
    losses, hm, _ = model.train(ids, steps, T)
    assert_close(losses, np.array(ref_losses), TRAIN_RTOL, "losses")
    assert_close(hm, h, TRAIN_RTOL, "h")
    for n in PARAM_NAMES:
        assert_close(model.params[n], ref_params[n].reshape(model.params[n].shape), TRAIN_RTOL, n)


def test_train_starts_from_hprev_and_position():
    V, H, T = 11, 9, 4
    ids = (np.arange(90) % V).astype(np.int32)
    hprev = np.random.default_rng(0).uniform(-1, 1, (H, 1))
    a, b = CharRNN(V, H, seed=0), CharRNN(V, H, seed=0)
    losses, h, position = a.train(ids, 3, T, hprev=hprev, position=20)
    hb, expected = hprev, []
    for p in (20, 24, 28):
        loss, hb = b.train_step(ids[p:p + T], ids[p + 1:p + T + 1], hb)
        expected.append(loss)
    assert np.array_equal(losses, expected) and np.array_equal(h, hb) and position == 32
    assert same_model(a, b)
    # a position the next chunk does not fit at: back to the start, zero state
    assert chunk_wraps(85, 90, T) and not chunk_wraps(84, 90, T)  # 84 + 4 + 1 < 90
    c, d = CharRNN(V, H, seed=0), CharRNN(V, H, seed=0)
    lc, hc, pc = c.train(ids, 1, T, hprev=hprev, position=85)
    ld, hd = d.train_step(ids[0:T], ids[1:T + 1], None)
    assert lc[0] == ld and np.array_equal(hc, hd) and pc == T


def test_train_stops_after_a_non_finite_loss():
    """It raises TrainingDiverged after the step, which carries what train
    would have returned for the steps run (test_model_nonfinite has more)."""
    ids = (np.arange(300) % 10).astype(np.int32)
    with pytest.raises(TrainingDiverged) as caught:
        CharRNN(10, 8, seed=0).train(ids, 50, 5, learning_rate=1e308)
    losses, h, position = caught.value.losses, caught.value.hidden, caught.value.position
    assert 0 < losses.size < 50 and h.shape == (8, 1)
    assert np.all(np.isfinite(losses[:-1])) and not np.isfinite(losses[-1])
    assert position == 5 * losses.size
    assert f"step {losses.size} of 50" in str(caught.value)


def test_zero_steps_change_nothing():
    m = CharRNN(10, 8, seed=0)
    before = m.copy()
    hprev = np.full((8, 1), 0.5)
    losses, h, position = m.train((np.arange(50) % 10).astype(np.int32), 0, 5, hprev, 7)
    assert losses.shape == (0,) and np.array_equal(h, hprev) and position == 7
    assert same_model(m, before)


# ---------------------------------------------------------------------------
# what the steps read: checked before any step, only what they read
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, match", [
    (dict(steps=-1), ValueError, "steps"),
    (dict(steps=2.0), ValueError, "steps"),
    (dict(steps=True), ValueError, "steps"),
    (dict(seq_length=0), ValueError, "seq_length"),
    (dict(streams=0), ValueError, "streams"),
    (dict(position=-1), ValueError, "position"),
    (dict(learning_rate=float("nan")), ValueError, "learning_rate"),
    (dict(streams=9), ValueError, "at least seq_length"),       # parts of 4 < T + 1
    (dict(hprev=np.zeros((8, 2))), ValueError, "hprev"),
    (dict(hprev=np.full((8, 1), np.inf)), ValueError, "NaN or infinite"),
])
def test_bad_arguments_are_refused_before_any_step(kwargs, error, match):
    m = CharRNN(10, 8, seed=0)
    before = m.copy()
    args = dict(data=(np.arange(40) % 10).astype(np.int32), steps=3, seq_length=4)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        m.train(**args)
    assert same_model(m, before)


@pytest.mark.parametrize("data, error, match", [
    (np.arange(40, dtype=np.int64) % 10 + 5, ValueError, r"data\[5\] = 10 is outside \[0, 10\)"),
    (np.arange(40, dtype=np.float64) % 10, TypeError, "integer ids"),
    (np.zeros((4, 10), dtype=np.int32), ValueError, "1-D"),
    ("abcdefghij", TypeError, "sequence of integer ids"),
    (np.zeros(0, dtype=np.int32), ValueError, "empty"),
])
def test_bad_data_is_refused_before_any_step(data, error, match):
    m = CharRNN(10, 8, seed=0)
    before = m.copy()
    with pytest.raises(error, match=match):
        m.train(data, 3, 4)
    assert same_model(m, before)


def test_a_bad_id_where_the_steps_read_is_refused_and_elsewhere_ignored():
    ids = (np.arange(200) % 10).astype(np.int32)
    ids[150] = -3
    m = CharRNN(10, 8, seed=0)
    before = m.copy()
    # 10 steps of T = 5 from 0 read ids[0:51]; 40 steps read through 150
    m.train(ids, 10, 5)
    assert not same_model(m, before)
    after = m.copy()
    with pytest.raises(ValueError, match=r"data\[150\] = -3"):
        m.train(ids, 40, 5)
    assert same_model(m, after)
    # B = 2: parts of 100 ids; stream 1 reads ids[100 + p ...]
    with pytest.raises(ValueError, match=r"data\[150\] = -3"):
        m.train(ids, 12, 5, hprev=np.zeros((8, 2)), streams=2)
    assert same_model(m, after)


@pytest.mark.parametrize("cell, L", [("rnn", 1), ("lstm", 1), ("gru", 2)])
def test_the_core_checks_each_chunk_it_copies(cell, L):
    """The core's own checks of what it reads (the Python layer hands it a
    checked private window, so they are a second line): an id outside
    [0, V) stops it before that chunk; so does a chunk outside the window.
    The same data pass for min-char-rnn's kernels and the stack's."""
    m = CharRNN(10, 8, seed=0, cell=cell, num_layers=L)
    ids = (np.arange(100) % 10).astype(np.int32)
    ids[33] = 99
    h = np.zeros((m.state_size // 8, 1, 8))
    losses = np.empty(20)
    done, position, bad = m._workspace.train(ids.reshape(1, -1), 0, 100, 0, h, 5, 0.1, losses)
    assert (done, bad) == (6, 33)      # chunks 0..5 end at 30; chunk 6 reads 30..35
    assert position == 30
    # a window of ids 40..60 of the part: a chunk from 30 lies outside it
    window = np.ascontiguousarray(ids[40:60].reshape(1, -1))
    done, position, bad = m._workspace.train(window, 40, 100, 30, h, 5, 0.1, losses)
    assert (done, position, bad) == (0, 30, -2)
    done, position, bad = m._workspace.train(window, 40, 100, 40, h, 5, 0.1, losses)
    assert (done, position, bad) == (3, 55, -2)   # chunks at 40, 45, 50 fit; 55..60 does not


def test_the_wrap_is_checked_before_any_step():
    """The ids after the data pass wraps are checked before the first step
    (min-char-rnn wraps once position + T + 1 >= part)."""
    ids = (np.arange(100) % 10).astype(np.int32)
    ids[2] = 99
    m = CharRNN(10, 8, seed=0)
    before = m.copy()
    with pytest.raises(ValueError, match=r"data\[2\] = 99"):
        m.train(ids, 2, 5, position=89)       # 89 + 5 + 1 < 100: the second step wraps
    assert same_model(m, before)


def test_any_position_past_the_end_wraps():
    ids = (np.arange(100) % 10).astype(np.int32)
    expected = CharRNN(10, 8, seed=0).train(ids, 3, 5)
    for position in (94, 95, 100, 10**6, 2**63 - 1, 2**80):
        got = CharRNN(10, 8, seed=0).train(ids, 3, 5, position=position)
        assert np.array_equal(got[0], expected[0]) and got[2] == expected[2] == 15
    assert chunk_wraps(2**80, 100, 5) and chunk_wraps(94, 100, 5) and not chunk_wraps(93, 100, 5)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64, np.uint64])
def test_any_integer_array_and_memmaps_train_as_int32(dtype, tmp_path):
    ids = (np.arange(3000) * 7 % 23).astype(np.int32)
    expected = CharRNN(23, 16, seed=0).train(ids, 150, 9)
    got = CharRNN(23, 16, seed=0).train(ids.astype(dtype), 150, 9)
    assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    mm = np.memmap(tmp_path / "ids.bin", dtype=dtype, mode="w+", shape=ids.shape)
    mm[:] = ids
    got = CharRNN(23, 16, seed=0).train(mm, 150, 9)
    assert np.array_equal(got[0], expected[0])
    assert CharRNN(23, 16, seed=0).train(ids.tolist(), 150, 9)[0].tolist() == expected[0].tolist()


def test_ids_no_step_reads_are_not_refused_and_a_wrap_copies_no_more_than_it_reads():
    """Only the ids the steps read are checked (the last id of a part is read
    only when every step wraps); a call that crosses the wrap of a large text
    copies a window, not the text."""
    import tracemalloc

    ids = (np.arange(100) % 10).astype(np.int32)
    ids[99] = 50                      # part 100, T 5: positions up to 93 run; 99 is never read
    ids[97] = 50
    m = CharRNN(10, 8, seed=0)
    assert m.train(ids, 40, 5)[0].size == 40
    tiny = np.array([1, 2, 3, 4, 5, 6], dtype=np.int32)   # part = T + 1: every step wraps
    tiny[5] = 77
    with pytest.raises(ValueError, match=r"data\[5\] = 77"):
        CharRNN(10, 8, seed=0).train(tiny, 2, 5)
    big = (np.arange(20_000_000) % 65).astype(np.uint8)
    model = CharRNN(65, 32, seed=0)
    tracemalloc.start()
    losses, h, position = model.train(big, 5, 25, position=big.size - 30)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert losses.size == 5 and position == 100 and peak < 1e6


# ---------------------------------------------------------------------------
# the train command's data pass (subprocesses)
# ---------------------------------------------------------------------------

def replay(data, V, H, T, steps, seed, streams=None):
    """The steps of a train-command run (learning rate 0.1) replayed
    in-process over conftest.data_pass, from the same init: with CharRNN and
    with the numpy reference (batched for B streams). Returns (model, h,
    reference params, reference memory)."""
    B = 1 if streams is None else streams
    model = CharRNN(V, H, seed=seed)
    ref_params = init_params(V, H, seed=seed)
    ref_memory = {k: np.zeros_like(v) for k, v in ref_params.items()}
    with threadpool_limits(limits=1):
        for x, y, reset in data_pass(data, T, steps, streams):
            if reset:
                h, h_ref = np.zeros((H, B)), np.zeros((H, B))
            _, h_ref = reference_train_step(x, y, h_ref, ref_params, ref_memory, 0.1)
            _, h = model.train_step(x, y, h, 0.1)
    return model, h, ref_params, ref_memory


def test_data_pass_matches_the_seed_and_the_reference(cli_texts, tmp_path):
    """The CLI's steps are the seed's loop: chunks left to right, hidden state
    carried, reset at the end of the (training part of the) text. Replayed
    in-process with the numpy reference, from the same start, they agree;
    replayed with CharRNN they agree bit for bit."""
    text = (cli_texts / "en.txt").read_text(encoding="utf-8")
    T, H, steps = 40, 8, 120
    rc, _, err = run_cli("train", cli_texts / "en.txt", "--hidden-size", H, "--seq-length", T,
                         "--iters", steps, "--val-fraction", 0.1, "--seed", 7,
                         "--checkpoint", "c.npz", cwd=tmp_path)
    assert rc == 0, err
    ckpt = load_checkpoint(tmp_path / "c.npz")
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    data = ids[:len(ids) - int(len(ids) * 0.1)]
    assert steps * T > 2 * len(data)  # the pass wraps around at least twice
    model, h, ref_params, ref_memory = replay(data, len(vocab), H, T, steps, seed=7)
    assert ckpt.position == data_pass_end(len(data), T, steps)
    assert np.array_equal(ckpt.hidden, h)
    for name in PARAM_NAMES:
        assert np.array_equal(ckpt.model.params[name], model.params[name]), name
        np.testing.assert_allclose(ckpt.model.params[name], ref_params[name], rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(ckpt.model.memory[name], ref_memory[name], rtol=1e-7, atol=1e-10)


def test_batch_data_pass_matches_the_batched_reference(cli_texts, tmp_path):
    """--batch-size B: the training text is cut into B equal parts; stream b
    reads part b left to right in chunks of T with its own hidden state, all
    streams resetting together at the end of their parts. Replayed in-process
    with CharRNN on (B, T) chunks the run agrees bit for bit, and with the
    batched numpy reference within 1e-9."""
    text = (cli_texts / "en.txt").read_text(encoding="utf-8")
    T, H, B, steps = 12, 8, 3, 70
    rc, out, err = run_cli("train", cli_texts / "en.txt", "--hidden-size", H, "--seq-length", T,
                           "--batch-size", B, "--iters", steps, "--seed", 4,
                           "--recipe", "min-char-rnn", "--checkpoint", "b.npz", cwd=tmp_path)
    assert rc == 0, err
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    data = ids[:len(ids) - int(len(ids) * 0.05)]
    part = len(data) // B
    assert f"{B} streams of {part} characters" in out
    assert steps * T > part  # the streams wrap (reset) at least once
    ckpt = load_checkpoint(tmp_path / "b.npz")
    assert ckpt.hidden.shape == (H, B) and ckpt.hyperparameters["batch_size"] == B
    model, h, ref_params, _ = replay(data, len(vocab), H, T, steps, seed=4, streams=B)
    assert ckpt.position == data_pass_end(len(data), T, steps, streams=B)
    assert np.array_equal(ckpt.hidden, h)
    for name in PARAM_NAMES:
        assert np.array_equal(ckpt.model.params[name], model.params[name]), name
        np.testing.assert_allclose(ckpt.model.params[name], ref_params[name], rtol=1e-9, atol=1e-12)
