"""charrnn-export as a command, in subprocesses: the output rules every command
follows (never its input, also through links; never a directory, device or
FIFO; an existing file only with --overwrite; atomic, the mode of every
output; one line, exit 2 for a bad path, 1 for a failed write), --version,
bad checkpoints and unknown formats. What the files hold: test_export.py,
test_export_onnx.py."""
import os
import resource
import stat
import subprocess
import sys

import pytest

from charrnn_ext import __version__

from conftest import ENV, assert_cli_refusal, run_cli, sha


def export(*args, cwd):
    return run_cli("export", *args, cwd=cwd)


def listing(d):
    """{name: sha256 or what it is} of everything in d (links not followed)."""
    out = {}
    for p in d.iterdir():
        if p.is_symlink():
            out[p.name] = "-> " + os.readlink(p)
        elif p.is_file():
            out[p.name] = sha(p)
        else:
            out[p.name] = stat.filemode(p.lstat().st_mode)
    return out


def test_version_and_help(tmp_path):
    rc, out, err = export("--version", cwd=tmp_path)
    assert rc == 0 and f"(charrnn_ext) {__version__}" in out, (rc, out, err)
    rc, out, err = export("--help", cwd=tmp_path)
    assert rc == 0 and "--overwrite" in out and ".onnx" in out and ".safetensors" in out


def test_writes_a_new_file_with_the_mode_of_every_output(saved_trained, tmp_path):
    """0666 less the umask, as the checkpoint charrnn-train writes (not
    safetensors' own 0600); no temporary file left."""
    _, model = saved_trained
    proc = subprocess.run([sys.executable, "-m", "charrnn_ext.export", str(model), "m.safetensors"],
                          cwd=tmp_path, env=ENV, capture_output=True, preexec_fn=lambda: os.umask(0o022))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == "wrote m.safetensors\n"
    assert stat.S_IMODE(os.stat(tmp_path / "m.safetensors").st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors", "model.npz"]


@pytest.mark.parametrize("out", ["model.npz", "link.safetensors", "hard.safetensors",
                                 "./sub/../model.npz"])
def test_never_the_input(saved_trained, tmp_path, out):
    """The checkpoint itself, by its name, a symlink or a hard link: refused,
    even with --overwrite; the checkpoint and the link untouched."""
    _, model = saved_trained
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.safetensors").symlink_to("model.npz")
    os.link(model, tmp_path / "hard.safetensors")
    before = listing(tmp_path)
    for extra in ((), ("--overwrite",)):
        result = export("model.npz", out, *extra, cwd=tmp_path)
        assert_cli_refusal(result, out)
        assert listing(tmp_path) == before
    assert "is the same file as MODEL model.npz" in result[2]


def test_an_existing_file_only_with_overwrite(saved_trained, tmp_path):
    _, model = saved_trained
    notes = tmp_path / "notes.safetensors"
    notes.write_text("precious notes\n")
    result = export(model, notes.name, cwd=tmp_path)
    assert_cli_refusal(result, "notes.safetensors already exists", "--overwrite")
    assert notes.read_text() == "precious notes\n"
    rc, out, err = export(model, notes.name, "--overwrite", cwd=tmp_path)
    assert rc == 0, err
    assert notes.read_bytes() != b"precious notes\n" and not notes.is_symlink()
    from safetensors.numpy import load_file
    assert "out.weight" in load_file(str(notes))


def test_a_symlink_to_another_file_is_written_through(saved_trained, tmp_path):
    """As charrnn-train writes a symlinked checkpoint: the link stays, its
    target is replaced (with --overwrite, since it exists); a dangling link
    is created through."""
    _, model = saved_trained
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "real.safetensors").write_text("old")
    (tmp_path / "link.safetensors").symlink_to("store/real.safetensors")
    assert_cli_refusal(export(model, "link.safetensors", cwd=tmp_path), "already exists")
    rc, _, err = export(model, "link.safetensors", "--overwrite", cwd=tmp_path)
    assert rc == 0, err
    assert (tmp_path / "link.safetensors").is_symlink()
    assert (tmp_path / "store" / "real.safetensors").read_bytes() != b"old"
    (tmp_path / "dangling.safetensors").symlink_to("store/new.safetensors")
    rc, _, err = export(model, "dangling.safetensors", cwd=tmp_path)
    assert rc == 0, err
    assert (tmp_path / "store" / "new.safetensors").stat().st_size > 0


