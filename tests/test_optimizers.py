"""The optimizer table (charrnn_ext.core.optimizers) and RMSprop, the optimizer added through it.

The table is the core's (its enum's names, which of them keep a moment), the
settings' (--optimizer's choices) and the checkpoints' (a file names its
optimizer; an older file without the name is read as before: Adam if it
holds a moment, else Adagrad). RMSprop (torch.optim.RMSprop's update after
min-char-rnn's clip) follows the numpy references (reference.rmsprop_update,
reference_gated.rmsprop_step) to ~1e-10 over many steps on every kind of
model, float32 follows float64 within float32's rounding, and PyTorch's
RMSprop on the same weights agrees step by step. The command's exact resume:
test_cli_train_resume.py.
"""
import numpy as np
import pytest

from charrnn_ext import CharRNN
from charrnn_ext.core import optimizers, reference, reference_gated as R
from charrnn_ext.core._dispatch import core_for
from charrnn_ext.ckpt.checkpoint import load_checkpoint
from charrnn_ext.run.memory import model_bytes
from charrnn_ext.core.settings import OTHER_RATES, check
from charrnn_ext.core.spec import init_params

from conftest import (TRAIN_RTOL, assert_close, assert_load_refused, id_lists, rewrite_archive,
                      same_loss, same_model, trained_checkpoint)

CELLS = ("rnn", "lstm", "gru")
DTYPES = ("float64", "float32")
F32 = 2e-3      # float32 against float64 after tens of steps (rounding amplified by training)
RMS = optimizers.get("rmsprop")


# -- the table -----------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_the_table_is_the_core_s(dtype):
    """The core's enum names the table's optimizers, in order; the ones it
    gives a moment array are the ones whose slots hold "moment"."""
    core = core_for(dtype)
    assert tuple(core.OPTIMIZER_CODES) == optimizers.OPTIMIZERS
    assert list(core.OPTIMIZER_CODES.values()) == list(range(len(optimizers.OPTIMIZERS)))
    assert set(core.WITH_MOMENT) == {o.name for o in optimizers.TABLE.values()
                                     if "moment" in o.slots}


def test_settings_and_models_read_the_table():
    """--optimizer's choices, the recipes' rates, a model's state slots and
    its memory estimate follow the table."""
    for name in optimizers.OPTIMIZERS:
        assert check("optimizer", name) == name
        model = CharRNN(5, 4, 0, optimizer=name)
        assert model.optimizer == name and bool(model.moment) == optimizers.has(name, "moment")
        gated = CharRNN(5, 4, 0, cell="lstm", optimizer=name)
        assert gated.optimizer == name and bool(gated.moment) == optimizers.has(name, "moment")
        copies = 2 + len(optimizers.get(name).slots)
        assert model_bytes(5, 4, 3, 1, optimizer=name) - model_bytes(5, 4, 3, 1) == \
            (copies - 3) * 8 * (4 * 5 + 4 * 4 + 5 * 4 + 4 + 5)
    with pytest.raises(ValueError, match="one of adagrad, adam, rmsprop, got sgd"):
        check("optimizer", "sgd")
    with pytest.raises(ValueError, match="optimizer must be one of"):
        CharRNN(5, 4, 0, optimizer="RMSprop")
    assert OTHER_RATES[("min-char-rnn", "rmsprop")] == OTHER_RATES[("batched", "rmsprop")] == 0.002
    with pytest.raises(ValueError, match="belong to optimizer='adam'"):
        CharRNN.from_params(init_params(5, 4, 0), optimizer="rmsprop", adam_steps=3)


# -- RMSprop against the numpy references ---------------------------------------

@pytest.mark.parametrize("embedding", [0, 5])
@pytest.mark.parametrize("B", [1, 4])
def test_rmsprop_tanh_steps_match_reference(embedding, B):
    """Forty RMSprop steps of the tanh model (one-hot or embedded input, one
    stream or B): params and the mean square follow reference.rmsprop_update."""
    rng = np.random.default_rng(embedding + 10 * B)
    V, H, T, lr = 10, 8, 7, 0.01
    params = init_params(V, H, 3, embedding, "pytorch")
    model = CharRNN.from_params(params, optimizer="rmsprop")
    ref = {n: a.copy() for n, a in params.items()}
    mem = {n: np.zeros_like(a) for n, a in params.items()}
    h = ref_h = np.zeros((H, B))
    for _ in range(40):
        x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
        loss, h = model.train_step(x if B > 1 else x[0], y if B > 1 else y[0], h, lr)
        ref_loss, grads, ref_h = reference.batch_lossFun(id_lists(x), id_lists(y), ref_h, ref)
        reference.rmsprop_update(ref, grads, mem, lr)
        same_loss(loss, ref_loss, T, TRAIN_RTOL)
    assert model.adam_steps == 0 and not model.moment
    for name in ref:
        assert_close(model.params[name], ref[name], TRAIN_RTOL, name)
        assert_close(model.memory[name], mem[name], TRAIN_RTOL, f"memory {name}")


