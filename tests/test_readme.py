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