def test_never_a_device_fifo_or_directory(saved_trained, tmp_path):
    """Refused even with --overwrite, and left as they were (as root, the old
    command replaced /dev/null with a regular file)."""
    _, model = saved_trained
    os.mkfifo(tmp_path / "pipe.safetensors")
    (tmp_path / "null.safetensors").symlink_to(os.devnull)
    (tmp_path / "dir.safetensors").mkdir()
    before = listing(tmp_path)
    for out, what in (("pipe.safetensors", "not a regular file"),
                      ("null.safetensors", "not a regular file"),
                      ("dir.safetensors", "is a directory"), ("dir.safetensors/", "is a directory")):
        assert_cli_refusal(export(model, out, "--overwrite", cwd=tmp_path), out, what)
    assert listing(tmp_path) == before
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


@pytest.mark.parametrize("out, words", [
    ("missing/dir/m.safetensors", ("does not exist",)),
    ("/proc/m.safetensors", ("cannot write in /proc",)),
    ("m" * 250 + ".safetensors", ("cannot write in",)),     # its temporary name is too long
    ("m.bin", ("unknown format '.bin'", "OUT.onnx")),
    ("m", ("unknown format '(no extension)'",)),
])
def test_bad_paths_one_line_exit_2(saved_trained, tmp_path, out, words):
    _, model = saved_trained
    before = listing(tmp_path)
    assert_cli_refusal(export(model, out, cwd=tmp_path), *words)
    assert listing(tmp_path) == before


def test_bad_checkpoints_one_line_exit_2(saved_trained, tmp_path):
    _, model = saved_trained
    (tmp_path / "text.npz").write_text("not a checkpoint")
    for name, words in (("missing.npz", ("missing.npz",)), ("text.npz", ("text.npz",))):
        assert_cli_refusal(export(name, "m.safetensors", cwd=tmp_path), *words)
    assert not (tmp_path / "m.safetensors").exists()


def test_a_failed_write_is_exit_1_and_replaces_nothing(saved_trained, tmp_path):
    """The file system refuses the bytes (here: a file size limit of 1 kB,
    the write fails with EFBIG): one line, exit 1, the old file whole, no
    temporary file left."""
    _, model = saved_trained
    old = tmp_path / "m.safetensors"
    old.write_text("the old export")
    before = listing(tmp_path)

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    proc = subprocess.run([sys.executable, "-m", "charrnn_ext.export", str(model), old.name,
                           "--overwrite"], cwd=tmp_path, env=ENV, capture_output=True,
                          preexec_fn=limit)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "cannot write OUT m.safetensors" in err
    assert listing(tmp_path) == before


def test_onnx_without_the_onnx_package(saved_trained, tmp_path):
    """OUT.onnx needs the onnx package (the [onnx] extra): one line, exit 2,
    nothing written."""
    _, model = saved_trained
    fake = tmp_path / "fake"
    (fake / "onnx").mkdir(parents=True)
    (fake / "onnx" / "__init__.py").write_text("raise ImportError('no onnx here', name='onnx')\n")
    env = dict(ENV, PYTHONPATH=os.pathsep.join(filter(None, [str(fake),
                                                             ENV.get("PYTHONPATH")])))
    result = run_cli("export", model, "m.onnx", cwd=tmp_path, env=env)
    assert_cli_refusal(result, "needs the onnx package", "charrnn_ext[onnx]")
    assert not (tmp_path / "m.onnx").exists()