def test_rmsprop_train_loop_equals_reference_loop():
    """CharRNN.train (the loop in the core, many streams) against the
    reference's loop of the same chunks: 60 steps."""
    rng = np.random.default_rng(7)
    V, H, T, B, lr = 12, 10, 6, 3, 0.005
    data = rng.integers(0, V, 3000)
    params = init_params(V, H, 1, 0, "pytorch")
    model = CharRNN.from_params(params, optimizer="rmsprop")
    losses, h, position = model.train(data, 60, T, streams=B, learning_rate=lr)
    ref = {n: a.copy() for n, a in params.items()}
    mem = {n: np.zeros_like(a) for n, a in params.items()}
    parts, ref_h = data[:B * (data.size // B)].reshape(B, -1), np.zeros((H, B))
    for k in range(60):
        x, y = parts[:, k * T:(k + 1) * T], parts[:, k * T + 1:(k + 1) * T + 1]
        loss, grads, ref_h = reference.batch_lossFun(id_lists(x), id_lists(y), ref_h, ref)
        reference.rmsprop_update(ref, grads, mem, lr)
        same_loss(losses[k], loss, T, TRAIN_RTOL)
    assert position == 60 * T
    for name in ref:
        assert_close(model.params[name], ref[name], TRAIN_RTOL, name)
        assert_close(model.memory[name], mem[name], TRAIN_RTOL, f"memory {name}")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("L, B, D", [(1, 1, 0), (2, 3, 0), (2, 2, 4)])
def test_rmsprop_gated_steps_match_reference(cell, L, B, D):
    """Thirty RMSprop steps of every cell, 1 and 2 layers, an embedding:
    params and the mean square follow reference_gated.rmsprop_step."""
    V, H, T, lr = 8, 6, 7, 0.01
    rng = np.random.default_rng(L * 10 + B + D)
    params = R.init_params(cell, V, H, L, 3, D)
    model = CharRNN.from_params(params, optimizer="rmsprop")
    memory = {n: np.zeros_like(a) for n, a in params.items()}
    state = ref_state = None
    for _ in range(30):
        x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
        loss, state = model.train_step(x, y, state, lr)
        ref_loss, grads, ref_state = R.batch_lossFun(cell, L, x, y, ref_state, params)
        R.rmsprop_step(params, memory, grads, lr)
        same_loss(loss, ref_loss, T, TRAIN_RTOL)
    assert model.optimizer == "rmsprop" and model.adam_steps == 0 and not model.moment
    for name in params:
        assert_close(model.params[name], params[name], TRAIN_RTOL, name)
        assert_close(model.memory[name], memory[name], TRAIN_RTOL, f"memory {name}")


def test_rmsprop_decays_the_memory_of_absent_inputs():
    """RMSprop is not sparse: a column of one-hot Wxh whose id is absent from
    the chunk keeps its weights (zero gradient) but its mean square decays
    by alpha (the core's sparse Adagrad paths must not take it)."""
    model = CharRNN(6, 4, seed=1, optimizer="rmsprop", init="pytorch")
    model.train_step([0, 1, 2], [1, 2, 3], None, 0.01)
    w, m = np.array(model.params["Wxh"][:, 0]), np.array(model.memory["Wxh"][:, 0])
    assert np.all(m > 0)
    model.train_step([4, 5, 4], [5, 4, 5], None, 0.01)
    assert np.array_equal(model.params["Wxh"][:, 0], w)
    assert_close(model.memory["Wxh"][:, 0], RMS.alpha * m, 1e-15, "decayed memory")


@pytest.mark.parametrize("cell, L, D", [("rnn", 1, 0), ("rnn", 1, 6), ("lstm", 2, 6),
                                        ("gru", 2, 0), ("rnn", 2, 0)])
def test_rmsprop_float32_follows_float64(cell, L, D):
    """60 steps of the data pass in float32 stay within float32's rounding
    (amplified by training) of the float64 run."""
    rng = np.random.default_rng(4)
    V, H, T, B = 20, 16, 10, 3
    data = rng.integers(0, V, 4000)
    kw = dict(seed=2, optimizer="rmsprop", cell=cell, num_layers=L, embedding_size=D,
              init="pytorch")
    a, b = CharRNN(V, H, **kw), CharRNN(V, H, dtype="float32", **kw)
    la, _, pa = a.train(data, 60, T, streams=B, learning_rate=0.002)
    lb, _, pb = b.train(data, 60, T, streams=B, learning_rate=0.002)
    assert b.dtype == np.float32 and pa == pb
    np.testing.assert_allclose(lb, la, rtol=F32)
    for name in a.params:
        assert_close(b.params[name], a.params[name], F32, name)
        assert_close(b.memory[name], a.memory[name], 10 * F32, f"memory {name}")


# -- against PyTorch --------------------------------------------------------------

@pytest.mark.parametrize("cell, L, D", [("rnn", 2, 0), ("lstm", 2, 4), ("gru", 1, 0)])
def test_rmsprop_equals_torch_optim_rmsprop(cell, L, D):
    """The same weights in PyTorch's nn.RNN / LSTM / GRU (charrnn_ext.formats.torch's
    module, export's names), trained by torch.optim.RMSprop(lr, alpha=0.99,
    eps=1e-8) on the same chunks after the same elementwise clip: equal
    parameters after each of five steps."""
    torch = pytest.importorskip("torch")
    import charrnn_ext.formats.torch as ct
    from charrnn_ext.core.torch_layout import state_dict
    V, H, T, B, lr = 9, 6, 5, 3, 0.01
    rng = np.random.default_rng(11)
    model = CharRNN.from_params(R.init_params(cell, V, H, L, 5, D), optimizer="rmsprop")
    module = ct._module_class()(cell, V, H, L, D, "abcdefghi").double()
    module.load_state_dict({k: torch.tensor(v) for k, v in state_dict(model).items()})
    opt = torch.optim.RMSprop(module.parameters(), lr=lr, alpha=RMS.alpha, eps=RMS.eps)
    for _ in range(5):
        x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
        model.train_step(x, y, None, lr)
        opt.zero_grad()
        logits, _ = module(x)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, V), torch.tensor(y.reshape(-1)), reduction="sum") / B
        loss.backward()
        for p in module.parameters():
            p.grad.clamp_(-5.0, 5.0)
        opt.step()
        theirs = {k: v.detach().numpy() for k, v in module.state_dict().items()}
        for name, ours in state_dict(model).items():
            assert_close(ours, theirs[name], 1e-9, name)


