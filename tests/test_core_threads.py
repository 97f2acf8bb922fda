"""The core's threads (charrnn_ext.set_num_threads): the output layer of a
large model is cut into stripes that run on several OpenMP threads. The cut
depends only on the model's size, so every result must be the same bit for
bit whatever the number of threads -- and the same as the numpy reference
within the parity bounds (test_core_parity runs striped shapes too). Small
models pipeline their steps on two threads: the same bits again.

Also here: separate models trained in Python threads at once (the core
releases the GIL), the thread settings (set_num_threads, set_blas_threads,
CHARRNN_EXT_NUM_THREADS, OpenMP's own), and the choice of one or two threads
per call. One model shared by several threads: test_model_misuse."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import charrnn_ext
from charrnn_ext import CharRNN, PARAM_NAMES, Vocab
from charrnn_ext.core import reference
from charrnn_ext.core._dispatch import core
from charrnn_ext.defaults import SEQ_LENGTH

from conftest import (assert_close, copy_dict, data_pass, english_like_text, random_chunk,
                      random_model, random_params)

THREAD_COUNTS = (1, 2, 3, 8)


def test_stripe_count_depends_on_size_only():
    assert core.stripe_count(65, 100) == 1          # SMALL: no threads at all
    assert core.stripe_count(300, 440) == 2
    assert core.stripe_count(3150, 200) == 4        # the seed's setting
    assert core.stripe_count(1, 10**6) == 1         # never more stripes than row blocks


def run_everything(V, H, T, n_threads, steps=4, seed=0):
    """Train a few steps, then loss_and_grads, loss, advance and sample with
    n_threads threads; returns every result."""
    charrnn_ext.set_num_threads(n_threads)
    assert charrnn_ext.get_num_threads() == (n_threads if core.has_openmp() else 1)
    rng = np.random.default_rng(seed)
    params = random_params(V, H, rng, 0.1)
    model = CharRNN.from_params(params)
    h = np.zeros((H, 1))
    out = {"losses": []}
    for _ in range(steps):
        inputs, targets = random_chunk(V, T, rng)
        loss, h = model.train_step(inputs, targets, h)
        out["losses"].append(loss)
    inputs, targets = random_chunk(V, T, rng)
    out["lg_loss"], out["grads"], out["lg_h"] = model.loss_and_grads(inputs, targets, h)
    out["loss"] = model.loss(*random_chunk(V, 3 * T, rng), h)
    out["advance"] = model.advance(random_chunk(V, T, rng)[0], h)
    out["sample"] = model.sample(h, 0, 50, rng=7)
    out["greedy"] = model.sample(h, 1, 20, temperature=0)
    out["params"] = copy_dict(model.params)
    out["memory"] = copy_dict(model.memory)
    out["h"] = h
    return out


@pytest.mark.parametrize("V,H,T", [(517, 256, 12), (300, 440, 9), (65, 100, 25)])
def test_results_identical_for_any_thread_count(V, H, T, restore_threads):
    runs = [run_everything(V, H, T, n) for n in THREAD_COUNTS]
    first = runs[0]
    for n, run in zip(THREAD_COUNTS[1:], runs[1:]):
        assert run["losses"] == first["losses"], n
        for key in ("lg_loss", "loss"):
            assert run[key] == first[key], (n, key)
        for key in ("lg_h", "advance", "h", "sample", "greedy"):
            assert np.array_equal(run[key], first[key]), (n, key)
        for name in PARAM_NAMES:
            for key in ("grads", "params", "memory"):
                assert np.array_equal(run[key][name], first[key][name]), (n, key, name)


def run_batched(V, H, T, B, n_threads):
    charrnn_ext.set_num_threads(n_threads)
    rng = np.random.default_rng(0)
    model = CharRNN.from_params(random_params(V, H, rng, 0.1))
    h = np.zeros((H, B))
    out = {"losses": []}
    for _ in range(3):
        loss, h = model.train_step(rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T)), h)
        out["losses"].append(loss)
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    out["lg_loss"], out["grads"], out["lg_h"] = model.loss_and_grads(x, y, h)
    out["loss"], out["loss_h"] = model.loss(rng.integers(0, V, (B, 3 * T)),
                                            rng.integers(0, V, (B, 3 * T)), h, return_hidden=True)
    out["params"], out["memory"] = copy_dict(model.params), copy_dict(model.memory)
    out["h"] = h
    return out


@pytest.mark.parametrize("V,H,T,B", [(517, 256, 12, 3), (300, 440, 9, 9), (29, 512, 6, 32),
                                     (29, 512, 6, 4)])
def test_batch_results_identical_for_any_thread_count(V, H, T, B, restore_threads):
    """A striped output layer (the first two); at H = 512 the recurrence's
    dgemm and dWhh in pieces (32 streams), dWhh alone in pieces (4 streams)."""
    assert core.stripe_count(V, H) > 1 or H >= 363
    runs = {n: run_batched(V, H, T, B, n) for n in (1, 2, 3, 8)}
    first = runs[1]
    for n, run in runs.items():
        assert run["losses"] == first["losses"], n
        assert run["lg_loss"] == first["lg_loss"] and run["loss"] == first["loss"], n
        for key in ("lg_h", "loss_h", "h"):
            assert np.array_equal(run[key], first[key]), (n, key)
        for name in PARAM_NAMES:
            for key in ("grads", "params", "memory"):
                assert np.array_equal(run[key][name], first[key][name]), (n, key, name)


@settings(max_examples=30, deadline=None)
@given(V=st.integers(2, 70), H=st.integers(1, 40), T=st.integers(1, 13), B=st.integers(1, 15),
       steps=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_pipelined_steps_are_the_same_on_one_and_two_threads(V, H, T, B, steps, seed):
    """Small models run their steps pipelined (the recurrence on one thread,
    the output layer on the other; groups of time steps, a chunk shorter or
    longer than a group, any B below the dgemm threshold): bit-identical to
    the same steps on one thread, through train and train_step."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, B * (T + 1) + int(rng.integers(0, 60))).astype(np.int32)
    old = charrnn_ext.get_num_threads()
    out = {}
    try:
        for threads in (1, 2):
            charrnn_ext.set_num_threads(threads)
            m = CharRNN(V, H, seed=seed)
            losses, h, position = m.train(ids, steps, T, streams=B)
            x = rng.integers(0, V, (B, T)) if threads == 1 else out[1][-1]
            step = m.train_step(x, np.roll(x, 1, axis=1), np.zeros((H, B)))
            out[threads] = (losses, h, position, step[0], step[1],
                            *(m.params[n] for n in PARAM_NAMES),
                            *(m.memory[n] for n in PARAM_NAMES), x)
    finally:
        charrnn_ext.set_num_threads(old)
    for a, b in zip(out[1], out[2]):
        assert np.array_equal(a, b)


