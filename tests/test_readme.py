"""What a new user copies from the README works as printed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_weights import write_weights

import measr
from measr.engine import Restorer
from measr.engine.backends import resolve_backend
from measr.io import read_image
from measr.manifest import MANIFEST_ENV
from measr.model import build_model

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# The README stays short enough to read (issue 34).
MAX_README_BYTES = 12 * 1024


def python_snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_the_python_snippet_runs_as_printed(tmp_path: Path) -> None:
    """From a checkout's root (here a copy of its examples), with tiny weights as the default
    entry so that it takes a second."""
    (snippet,) = python_snippets()
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = os.environ | {MANIFEST_ENV: str(write_weights(tmp_path)), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    written = re.search(r'write_image\("([^"]+)"', snippet)
    assert written is not None
    restored = read_image(tmp_path / written.group(1))
    assert (restored.width, restored.height) == (500, 500)


def test_restorer_is_listed_by_dir() -> None:
    assert {"Restorer", "build_model", "MeasrError"} <= set(dir(measr))


@pytest.mark.parametrize("named", [None, "torch"])
def test_the_library_picks_the_backend_as_the_command_line_does(
    monkeypatch: pytest.MonkeyPatch, named: str | None
) -> None:
    """No backend named: $MEASR_BACKEND, else auto (OpenVINO for tiled photos on the CPU where
    it is installed), as `measr restore` without --backend."""
    if named is None:
        monkeypatch.delenv("MEASR_BACKEND", raising=False)
    else:
        monkeypatch.setenv("MEASR_BACKEND", named)
    torch.manual_seed(0)
    restorer = Restorer(build_model("tiny"), device="cpu", threads=1)
    expected = resolve_backend(named or "auto", torch.device("cpu"), half=False)[0]
    assert restorer.backend == expected and restorer.tiled_only == (named is None)


def test_the_readme_stays_under_12_kb() -> None:
    assert len(README.read_bytes()) < MAX_README_BYTES
