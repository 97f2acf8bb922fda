"""``python -m charrnn_ext.sweep`` (charrnn-sweep): grids of training runs on
Dask's distributed scheduler.

The runs are tiny (hidden 8-16, seq 12-16, a few hundred iterations on 4,000
characters of generated English-like text). One local cluster of two
single-threaded worker processes (on 127.0.0.1 only, any free port) serves most tests
through --scheduler; the fault test has a cluster of its own (a worker of it
is killed), and the command-line tests start the command's own local cluster
in a subprocess. Every cluster is closed by its test.
"""
import csv
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from charrnn_ext import load_checkpoint
from charrnn_ext.cli import sweep, train  # noqa: E402
from charrnn_ext.core.settings import SETTINGS  # noqa: E402
from conftest import ENV, english_like_text, same_model  # noqa: E402

SWEEP_TEXT = english_like_text(4000, seed=3)
RUN_FLAGS = ["--seq-length", "12", "--iters", "300", "--eval-every", "100"]
RUN_SETTINGS = {"seq_length": 12, "iters": 300, "eval_every": 100}  # the same


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep-text") / "input.txt"
    path.write_text(SWEEP_TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1",
                                  dashboard_address=sweep.LOOPBACK_ANY_PORT) as c:
        yield c


def read_results(directory):
    with open(directory / "results.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def reference_run(text_file, tmp_path, name, args):
    """The run trained directly by charrnn-train's main, as a user would."""
    ckpt = tmp_path / f"ref-{name}.npz"
    with open(os.devnull, "w") as devnull:
        saved, sys.stdout = sys.stdout, devnull
        try:
            code = train.main([str(text_file), "--checkpoint", str(ckpt), "--threads", "1", *args])
        finally:
            sys.stdout = saved
    assert code == 0
    return load_checkpoint(ckpt)


def assert_same_params(a, b, what):
    """Two checkpoints hold the same model (params and memory), hidden state
    and iteration, bit for bit."""
    assert same_model(a.model, b.model), what
    assert np.array_equal(a.hidden, b.hidden), what
    assert a.iteration == b.iteration, what


def exit_status(argv):
    """sweep.main(argv) as the command's exit status (argparse's usage errors
    raise SystemExit, as in charrnn-train)."""
    try:
        return sweep.main(argv)
    except SystemExit as exc:
        return exc.code


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# one case a line: the --grid arguments -> what the one line of error says
BAD_GRIDS = [(grid.split(), message) for grid, message in (case.split(" -> ") for case in """\
hiden_size=10 -> unknown setting 'hiden_size'
temperature=1,2 -> unknown setting 'temperature'
hidden_size=0 -> hidden_size: must be a positive integer
hidden_size=ten -> expected an integer, got 'ten'
learning_rate=0.1,nan -> expected a finite number
val_fraction=1 -> must be in [0, 1)
seed=-1 -> must be an integer in [0, 2**32)
hidden_size= -> an empty value
hidden_size=8,,16 -> an empty value
hidden_size -> expected NAME=V1,V2
=8 -> expected NAME=V1,V2
hidden_size=8,8 -> the value 8 is listed twice
learning_rate=0.1,0.10 -> the value 0.1 is listed twice
hidden_size=8 hidden_size=16 -> names hidden_size twice
optimizer=adam,sgd -> must be one of adagrad, adam, rmsprop, got sgd
recipe=foo -> must be one of auto, min-char-rnn, batched, gru, got foo
embedding_size=-1 -> must be an integer in [0,
init=xavier -> must be one of min-char-rnn, pytorch, got xavier
optimizer=adam,adam -> the value adam is listed twice""".splitlines())] + [
    (["seed=" + ",".join(map(str, range(101))), "hidden_size=" + ",".join(map(str, range(1, 101)))],
     "makes 10,100 runs, more than 10,000"),
]


@pytest.mark.parametrize("grid,message", BAD_GRIDS, ids=[" ".join(g)[:30] for g, _ in BAD_GRIDS])
def test_bad_grids_are_refused_before_any_work(text_file, tmp_path, capsys, grid, message):
    out = tmp_path / "out"
    code = sweep.main([str(text_file), "--grid", *grid, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.splitlines()
    assert len(lines) == 1 and message in lines[0] and "error:" in lines[0], captured.err
    assert captured.out == ""
    assert not out.exists()  # nothing started


@pytest.mark.parametrize("grid,message", [
    (["batch_size=1,100000"], "run B100000: --batch-size 100000 cuts the"),
    (["seq_length=8,10000000"], "training needs at least --seq-length + 1 = 10000001"),
    (["val_fraction=0,0.9999"], "leaving"),
])
def test_runs_that_cannot_train_on_the_text_are_refused_before_any_work(
        text_file, tmp_path, capsys, grid, message):
    """A grid value valid on its own but not for this text (streams shorter
    than a chunk): one line, exit 2, before any run starts."""
    out = tmp_path / "out"
    code = sweep.main([str(text_file), "--grid", *grid, "--out", str(out), "--iters", "5"])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.splitlines()
    assert len(lines) == 1 and message in lines[0], captured.err
    assert not out.exists()


@pytest.mark.parametrize("args,message", [
    ([], "the following arguments are required: --grid"),
    (["--grid"], "expected at least one argument"),
    (["--grid", "iters=10,20", "--iters", "30"], "--iters and --grid iters=... both set iters"),
    (["--grid", "seed=1,2", "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"],
     "--workers is for the local cluster"),
    (["--grid", "seed=1,2", "--scheduler", "http://127.0.0.1:8786"], "unknown address scheme"),
    (["--grid", "seed=1,2", "--scheduler", "127.0.0.1"], "missing port number"),
    (["--grid", "seed=1,2", "--workers", "0"], "must be a positive integer"),
])
def test_bad_options(text_file, tmp_path, capsys, args, message):
    code = exit_status([str(text_file), "--out", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists()


def test_input_named_after_the_grid(text_file, tmp_path, capsys):
    code = exit_status(["--grid", "seed=1,2", str(text_file), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1
    assert f"--grid took {str(text_file)!r}: name the input before --grid" in err


def test_bad_input_and_output(tmp_path, capsys):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") * 100)
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "file").write_text("x")
    good = tmp_path / "good.txt"
    good.write_text(SWEEP_TEXT)
    cases = [
        ([str(tmp_path / "missing.txt")], "missing.txt: no such file"),
        ([str(tmp_path / "empty.txt")], "is empty"),
        ([str(tmp_path)], "is a directory"),
        ([str(tmp_path / "latin1.txt")], "is not valid utf-8 text"),
        ([str(good), "--encoding", "nope"], "unknown --encoding 'nope'"),
        ([str(good), "--out", str(tmp_path / "file")], "exists and is not a directory"),
        ([str(good), "--out", "/proc/sweep"], "cannot write there"),
    ]
    for args, message in cases:
        argv = [*args, "--grid", "seed=1,2"]
        if "--out" not in args:
            argv += ["--out", str(tmp_path / "out")]
        code = sweep.main(argv)
        err = capsys.readouterr().err
        assert code == 2 and len(err.splitlines()) == 1 and message in err, (args, err)
    assert not (tmp_path / "out").exists()


def test_unreachable_scheduler_is_one_line_after_the_timeout(text_file, tmp_path, capsys):
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    code = sweep.main([str(text_file), "--grid", "seed=1,2", "--out", str(tmp_path / "out"),
                       "--scheduler", f"tcp://127.0.0.1:{port}", "--timeout", "1.5", *RUN_FLAGS])
    took = time.monotonic() - t0
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port} (" in err
    assert took < 10, took  # Dask retries the connection until the timeout, then gives up
    assert not (tmp_path / "out").exists()


def test_a_peer_that_is_not_a_scheduler_is_one_line_after_the_timeout(text_file, tmp_path,
                                                                       capsys):
    """A service that accepts the connection and never answers like Dask (a
    web server on the wrong port) must not keep the sweep waiting."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    port = server.getsockname()[1]
    try:
        t0 = time.monotonic()
        code = sweep.main([str(text_file), "--grid", "seed=1,2", "--out", str(tmp_path / "out"),
                           "--scheduler", f"tcp://127.0.0.1:{port}", "--timeout", "1", *RUN_FLAGS])
        took = time.monotonic() - t0
    finally:
        server.close()
        for conn in held:
            conn.close()
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in err
    assert took < 15, took


def test_without_dask_it_says_what_to_install(text_file, tmp_path):
    code = ("import sys; sys.modules['distributed'] = None; sys.argv[0] = 'charrnn-sweep'; "
            "from charrnn_ext.cli.sweep import main; "
            f"sys.exit(main([{str(text_file)!r}, '--grid', 'seed=1,2', '--out', 'out']))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env=ENV, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == ("charrnn-sweep: error: needs Dask's distributed scheduler, which is "
                           "not installed (pip install 'charrnn_ext[sweep]')\n")
    assert not (tmp_path / "out").exists()
    # --help works without it
    code = code.replace("[" + repr(str(text_file)), "['--help', " + repr(str(text_file)))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env=ENV, timeout=60)
    assert proc.returncode == 0 and "--grid" in proc.stdout and "Dask" in proc.stdout


# ---------------------------------------------------------------------------
# sweeps on a cluster
# ---------------------------------------------------------------------------

def test_a_run_on_a_worker_is_charrnn_train(cluster, text_file, tmp_path):
    """train_one on a worker thread: exit 0, the checkpoint and best model
    equal charrnn-train's, its output kept (not on the worker's stdout), the
    worker's signal handlers untouched (a run installs none)."""
    args = ["--hidden-size", "8", *RUN_FLAGS, "--seed", "5"]
    with distributed.Client(cluster, set_as_default=False) as client:
        def handlers():
            return [str(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM)]

        before = client.run(handlers)
        cfg = {**{k: s.default for k, s in SETTINGS.items() if k in sweep.SWEEPABLE},
               "hidden_size": 8, "seed": 5, **RUN_SETTINGS}
        res = client.submit(sweep.train_one, SWEEP_TEXT, "h8", cfg, pure=False).result()
        assert client.run(handlers) == before
    assert res["code"] == 0 and res["main_thread"] is False
    assert "data has 4000 characters" in res["log"] and "saving to h8.npz" in res["log"]
    assert "/tmp" not in res["log"]  # no temporary names
    ref = reference_run(text_file, tmp_path, "h8", args)
    path = tmp_path / "h8.npz"
    path.write_bytes(res["checkpoint"])
    got = load_checkpoint(path)
    assert_same_params(got, ref, "checkpoint")
    (tmp_path / "h8.best.npz").write_bytes(res["best"])
    assert_same_params(load_checkpoint(tmp_path / "h8.best.npz"),
                       load_checkpoint(tmp_path / "ref-h8.best.npz"), "best model")
    assert res["val_bpc"] == ref.history["val_bpc"][-1]
    assert res["best_val_bpc"] == ref.best_val_bpc and res["iterations"] == 300


def test_sweep_results_resume_and_extension(cluster, text_file, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [str(text_file), "--grid", "hidden_size=8,16", "learning_rate=0.1,0.05",
            "--out", str(out), "--scheduler", cluster.scheduler_address, *RUN_FLAGS]
    assert sweep.main(argv) == 0
    stdout = capsys.readouterr().out
    names = ["h8-lr0.1", "h8-lr0.05", "h16-lr0.1", "h16-lr0.05"]
    rows = read_results(out)
    assert sorted(r["run"] for r in rows) == sorted(names)
    vals = [float(r["val_bpc"]) for r in rows]
    assert vals == sorted(vals)  # best first
    for row in rows:
        name = row["run"]
        ck = load_checkpoint(out / f"{name}.npz")
        assert (int(row["hidden_size"]), float(row["learning_rate"])) == \
            (ck.model.hidden_size, ck.hyperparameters["learning_rate"])
        assert int(row["seq_length"]) == 12 and int(row["iters"]) == 300 == ck.iteration
        assert float(row["val_bpc"]) == ck.history["val_bpc"][-1]
        assert float(row["train_bpc"]) == ck.history["train_bpc"][-1]
        assert float(row["best_val_bpc"]) == ck.best_val_bpc
        assert int(row["best_iteration"]) == ck.best_iteration
        assert float(row["steps_per_s"]) > 0 and float(row["wall_s"]) > 0
        best = load_checkpoint(out / f"{name}.best.npz")
        assert best.iteration == ck.best_iteration
        assert "iter 200, loss" in (out / f"{name}.log").read_text()
        assert not list(out.glob(".*.tmp"))
    # each run is the one charrnn-train makes with the same settings
    ref = reference_run(text_file, tmp_path, "h16-lr0.05",
                        ["--hidden-size", "16", "--learning-rate", "0.05", *RUN_FLAGS])
    assert_same_params(load_checkpoint(out / "h16-lr0.05.npz"), ref, "h16-lr0.05")
    # the table: best run first
    table = stdout[stdout.index("best first:"):].splitlines()[3:]
    assert [line.split()[0] for line in table] == [r["run"] for r in rows]

    # rerunning skips every finished run: nothing is trained (the scheduler
    # given is not even contacted) and no file changes
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    idle = argv[:argv.index("--scheduler") + 1] + [f"tcp://127.0.0.1:{free_port()}"] + RUN_FLAGS
    assert sweep.main(idle) == 0
    assert "4 already done there" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps

    # an extended grid trains only the new runs
    wider = list(argv)
    wider[wider.index("hidden_size=8,16")] = "hidden_size=8,16,12"
    assert sweep.main(wider) == 0
    stdout = capsys.readouterr().out
    assert "4 already done there" in stdout and "training 2 runs" in stdout
    assert len(read_results(out)) == 6
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name in stamps
            and p.name != "results.csv"} == {k: v for k, v in stamps.items() if k != "results.csv"}

    # the same names with other settings are refused, before any work
    other = [a if a != "300" else "400" for a in argv]
    assert sweep.main(other) == 2
    err = capsys.readouterr().err
    assert "with iters=300, this sweep asks for iters=400; use another --out" in err
    (tmp_path / "other.txt").write_text(SWEEP_TEXT[::-1])
    assert sweep.main([str(tmp_path / "other.txt"), *argv[1:]]) == 2
    assert "trained on another text" in capsys.readouterr().err


def test_a_sweep_over_optimizers(cluster, text_file, tmp_path, capsys):
    """--grid optimizer=adagrad,adam with the new settings as flags: runs
    named after the optimizer, each the model charrnn-train makes with the
    same flags (Adam's moments and step count, the embedding), results.csv
    records the settings."""
    out = tmp_path / "out"
    flags = ["--batch-size", "2", "--hidden-size", "8", "--embedding-size", "4", *RUN_FLAGS]
    assert sweep.main([str(text_file), "--grid", "optimizer=adagrad,adam", "--out", str(out),
                       "--scheduler", cluster.scheduler_address, *flags]) == 0
    assert "optadam" in capsys.readouterr().out
    rows = {r["run"]: r for r in read_results(out)}
    assert set(rows) == {"optadagrad", "optadam"}
    for name, opt, lr in (("optadagrad", "adagrad", "0.02"), ("optadam", "adam", "0.002")):
        row = rows[name]
        assert (row["optimizer"], row["learning_rate"], row["recipe"], row["embedding_size"],
                row["init"], row["batch_size"]) == (opt, lr, "batched", "4", "pytorch", "2")
        ck = load_checkpoint(out / f"{name}.npz")
        assert (ck.model.optimizer, ck.model.embedding_size) == (opt, 4)
        assert ck.model.adam_steps == (300 if opt == "adam" else 0)
        assert f"{opt.capitalize()} learning rate {lr}" in (out / f"{name}.log").read_text()
    ref = reference_run(text_file, tmp_path, "optadam", ["--optimizer", "adam", *flags])
    assert_same_params(load_checkpoint(out / "optadam.npz"), ref, "optadam")


def test_a_sweep_over_cells_in_float32(cluster, text_file, tmp_path, capsys):
    """--grid cell=lstm,gru with two layers, dropout and float32 on the Dask
    workers: each run is the model charrnn-train makes with the same flags,
    bit for bit (dropout's draws included), and results.csv records the cell."""
    out = tmp_path / "out"
    flags = ["--batch-size", "2", "--hidden-size", "8", "--num-layers", "2", "--dropout", "0.2",
             "--dtype", "float32", *RUN_FLAGS]
    assert sweep.main([str(text_file), "--grid", "cell=lstm,gru", "--out", str(out),
                       "--scheduler", cluster.scheduler_address, *flags]) == 0, \
        capsys.readouterr().err
    rows = {r["cell"]: r for r in read_results(out)}
    assert set(rows) == {"lstm", "gru"}
    for cell, row in rows.items():
        assert (row["num_layers"], row["dtype"]) == ("2", "float32")
        ck = load_checkpoint(out / f"{row['run']}.npz")
        assert (ck.model.cell, ck.model.num_layers, ck.model.dtype) == (cell, 2, np.float32)
        ref = reference_run(text_file, tmp_path, row["run"], ["--cell", cell, *flags])
        assert_same_params(ck, ref, row["run"])


def test_the_text_goes_to_the_workers_once(cluster, text_file, tmp_path, capsys, monkeypatch):
    """One scatter of the text's bytes (to every worker); each run's task
    gets a reference to it, not a copy."""
    scattered, submitted = [], []
    scatter, submit = distributed.Client.scatter, distributed.Client.submit

    def spy_scatter(self, data, *args, **kwargs):
        scattered.append((data, kwargs.get("broadcast")))
        return scatter(self, data, *args, **kwargs)

    def spy_submit(self, func, *args, **kwargs):
        submitted.append((func, args[0], kwargs.get("retries")))
        return submit(self, func, *args, **kwargs)

    monkeypatch.setattr(distributed.Client, "scatter", spy_scatter)
    monkeypatch.setattr(distributed.Client, "submit", spy_submit)
    code = sweep.main([str(text_file), "--grid", "seed=1,2,3", "--hidden-size", "8", "--iters",
                       "50", "--out", str(tmp_path / "out"), "--scheduler",
                       cluster.scheduler_address])
    assert code == 0, capsys.readouterr().err
    assert scattered == [(SWEEP_TEXT, True)]
    assert len(submitted) == 3
    for func, text, retries in submitted:
        assert func is sweep.train_one and isinstance(text, distributed.Future)
        assert retries == 2
    assert len({text.key for _, text, _ in submitted}) == 1


def test_failed_runs_are_reported_and_the_others_kept(cluster, text_file, tmp_path, capsys):
    out = tmp_path / "out"
    # a model too large for the worker's memory fails there, at run time
    code = sweep.main([str(text_file), "--grid", "hidden_size=8,100000", "--iters", "200",
                       "--out", str(out), "--scheduler", cluster.scheduler_address])
    captured = capsys.readouterr()
    assert code == 1
    assert "run h100000 failed: exit status 2: --hidden-size 100000 with" in captured.err
    assert "GiB for the parameters" in captured.err
    assert "1 of 2 runs failed" in captured.err and "Traceback" not in captured.err
    assert [r["run"] for r in read_results(out)] == ["h8"]
    assert not (out / "h100000.npz").exists()


def test_worker_killed_mid_run_loses_nothing(text_file, tmp_path, capsys):
    """A worker process killed (SIGKILL) while it trains a run: Dask gives the
    run to another worker, and every result equals an undisturbed run's."""
    out = tmp_path / "out"
    args = ["--hidden-size", "16", "--seq-length", "16", "--iters", "100000"]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1",
                                  dashboard_address=sweep.LOOPBACK_ANY_PORT) as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        done = {}
        worker = threading.Thread(target=lambda: done.setdefault("code", sweep.main(
            [str(text_file), "--grid", "seed=1,2", "--out", str(out), "--scheduler",
             cluster.scheduler_address, *args])))
        worker.start()
        victim = None
        deadline = time.monotonic() + 30
        seen = {}
        while victim is None and time.monotonic() < deadline:
            for addr, keys in client.processing().items():
                for key in keys:
                    if str(key).startswith("charrnn-sweep-"):
                        seen.setdefault((addr, key), time.monotonic())
                        if time.monotonic() - seen[(addr, key)] > 0.4:
                            victim = addr, key
            time.sleep(0.05)
        assert victim is not None, "no run was seen on a worker"
        pid = client.run(os.getpid, workers=[victim[0]])[victim[0]]
        os.kill(pid, signal.SIGKILL)
        worker.join(120)
        assert not worker.is_alive()
        deadline = time.monotonic() + 20       # the scheduler notices the death
        while victim[0] in client.scheduler_info()["workers"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert victim[0] not in client.scheduler_info()["workers"]  # that worker died
    assert done["code"] == 0, capsys.readouterr().err
    rows = read_results(out)
    assert sorted(r["run"] for r in rows) == ["seed1", "seed2"]
    for seed in (1, 2):
        ref = reference_run(text_file, tmp_path, f"seed{seed}", [*args, "--seed", str(seed)])
        got = load_checkpoint(out / f"seed{seed}.npz")
        assert_same_params(got, ref, f"seed{seed}")
        assert got.best_val_bpc == ref.best_val_bpc
        assert_same_params(load_checkpoint(out / f"seed{seed}.best.npz"),
                           load_checkpoint(tmp_path / f"ref-seed{seed}.best.npz"), "best")


# ---------------------------------------------------------------------------
# the command, with its own local cluster
# ---------------------------------------------------------------------------

def sweep_cmd(*args):
    return [sys.executable, "-m", "charrnn_ext.sweep", *map(str, args)]


def test_command_with_its_own_local_cluster(text_file, tmp_path):
    proc = subprocess.run(sweep_cmd(text_file, "--grid", "seed=0,1", "--hidden-size", 8,
                                    *RUN_FLAGS, "--out", "out", "--workers", 2),
                          cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no bar off a terminal, no Dask logs
    assert "training 2 runs on a local cluster (2 workers)" in proc.stdout
    assert "2 of 2 runs done" in proc.stdout
    assert len(read_results(tmp_path / "out")) == 2


def test_progress_bar_over_runs_on_a_terminal(text_file, tmp_path, cluster):
    """On a terminal, tqdm's bar over the runs is drawn on stderr; the lines
    and the table go to stdout, untouched by it."""
    import pty
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(sweep_cmd(text_file, "--grid", "seed=0,1", "--hidden-size", 8,
                                        *RUN_FLAGS, "--out", "out", "--scheduler",
                                        cluster.scheduler_address),
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=slave, text=True,
                              env=ENV, timeout=120, stdin=subprocess.DEVNULL)
        os.close(slave)
        slave = None
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    assert proc.returncode == 0
    assert "2/2 [" in drawn.decode("utf-8", "replace") and b"run/s" in drawn
    assert "\r" not in proc.stdout and "done seed0" in proc.stdout and "best first:" in proc.stdout


def test_ctrl_c_keeps_finished_runs_and_a_rerun_finishes(text_file, tmp_path, cluster):
    """Ctrl-C at the terminal (SIGINT to the whole process group, workers
    included): exit 130 soon, the finished runs kept in results.csv, no
    traceback; the same command again trains only the rest."""
    args = ["--grid", "seed=0,1,2,3,4,5", "--hidden-size", 16, "--seq-length", 16,
            "--iters", 20000, "--out", "out"]
    proc = subprocess.Popen(sweep_cmd(text_file, *args, "--workers", 2), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "out" / "results.csv").exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        t0 = time.monotonic()
        stdout, stderr = proc.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    assert took < 15
    assert "Traceback" not in stderr and "interrupted;" in stderr
    rows = read_results(tmp_path / "out")
    assert 1 <= len(rows) < 6
    for row in rows:
        assert load_checkpoint(tmp_path / "out" / f"{row['run']}.npz").iteration == 20000
    assert f"{len(rows)} of 6 runs done" in stdout
    # the same command (on the test's cluster) trains the rest
    rerun = [str(text_file), *map(str, args)]
    rerun[rerun.index("out")] = str(tmp_path / "out")
    with open(os.devnull, "w") as devnull:
        saved, sys.stdout = sys.stdout, devnull
        try:
            assert sweep.main([*rerun, "--scheduler", cluster.scheduler_address]) == 0
        finally:
            sys.stdout = saved
    assert len(read_results(tmp_path / "out")) == 6
