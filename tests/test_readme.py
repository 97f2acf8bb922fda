"""README.md's Python examples run as written: every ```python block, in
order, in one namespace, from a folder holding input.txt."""
import os
import re
from pathlib import Path

from conftest import english_like_text

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run_as_written(tmp_path, capsys):
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)
    assert len(blocks) >= 2
    (tmp_path / "input.txt").write_text(english_like_text(60_000, seed=7), encoding="utf-8")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        namespace = {}
        for block in blocks:
            exec(compile(block, str(README), "exec"), namespace)
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "data has 60000 characters" in out and "iter 1000, loss" in out
    assert (tmp_path / "model.npz").exists()
    assert namespace["result"].run.iteration == 2000


def test_readme_after_training_commands_run_as_written(tmp_path):
    """README's "After training" commands, each run as written (charrnn-NAME as
    python -m charrnn_ext.NAME) in a folder holding input.txt, a model trained
    on it (input.npz), chapter.txt (more of the same kind) and new.txt, a
    text with a character the model lacks."""
    import shlex
    import sys

    from charrnn_ext import load_checkpoint
    from conftest import ENV, TINY_FLAGS, run_cli
    section = README.read_text(encoding="utf-8").split("## After training")[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    assert len(commands) >= 5 and all(cmd[0].startswith("charrnn-") for cmd in commands)
    text = english_like_text(20_000, seed=2)
    (tmp_path / "input.txt").write_text(text, encoding="utf-8")
    (tmp_path / "chapter.txt").write_text(text[-2000:], encoding="utf-8")
    (tmp_path / "new.txt").write_text(english_like_text(3000, seed=9).replace("e", "é"),
                                      encoding="utf-8")
    rc, _, err = run_cli("train", "input.txt", *TINY_FLAGS, "--iters", 200, cwd=tmp_path)
    assert rc == 0, err
    import subprocess
    for cmd in commands:
        argv = [sys.executable, "-m", f"charrnn_ext.{cmd[0][len('charrnn-'):]}", *cmd[1:]]
        proc = subprocess.run(argv, cwd=tmp_path, env=ENV, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, (cmd, proc.stderr[-2000:])
        assert proc.stdout, cmd
    assert (tmp_path / "new.npz").exists()
    assert "é" in load_checkpoint(tmp_path / "new.npz").vocab.chars