def test_striped_training_matches_reference(restore_threads):
    """Several fused steps on a striped model with 2 threads, teacher-forced
    against the reference (each step from the reference's own state)."""
    charrnn_ext.set_num_threads(2)
    V, H, T = 517, 256, 16
    rng = np.random.default_rng(3)
    params = random_params(V, H, rng, 0.1)
    memory = {n: np.zeros_like(p) for n, p in params.items()}
    h = np.zeros((H, 1))
    for step in range(5):
        inputs, targets = random_chunk(V, T, rng)
        if step == 2:
            targets[:] = 0          # every target in the first stripe
        model = CharRNN.from_params(params, memory)
        loss, h_core = model.train_step(inputs, targets, h)
        ref_loss, h_ref = reference.train_step(list(inputs), list(targets), h, params, memory, 0.1)
        assert abs(loss - ref_loss) <= 1e-10 * abs(ref_loss), step
        assert_close(h_core, h_ref, 1e-10, "h")
        for name in PARAM_NAMES:
            assert_close(model.params[name], params[name], 1e-9, f"param {name}")
            assert_close(model.memory[name], memory[name], 1e-9, f"memory {name}")
        h = h_ref


def test_two_models_in_two_threads_with_core_threads(restore_threads):
    """Python threads and the core's OpenMP threads together: two striped
    models trained at once give the same results as one after the other."""
    charrnn_ext.set_num_threads(2)
    V, H, T = 517, 256, 10
    rng = np.random.default_rng(5)
    params = random_params(V, H, rng, 0.1)
    chunks = [random_chunk(V, T, rng) for _ in range(6)]

    def train(model, out):
        h = np.zeros((H, 1))
        for x, y in chunks:
            loss, h = model.train_step(x, y, h)
            out.append(loss)

    serial = []
    train(CharRNN.from_params(params), serial)
    results = [[], []]
    threads = [threading.Thread(target=train, args=(CharRNN.from_params(params), r)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] == serial and results[1] == serial


def test_separate_models_train_concurrently():
    """Separate models in separate threads (the core releases the GIL) give
    exactly the results of training them one after the other."""
    text = english_like_text(3000, seed=7)
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    V, H = len(vocab), 48

    def run(seed, results):
        model = CharRNN(V, H, seed=seed)
        h = np.zeros((H, 1))
        losses = []
        for inputs, targets, reset in data_pass(ids, SEQ_LENGTH, 60):
            if reset:
                h = np.zeros((H, 1))
            loss, h = model.train_step(inputs, targets, h)
            losses.append(loss)
        results[seed] = (losses, model.params)

    sequential, concurrent = {}, {}
    for seed in range(4):
        run(seed, sequential)
    threads = [threading.Thread(target=run, args=(seed, concurrent)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed in range(4):
        assert concurrent[seed][0] == sequential[seed][0]
        for n in PARAM_NAMES:
            np.testing.assert_array_equal(concurrent[seed][1][n], sequential[seed][1][n])


# ---------------------------------------------------------------------------
# the thread settings
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2", None])
def test_set_num_threads_rejects_bad_values(bad, restore_threads):
    with pytest.raises(ValueError, match="positive integer"):
        charrnn_ext.set_num_threads(bad)


def test_set_num_threads_accepts_numpy_and_huge_integers(restore_threads):
    charrnn_ext.set_num_threads(np.int64(1))
    assert charrnn_ext.get_num_threads() == 1
    charrnn_ext.set_num_threads(2**40)            # capped, no OverflowError
    assert charrnn_ext.get_num_threads() == (1024 if core.has_openmp() else 1)


def test_multithreaded_blas_puts_the_core_on_one_thread(restore_threads):
    """OpenBLAS threads inside the core's threads multiply (measured 10x
    slower): while the core's BLAS has several threads, the core uses one."""
    if not core.has_openmp():
        pytest.skip("a build without OpenMP always uses one thread")
    charrnn_ext.set_num_threads(2)
    assert charrnn_ext.get_num_threads() == 2
    try:
        charrnn_ext.set_blas_threads(2)
        assert charrnn_ext.get_num_threads() == 1
    finally:
        charrnn_ext.set_blas_threads(1)
    assert charrnn_ext.get_num_threads() == 2


def test_set_blas_threads_controls_the_cores_blas():
    """The core's BLAS runs on one thread by default; set_blas_threads changes
    it (and rejects nonsense); results do not depend on it."""
    from charrnn_ext.core._dispatch import _core_blas_controllers

    libs = _core_blas_controllers()
    assert libs and all(lib.num_threads == 1 for lib in libs)
    model = random_model(50, 40, 9)
    x, y = np.random.default_rng(9).integers(0, 50, size=(2, 30))
    expected = model.loss_and_grads(x, y, None)
    try:
        charrnn_ext.set_blas_threads(2)
        assert all(lib.num_threads == 2 for lib in _core_blas_controllers())
        got = model.loss_and_grads(x, y, None)
    finally:
        charrnn_ext.set_blas_threads(1)
    assert got[0] == expected[0]
    for name in got[1]:
        np.testing.assert_allclose(got[1][name], expected[1][name], rtol=1e-12, atol=1e-15)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            charrnn_ext.set_blas_threads(bad)


def test_openmp_limit_of_the_calling_thread_caps_the_core(restore_threads):
    """threadpoolctl's limits on OpenMP (or on every library) apply to the
    core too; results stay the same."""
    from threadpoolctl import threadpool_limits

    if not core.has_openmp():
        pytest.skip("a build without OpenMP always uses one thread")
    charrnn_ext.set_num_threads(2)
    V, H, T = 517, 256, 10
    rng = np.random.default_rng(11)
    params = random_params(V, H, rng, 0.1)
    x, y = random_chunk(V, T, rng)
    model = CharRNN.from_params(params)
    assert model._workspace.threads() == 2
    free = model.train_step(x, y, None)[0]
    with threadpool_limits(limits=1, user_api="openmp"):
        assert model._workspace.threads() == 1
        limited = CharRNN.from_params(params).train_step(x, y, None)[0]
    with threadpool_limits(limits=1):
        assert model._workspace.threads() == 1
    assert model._workspace.threads() == 2
    assert limited == free
    small = CharRNN(65, 100)       # pipelined steps: the recurrence and the output layer
    assert small._workspace.threads() == 2
    with threadpool_limits(limits=1, user_api="openmp"):
        assert small._workspace.threads() == 1
    charrnn_ext.set_num_threads(1)
    assert small._workspace.threads() == 1


FORK_SCRIPT = """
import os, sys, numpy as np, charrnn_ext
from charrnn_ext import CharRNN
charrnn_ext.set_num_threads(2)
V, H, T = 517, 256, 10
rng = np.random.default_rng(0)
ids = rng.integers(0, V, 4 * T + 1).astype(np.int32)
def train(model):
    h = None
    for k in range(4):
        loss, h = model.train_step(ids[k * T:(k + 1) * T], ids[k * T + 1:(k + 1) * T + 1], h)
    return loss
parent = train(CharRNN(V, H, seed=1))          # the parent's OpenMP threads exist now
pid = os.fork()
if pid == 0:
    charrnn_ext.set_num_threads(2)              # asking again must not bring them back
    ok = charrnn_ext.get_num_threads() == 1 and train(CharRNN(V, H, seed=1)) == parent
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status))
print("parent-again", train(CharRNN(V, H, seed=1)) == parent)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_after_threads_does_not_hang(tmp_path):
    """GNU libgomp does not survive fork(): a child that entered a parallel
    region would wait forever. The child runs on one thread (same results)."""
    proc = subprocess.run([sys.executable, "-c", FORK_SCRIPT], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "child 0" in proc.stdout and "parent-again True" in proc.stdout, proc.stdout


@pytest.mark.parametrize("value,expected", [("3", 3), (" 2 ", 2), ("²", None), ("two", None),
                                            ("0", None), ("3000000000", 1024)])
def test_thread_environment_variable_parsing(value, expected, tmp_path):
    code = ("import warnings; warnings.simplefilter('always');"
            "import charrnn_ext; print(charrnn_ext.core._dispatch._state['requested'])")
    env = dict(os.environ, CHARRNN_EXT_NUM_THREADS=value)
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    if expected is None:   # one line, as a command's warnings are (no source line)
        assert int(proc.stdout) >= 1
        assert proc.stderr == (f"charrnn_ext: warning: ignoring CHARRNN_EXT_NUM_THREADS="
                               f"{value.strip()!r}: not a positive integer (using "
                               f"{int(proc.stdout)})\n")
    else:
        assert int(proc.stdout) == expected


def test_default_threads_follow_environment(tmp_path):
    """CHARRNN_EXT_NUM_THREADS sets the default at import; without it the
    default is one thread per usable CPU."""
    code = "import charrnn_ext; print(charrnn_ext.core._dispatch._state['requested'])"
    env = {k: v for k, v in os.environ.items()
           if k not in ("CHARRNN_EXT_NUM_THREADS", "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert int(out) == cpus
    env["CHARRNN_EXT_NUM_THREADS"] = "3"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    assert int(out) == 3
    del env["CHARRNN_EXT_NUM_THREADS"]
    env["OMP_NUM_THREADS"] = "1,1"            # honoured when lower than the CPUs
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    assert int(out) == 1


@pytest.mark.parametrize("user_setting, expected", [
    ({}, "PASSIVE"),                          # ours: waiting threads sleep (busy machines)
    ({"OMP_WAIT_POLICY": "active"}, "ACTIVE"),  # the user's setting wins
])
def test_openmp_threads_wait_passively_unless_told_otherwise(user_setting, expected, tmp_path):
    """The core's OpenMP runtime is loaded with OMP_WAIT_POLICY=PASSIVE (a
    spinning thread on a busy machine kept its CPU from the thread it waited
    for: issue 10), unless the user set how OpenMP waits; the variable is not
    left in the environment. Read back with OpenMP's OMP_DISPLAY_ENV."""
    if not core.has_openmp():
        pytest.skip("a build without OpenMP")
    code = ("import os, charrnn_ext.core._dispatch; "
            "print('left:', os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    env.update(user_setting, OMP_DISPLAY_ENV="true")
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    shown = proc.stdout + proc.stderr
    if "OMP_WAIT_POLICY = " not in shown:
        pytest.skip("this OpenMP runtime does not display its settings")
    assert f"OMP_WAIT_POLICY = '{expected}'" in shown, shown
    assert f"left: {user_setting.get('OMP_WAIT_POLICY')}" in proc.stdout


# ---------------------------------------------------------------------------
# the choice of one or two threads per call
# ---------------------------------------------------------------------------

def test_thread_choice_runs_the_faster_way_and_probes_the_other():
    """charrnn_ext.core._threadchoice._ThreadChoice: both ways measured in turn at first
    (the first call each way not counted), then the faster of the two (a
    way's speed: the best of its last few samples), with a short look at the
    other way after a growing stretch of training (a busy machine can make
    two threads the slower way, and a quiet one the faster again)."""
    from charrnn_ext.core._threadchoice import _ThreadChoice

    choice = _ThreadChoice()
    assert choice.pick(1) == 1                     # nothing to choose
    sample = _ThreadChoice.SAMPLE_SECONDS

    def run(per_step, seconds):
        threads = choice.pick(2)
        steps = max(1, -int(-seconds // per_step[threads]))    # at least `seconds` long
        choice.record(threads, steps * per_step[threads], steps)
        return threads

    quiet = {2: 1e-4, 1: 3e-4}
    # the first call each way (threads starting) is slow and does not count
    slow = {2: 1.0, 1: 1.0}
    assert run(slow, sample) == 2
    assert run(quiet, sample) == 2
    assert run(slow, sample) == 1
    ways = [run(quiet, sample) for _ in range(3)]
    assert sorted(ways) == [1, 1, 2]                # both measured in turn
    assert choice.seconds == {2: 1e-4, 1: 3e-4}
    ways = [run(quiet, 0.1) for _ in range(40)]
    assert ways.count(2) >= 34 and ways[-8:].count(2) >= 7   # looks at 1 thread grow rarer
    # one slow sample is noise: the faster way stays
    run({2: 1e-3, 1: 3e-4}, sample)
    assert choice.pick(2) == 2
    # the machine gets busy: two threads now take 1 ms a step
    busy = {2: 1e-3, 1: 3e-4}
    for _ in range(12):
        run(busy, 0.1)
    assert choice.pick(2) == 1                      # noticed
    assert choice.short_call(1000) == 1000          # not probing: whole calls
    # and quiet again: the next look at two threads brings them back
    for _ in range(30):
        run(quiet, 0.1)
    assert choice.pick(2) == 2
    # a probe runs a short call
    while not choice.probing:
        run(quiet, 0.1)
        choice.pick(2)
    assert choice.mode == 1 and choice.short_call(1000) < 1000
    # two threads only when clearly faster (MARGIN): else one leaves a CPU free
    choice.reset(2)
    for _ in range(10):
        run({2: 0.97e-4, 1: 1e-4}, sample)
    assert choice.pick(2) == 1
    choice.reset(2)
    for _ in range(10):
        run({2: 0.8e-4, 1: 1e-4}, sample)
    assert choice.pick(2) == 2
    # other thread settings (set_num_threads) start the measuring anew
    assert choice.pick(4) == 4 and choice.seconds == {}


def test_models_train_with_the_thread_choice_and_stay_bit_identical(restore_threads,
                                                                   monkeypatch):
    """Whatever the choice picks call by call, a model's training is the same
    as on one thread throughout."""
    if not core.has_openmp():
        pytest.skip("a build without OpenMP always uses one thread")
    V, H, T = 30, 24, 9
    ids = (np.arange(3000) * 13 % V).astype(np.int32)
    charrnn_ext.set_num_threads(1)
    ref = CharRNN(V, H, seed=3)
    expected = ref.train(ids, 400, T)
    charrnn_ext.set_num_threads(2)
    from charrnn_ext.core._threadchoice import _ThreadChoice

    monkeypatch.setattr(_ThreadChoice, "SAMPLE_SECONDS", 0.0)       # decide after every call
    monkeypatch.setattr(_ThreadChoice, "FIRST_PROBE_SECONDS", 0.0)  # and probe all the time
    monkeypatch.setattr(_ThreadChoice, "PROBE_SECONDS", 0.0)
    m = CharRNN(V, H, seed=3)
    got, h, position = m.train(ids, 100, T)
    for _ in range(30):
        more, h, position = m.train(ids, 10, T, hprev=h, position=position)
        got = np.concatenate([got, more])
    assert np.array_equal(got, expected[0]) and np.array_equal(h, expected[1])
    assert position == expected[2]
    assert set(m._threads[T, 1].seconds) == {1, 2}
    for n in PARAM_NAMES:
        assert np.array_equal(m.params[n], ref.params[n])
