"""The batched recipe's pieces in the core against the numpy reference: the
input embedding (params["embed"] (V, D), Wxh (H, D)), Adam (torch.optim.Adam's
update), the "pytorch" initialisation, and the recurrence cut into groups of
streams (bit-identical on one thread or two). The oracle is
charrnn_ext.core.reference (its lossFun loops with an embedding, adam_update);
PyTorch, where installed, cross-checks Adam and the embedded cell."""
import numpy as np
import pytest

from charrnn_ext import CharRNN
from charrnn_ext.core import reference
from charrnn_ext.core._dispatch import core
from charrnn_ext.core.spec import EMBED, init_params, param_names, param_shapes

from conftest import RTOL, TRAIN_RTOL, assert_close, id_lists, random_chunk


def embedded_params(V, H, D, rng, scale=0.1):
    shapes = param_shapes(V, H, D)
    return {n: rng.standard_normal(shapes[n]) * (1.0 if n == EMBED else scale)
            for n in param_names(D)}


def streams_problem(V, H, T, B, rng):
    return (rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T)),
            rng.uniform(-1, 1, (H, B)))


@pytest.mark.parametrize("V,H,D,T,B", [(7, 5, 3, 6, 1), (11, 1, 4, 1, 1), (9, 6, 1, 4, 3),
                                       (20, 16, 8, 5, 2), (30, 24, 12, 3, 20)])
def test_embedding_loss_grads_and_state_match_reference(V, H, D, T, B):
    rng = np.random.default_rng(V * 100 + B)
    params = embedded_params(V, H, D, rng)
    x, y, h0 = streams_problem(V, H, T, B, rng)
    model = CharRNN.from_params(params)
    assert model.embedding_size == D
    loss, grads, h = model.loss_and_grads(x, y, h0)
    ref_loss, ref_grads, ref_h = reference.batch_lossFun(id_lists(x), id_lists(y), h0, params)
    assert abs(loss - ref_loss) <= RTOL * abs(ref_loss)
    assert_close(h, ref_h, RTOL, "h")
    assert set(grads) == set(param_names(D))
    for name in grads:
        assert_close(grads[name], ref_grads[name], RTOL, f"d{name}")
    fwd = model.loss(x, y, h0)
    assert abs(fwd - ref_loss) <= RTOL * abs(ref_loss)


def test_embedding_one_stream_sample_and_advance_match_reference():
    rng = np.random.default_rng(5)
    V, H, D = 13, 9, 4
    params = embedded_params(V, H, D, rng, scale=0.5)
    model = CharRNN.from_params(params)
    ids = rng.integers(0, V, 40)
    h = model.advance(ids)
    ref = np.zeros((H, 1))
    for i in ids:
        ref = np.tanh(params["Wxh"] @ params[EMBED][i].reshape(-1, 1) + params["Whh"] @ ref
                      + params["bh"].reshape(-1, 1))
    assert_close(h, ref, RTOL, "advance")
    got = model.sample(h, 3, 30, temperature=0.0)
    want = reference.sample(h, 3, 30, params, temperature=0.0)
    assert list(got) == want
    got = model.sample(h, 3, 50, temperature=0.8, rng=7)
    want = reference.sample(h, 3, 50, params, temperature=0.8, rng=np.random.default_rng(7))
    assert list(got) == want


@pytest.mark.parametrize("embedding", [0, 5])
@pytest.mark.parametrize("B", [1, 4])
def test_adam_steps_match_reference(embedding, B):
    """Many Adam steps (clipped gradients; one-hot or embedded input): params,
    both moments and the step count follow reference.adam_update."""
    rng = np.random.default_rng(embedding + 10 * B)
    V, H, T, lr = 10, 8, 7, 0.01
    params = (embedded_params(V, H, embedding, rng, 0.3) if embedding
              else init_params(V, H, 3, 0, "pytorch"))
    model = CharRNN.from_params(params, optimizer="adam")
    ref = {n: a.copy() for n, a in params.items()}
    mom = {n: np.zeros_like(a) for n, a in params.items()}
    mem = {n: np.zeros_like(a) for n, a in params.items()}
    h = ref_h = np.zeros((H, B))
    for step in range(1, 31):
        x, y, _ = streams_problem(V, H, T, B, rng)
        if B == 1:
            x, y = x[0], y[0]
        loss, h = model.train_step(x, y, h, learning_rate=lr)
        xs, ys = (id_lists(x), id_lists(y)) if B > 1 else ([list(x)], [list(y)])
        ref_loss, grads, ref_h = reference.batch_lossFun(xs, ys, ref_h, ref)
        reference.adam_update(ref, grads, mem, mom, step, lr)
        assert abs(loss - ref_loss) <= TRAIN_RTOL * abs(ref_loss)
    assert model.adam_steps == 30
    for name in ref:
        assert_close(model.params[name], ref[name], TRAIN_RTOL, name)
        assert_close(model.memory[name], mem[name], TRAIN_RTOL, f"memory {name}")
        assert_close(model.moment[name], mom[name], TRAIN_RTOL, f"moment {name}")