# -- checkpoints -------------------------------------------------------------------

@pytest.mark.parametrize("model", [{}, {"cell": "gru", "init": "pytorch"}])
def test_a_checkpoint_names_rmsprop_and_loads_it_back(tmp_path, model):
    """The file's state names the optimizer; it loads back as RMSprop (not
    Adagrad, whose one slot it shares), the same model bit for bit."""
    ckpt = trained_checkpoint(optimizer="rmsprop", **model)
    path = tmp_path / "rms.npz"
    ckpt.save(path)
    with np.load(path, allow_pickle=False) as npz:
        assert '"optimizer": "rmsprop"' in str(npz["state"])
        assert not any(k.startswith("moment.") for k in npz.files)
    back = load_checkpoint(path)
    assert back.model.optimizer == "rmsprop" and same_model(back.model, ckpt.model)


@pytest.mark.parametrize("optimizer", ["adagrad", "adam"])
def test_a_file_without_the_name_loads_as_before(tmp_path, optimizer):
    """A file of the format before the name was stored (state without
    "optimizer"): Adam if it holds moment.*, else Adagrad."""
    extra = {"init": "pytorch", "embedding_size": 5} if optimizer == "adam" else {}
    ckpt = trained_checkpoint(optimizer=optimizer, **extra)
    ckpt.save(tmp_path / "new.npz")
    old = rewrite_archive(tmp_path / "new.npz", tmp_path / "old.npz",
                          edit_state={"optimizer": None})
    with np.load(old, allow_pickle=False) as npz:
        assert '"optimizer"' not in str(npz["state"])
    back = load_checkpoint(old)
    assert back.model.optimizer == optimizer and same_model(back.model, ckpt.model)


def test_a_named_optimizer_must_fit_the_file(tmp_path):
    """An unknown name, or a name whose slots are not the file's, is refused
    in one line."""
    trained_checkpoint(optimizer="rmsprop").save(tmp_path / "rms.npz")
    trained_checkpoint(optimizer="adam").save(tmp_path / "adam.npz")
    assert_load_refused(rewrite_archive(tmp_path / "rms.npz", tmp_path / "a.npz",
                                        edit_state={"optimizer": "sgd"}), "'sgd'", "rmsprop")
    assert_load_refused(rewrite_archive(tmp_path / "adam.npz", tmp_path / "b.npz",
                                        edit_state={"optimizer": "rmsprop"}), "rmsprop", "moment")
    assert_load_refused(rewrite_archive(tmp_path / "rms.npz", tmp_path / "c.npz",
                                        edit_state={"optimizer": "adam"}), "adam", "moment")
