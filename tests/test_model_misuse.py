"""Misuse that must never crash or corrupt: threads sharing a model or
changing the caller's arrays under a call, history-dependent results, copies,
and the arrays a model hands out (params, memory and grads are views of the
core's own arrays: values change in place, nothing else reaches the core).

Several of these crashed the interpreter (segfault) before the fixes they
guard, so a regression shows up as a failed (dead) test process; the worst
run in a subprocess."""
import copy
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from charrnn_ext import CharRNN

from conftest import ENV, random_model, same_model


# ---------------------------------------------------------------------------
# other threads
# ---------------------------------------------------------------------------

def test_ids_changed_by_another_thread_during_a_call():
    """The core reads ids with the GIL released and no bounds checks: the
    model must hand it a private, checked copy, so a thread that writes
    out-of-range ids into the caller's array cannot make it read or write
    out of bounds."""
    V, H, T = 50, 64, 100_000
    model = CharRNN(V, H, seed=0)
    x = np.zeros(T, np.int32)
    y = np.zeros(T, np.int32)
    expected = model.loss(x.copy(), y.copy(), None)
    started = threading.Event()

    def corrupt():
        started.wait()
        for _ in range(200):
            x[:] = 2_000_000_000
            y[:] = -2_000_000_000

    thread = threading.Thread(target=corrupt)
    thread.start()
    started.set()
    try:
        loss = model.loss(x, y, None)
    except ValueError:
        loss = None  # the ids were already bad when checked: also fine
    thread.join()
    assert loss is None or loss == expected


def test_data_resized_or_changed_by_another_thread_is_never_read(tmp_path):
    """train reads the ids (its check before the first step, each core call's
    private copy) with the GIL held: another thread resizing the array
    (numpy frees the memory even while a view of it exists) or rewriting it
    meanwhile can make a call fail with a clear error, never crash it. A
    30M-id array, so that freed memory goes back to the system and reading
    it would fault; steps across the wrap and in the middle. In a subprocess,
    so that a crash would show."""
    code = """
import threading, time, numpy as np
from charrnn_ext import CharRNN
N = 30_000_000
ids = (np.arange(N, dtype=np.int32) % 23)
m = CharRNN(23, 16, seed=0)
stop = False
def meddle():
    while not stop:
        ids.resize(1000, refcheck=False)
        ids.resize(N, refcheck=False)
        ids[::1000] = 22
t = threading.Thread(target=meddle); t.start()
outcomes = set()
deadline = time.time() + 4
while time.time() < deadline:
    for position in (N - 40, 12345):
        try:
            m.train(ids, 3, 25, position=position)
            outcomes.add("ok")
        except ValueError as exc:
            outcomes.add(str(exc)[:30])
stop = True; t.join()
print("survived", sorted(outcomes))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "survived" in proc.stdout and "ok" in proc.stdout, proc.stdout


def test_one_model_shared_by_threads_is_serialised():
    """Calls on one model from several threads (different chunk lengths, so
    the work buffers grow under them) give the results of some sequential
    order and never crash."""
    V, H = 40, 32
    model = random_model(V, H, 1)
    rng = np.random.default_rng(2)
    chunks = [rng.integers(0, V, size=(2, T)).astype(np.int32) for T in (5, 300, 17, 900, 64)]
    errors = []

    def work(k):
        try:
            for i in range(20):
                x, y = chunks[(k + i) % len(chunks)]
                loss, h = model.train_step(x, y, None, learning_rate=1e-3)
                assert np.isfinite(loss) and h.shape == (H, 1)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(np.all(np.isfinite(a)) for a in model.params.values())


def test_train_releases_the_gil_and_serialises_calls_on_one_model():
    """Two threads training one model: each call of train runs whole, one
    after the other (the result is one of the two orders)."""
    V, H, T = 13, 10, 5
    ids = (np.arange(400) * 7 % V).astype(np.int32)
    orders = []
    for first, second in ((0, 1), (1, 0)):
        m = CharRNN(V, H, seed=2)
        m.train(ids, 300, T, position=100 * first)
        m.train(ids, 300, T, position=100 * second)
        orders.append(m)
    m = CharRNN(V, H, seed=2)
    results = {}

    def run(k):
        results[k] = m.train(ids, 300, T, position=100 * k)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.isfinite(r[0]).all() and r[0].size == 300 for r in results.values())
    assert any(same_model(m, o) for o in orders)


def test_sampling_from_threads_equals_sequential_sampling():
    V, H = 60, 48
    model = random_model(V, H, 3)
    h = np.random.default_rng(4).standard_normal(H) * 0.5
    expected = [model.sample(h, 7, 300, temperature=0.9, rng=seed) for seed in range(8)]
    got = [None] * 8

    def work(seed):
        got[seed] = model.sample(h, 7, 300, temperature=0.9, rng=seed)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# state: buffers, copies, the arrays handed out
# ---------------------------------------------------------------------------

def test_loss_does_not_depend_on_buffer_history():
    """The forward-only loss of a long sequence is computed in fixed blocks:
    the same model state gives the same bits whatever ran before."""
    V, H = 30, 20
    rng = np.random.default_rng(5)
    x, y = rng.integers(0, V, size=(2, 1000)).astype(np.int32)
    fresh = random_model(V, H, 6)
    used = fresh.copy()
    used.loss_and_grads(x[:300], y[:300], None)   # grows the work buffers to 300
    assert fresh.loss(x, y, None) == used.loss(x, y, None)


def test_copy_and_deepcopy_are_independent():
    model = random_model(10, 8, 7)
    for clone in (model.copy(), copy.copy(model), copy.deepcopy(model)):
        assert clone is not model
        for name in model.params:
            np.testing.assert_array_equal(clone.params[name], model.params[name])
            assert not np.shares_memory(clone.params[name], model.params[name])
        clone.train_step([1, 2, 3], [2, 3, 4], None)
        assert not np.array_equal(clone.params["Why"], model.params["Why"])


def test_params_cannot_be_rebound():
    """The core holds the arrays themselves: entries change in place only."""
    model = CharRNN(5, 4, seed=0)
    with pytest.raises(TypeError):
        model.params["Whh"] = np.zeros((4, 4))
    model.params["Whh"][...] = 0.0       # in place is fine
    assert not model.params["Whh"].any()


METADATA_ATTACKS = textwrap.dedent("""
    import numpy as np
    from charrnn_ext import CharRNN

    def attempt(what, f):
        try:
            f()
        except (AttributeError, TypeError, ValueError) as exc:
            print(what, "refused", type(exc).__name__)
        else:
            print(what, "done")

    m = CharRNN(2, 64, seed=0)
    m.params["Why"].shape = (64, 2)          # changes a view only
    m.memory["Whh"].shape = (16, 256)
    m.grads["by"].shape = (1, 2)
    print("sizes", m.vocab_size, m.hidden_size, m.params["Why"].shape)
    ids = np.arange(50) % 60
    attempt("ids beyond the vocabulary", lambda: m.train_step(ids, ids, None))
    attempt("resize a view", lambda: m.params["Why"].resize((64, 64), refcheck=False))
    attempt("resize its base", lambda: m.params["Why"].base.resize(10**6, refcheck=False))
    attempt("rebind params", lambda: setattr(m, "params", {}))
    attempt("rebind memory", lambda: setattr(m, "memory", {}))
    attempt("rebind grads", lambda: setattr(m, "grads", {}))
    def replace():
        m.params["Why"] = np.zeros((64, 2))
    attempt("replace an entry", replace)
    for _ in range(3):
        loss, h = m.train_step([0, 1, 1, 0], [1, 1, 0, 0], None)
    print("loss", 0 < loss < 10)