def test_adam_moves_columns_of_absent_inputs():
    """Adam is not sparse: a column of one-hot Wxh whose id is absent from the
    chunk still moves (its momentum); Adagrad leaves it alone."""
    V, H = 6, 4
    for optimizer, moves in (("adam", True), ("adagrad", False)):
        model = CharRNN(V, H, seed=1, optimizer=optimizer, init="pytorch")
        model.train_step([0, 1, 2], [1, 2, 3], None, 0.01)
        before = np.array(model.params["Wxh"][:, 0])
        model.train_step([4, 5, 4], [5, 4, 5], None, 0.01)
        assert (not np.array_equal(model.params["Wxh"][:, 0], before)) == moves


@pytest.mark.parametrize("optimizer", ["adagrad", "adam"])
def test_train_loop_equals_train_step_loop(optimizer):
    """model.train (the core's loop) is the loop of train_step calls, bit for bit."""
    rng = np.random.default_rng(2)
    V, H, D, T, B = 12, 10, 6, 5, 3
    data = rng.integers(0, V, 400)
    a = CharRNN(V, H, seed=4, embedding_size=D, optimizer=optimizer, init="pytorch")
    b = a.copy()
    losses, h, pos = a.train(data, 40, T, streams=B, learning_rate=0.01)
    part = data.size // B
    hb, p = np.zeros((H, B)), 0
    for k in range(40):
        if p >= part - T - 1:
            hb, p = np.zeros((H, B)), 0
        x = np.stack([data[s * part + p: s * part + p + T] for s in range(B)])
        y = np.stack([data[s * part + p + 1: s * part + p + T + 1] for s in range(B)])
        loss, hb = b.train_step(x, y, hb, 0.01)
        assert loss == losses[k]
        p += T
    assert pos == p and np.array_equal(h, hb)
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name]), name
        assert np.array_equal(a.memory[name], b.memory[name]), name


def test_embedding_gradients_match_finite_differences():
    rng = np.random.default_rng(8)
    V, H, D, T = 6, 5, 3, 4
    params = embedded_params(V, H, D, rng, scale=0.3)
    x, y = random_chunk(V, T, rng)
    h0 = rng.uniform(-0.5, 0.5, (H, 1))
    _, grads, _ = CharRNN.from_params(params).loss_and_grads(x, y, h0)
    eps = 1e-6
    for name in param_names(D):
        flat = params[name].reshape(-1)
        for i in rng.choice(flat.size, min(flat.size, 6), replace=False):
            old = flat[i]
            flat[i] = old + eps
            up = CharRNN.from_params(params).loss(x, y, h0)
            flat[i] = old - eps
            down = CharRNN.from_params(params).loss(x, y, h0)
            flat[i] = old
            numeric = (up - down) / (2 * eps)
            analytic = grads[name].reshape(-1)[i]
            assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(numeric)), (name, i)


@pytest.mark.parametrize("B,H,V,T", [(32, 40, 9, 6), (48, 24, 9, 6), (16, 32, 9, 6),
                                     (64, 8, 9, 6), (32, 64, 65, 50)])
def test_stream_groups_thread_independent_and_match_reference(B, H, V, T, restore_threads):
    """The recurrence in groups of streams, and (the last size) a one-stripe
    output layer in pieces of rows: the same bits on 1 and 2 threads, and the
    reference's results."""
    assert core.stripe_count(65, 64) == 1   # the last size's output layer: one stripe
    rng = np.random.default_rng(B + H)
    params = embedded_params(V, H, 4, rng)
    x, y, h0 = streams_problem(V, H, T, B, rng)
    results = []
    for threads in (1, 2):
        core.set_num_threads(threads)
        model = CharRNN.from_params(params, optimizer="adam")
        _, grads, _ = model.loss_and_grads(x, y, h0)
        loss, h = model.train_step(x, y, h0, 0.01)
        results.append((loss, h, {n: np.array(a) for n, a in model.params.items()}, grads))
        adagrad = CharRNN.from_params(params)          # the fused output-layer update
        adagrad.train_step(x, y, h0, 0.1)
        results[-1][2].update({"adagrad " + n: np.array(a) for n, a in adagrad.params.items()})
    (l1, h1, p1, g1), (l2, h2, p2, g2) = results
    assert l1 == l2 and np.array_equal(h1, h2)
    assert all(np.array_equal(p1[n], p2[n]) for n in p1)
    assert all(np.array_equal(g1[n], g2[n]) for n in g1)
    ref_loss, ref_grads, ref_h = reference.batch_lossFun(id_lists(x), id_lists(y), h0, params)
    assert abs(l1 - ref_loss) <= RTOL * abs(ref_loss)
    assert_close(h1, ref_h, RTOL, "h")
    for name in ref_grads:
        assert_close(g1[name], ref_grads[name], RTOL, f"d{name}")
    ref = {n: a.copy() for n, a in params.items()}
    reference.adagrad_update(ref, ref_grads, {n: np.zeros_like(a) for n, a in ref.items()}, 0.1)
    for name in ref:
        assert_close(p1["adagrad " + name], ref[name], TRAIN_RTOL, f"adagrad {name}")


def test_pytorch_init_bounds_and_determinism():
    a = init_params(30, 16, 7, 8, "pytorch")
    b = init_params(30, 16, 7, 8, "pytorch")
    assert all(np.array_equal(a[n], b[n]) for n in a)
    bound = 1 / np.sqrt(16)
    for name in ("Wxh", "Whh", "Why", "bh", "by"):
        assert np.abs(a[name]).max() <= bound and np.abs(a[name]).max() > 0.8 * bound
    assert 0.8 < a[EMBED].std() < 1.2
    assert not np.array_equal(init_params(30, 16, 8, 8, "pytorch")["Whh"], a["Whh"])
    with pytest.raises(ValueError, match="init"):
        CharRNN(5, 4, init="xavier")
    with pytest.raises(ValueError, match="optimizer"):
        CharRNN(5, 4, optimizer="sgd")
    with pytest.raises(ValueError, match="embedding_size"):
        CharRNN(5, 4, embedding_size=-1)


def test_min_char_rnn_model_is_unchanged_by_default():
    """No option given: the seed's init, one-hot input, Adagrad."""
    model = CharRNN(10, 6, seed=3)
    assert model.optimizer == "adagrad" and model.embedding_size == 0
    assert set(model.params) == {"Wxh", "Whh", "Why", "bh", "by"}
    want = reference.init_params(10, 6, 3)
    assert all(np.array_equal(model.params[n], want[n]) for n in want)
    assert dict(model.moment) == {}


def test_adam_matches_torch():
    """Cross-check with an independent implementation: torch.optim.Adam on
    nn.Embedding -> tanh cell -> Linear, float64, with min-char-rnn's
    elementwise clip; 20 steps of one stream."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    V, H, D, T, lr = 8, 6, 4, 5, 0.01
    params = embedded_params(V, H, D, rng, 0.4)
    model = CharRNN.from_params(params, optimizer="adam")
    tp = {n: torch.tensor(a.copy(), requires_grad=True) for n, a in params.items()}
    opt = torch.optim.Adam(list(tp.values()), lr=lr)
    h, th = None, torch.zeros(H, 1, dtype=torch.float64)
    for _ in range(20):
        x, y = random_chunk(V, T, rng)
        loss, h = model.train_step(x, y, h, lr)
        total = 0
        for xi, yi in zip(x, y):
            th = torch.tanh(tp["Wxh"] @ tp[EMBED][xi].reshape(-1, 1) + tp["Whh"] @ th + tp["bh"])
            logits = (tp["Why"] @ th + tp["by"]).reshape(-1)
            total = total - torch.log_softmax(logits, 0)[yi]
        opt.zero_grad()
        total.backward()
        for p in tp.values():
            p.grad.clamp_(-5, 5)
        opt.step()
        th = th.detach()
        assert abs(loss - total.item()) <= 1e-10 * abs(loss)
    for n in params:
        assert_close(model.params[n], tp[n].detach().numpy(), 1e-9, n)