""")


def test_array_metadata_changes_cannot_reach_the_core():
    """m.params["Why"].shape = ... (or rebinding m.params) made the model
    validate ids against the wrong sizes: negative losses, then heap
    corruption. Run in a subprocess: before the fix it crashed."""
    proc = subprocess.run([sys.executable, "-c", METADATA_ATTACKS], env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == [
        "sizes 2 64 (2, 64)",
        "ids beyond the vocabulary refused ValueError",
        "resize a view refused ValueError",
        "resize its base refused ValueError",
        "rebind params refused AttributeError",
        "rebind memory refused AttributeError",
        "rebind grads refused AttributeError",
        "replace an entry refused TypeError",
        "loss True",
    ]


def test_values_change_in_place_through_the_views():
    """The documented behaviour stays: entries can be changed in place."""
    model = CharRNN(4, 3, seed=0)
    model.params["by"][...] = 0.0
    model.params["by"][2, 0] = 50.0
    assert model.sample(None, 0, 5, temperature=0).tolist() == [2] * 5
    assert model.params["by"][2, 0] == 50.0
    view = model.params["Whh"]
    model.train_step([0, 1], [1, 2], None)
    assert np.array_equal(view, model.params["Whh"])  # a view sees the core's updates
    assert not np.shares_memory(model.copy().params["Whh"], view)


@pytest.mark.parametrize("kw", [{}, {"embedding_size": 3}, {"cell": "lstm"},
                                {"cell": "gru", "num_layers": 2, "dtype": "float32"},
                                {"cell": "rnn", "num_layers": 2, "embedding_size": 3}])
def test_grads_can_never_be_made_writable(kw):
    """model.grads of every model are views through a read-only buffer: a view
    whose writeable flag was merely cleared could be set writable again
    (a gated model's could), and the core reads its gradients back."""
    m = CharRNN(7, 5, 1, **kw)
    ids = np.arange(13) % 7
    m.train_step(ids[:-1], ids[1:], None)
    before = {n: np.array(g) for n, g in m.grads.items()}
    for name, g in m.grads.items():
        for view in (g, g.view(), g.T, g.reshape(-1)):
            with pytest.raises(ValueError):
                view.setflags(write=True)
            with pytest.raises(ValueError):
                view[...] = 1.0
    assert all(np.array_equal(before[n], m.grads[n]) for n in before)
    loss, _ = m.train_step(ids[:-1], ids[1:], None)     # and training goes on
    assert np.isfinite(loss)


def test_releasing_the_buffers_under_the_arrays_frees_nothing(tmp_path):
    """The arrays handed out rest on memoryviews of the core's Storage;
    releasing every one of them from Python (then churning the allocator)
    must leave the model training on valid memory. In a subprocess: the bug
    this guards against was a use-after-free (segfault)."""
    code = textwrap.dedent("""
        import numpy as np
        from charrnn_ext import CharRNN
        m = CharRNN(3, 16, seed=1)
        for d in (m.params, m.memory, m.grads):
            for k in d:
                b = d[k]
                while isinstance(b, np.ndarray):
                    b = b.base
                owner = b.obj
                b.release()
                if any(hasattr(owner, verb) for verb in ("resize", "extend", "clear", "close")):
                    raise SystemExit("the owner can be resized or freed")
        junk = [dict(a=i, b=[i] * 3) for i in range(200000)]
        losses = [m.train_step([0, 1, 2], [1, 2, 0], None)[0] for _ in range(300)]
        del junk
        assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses[::50]
        assert np.isfinite(m.params["Whh"]).all()
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (proc.returncode, proc.stderr)
