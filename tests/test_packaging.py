"""A wheel built from the checkout is a complete install: it carries weights.txt and the weights
it lists, and a fresh virtual environment with nothing but the wheel (and the project's
dependencies, seen through a path file) lists them and restores the bundled example."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from measr import __version__
from measr.io import read_image
from measr.manifest import MANIFEST_ENV, read_manifest

ROOT = Path(__file__).resolve().parent.parent
# What a wheel is built from; copied to a temporary folder so that the build never meets (or
# leaves) a stale build/ folder in the checkout, which other work shares.
SOURCES = ("measr", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "weights.txt")

pytestmark = pytest.mark.slow  # building, installing and restoring take a minute or more


def build_wheel(folder: Path) -> Path:
    """A wheel of the checkout, built without network (this environment's setuptools)."""
    source = folder / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    for entry in read_manifest(ROOT / "weights.txt"):
        relative = entry.file.relative_to(ROOT)
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(entry.file, source / relative)
    out = folder / "dist"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip_wheel, "-q", "-w", str(out), str(source)], check=True)
    (wheel,) = out.glob("measr-*.whl")
    return wheel


def fresh_venv(folder: Path, wheel: Path) -> Path:
    """A new virtual environment holding the wheel; the dependencies (torch above all, too
    large to install per test) come from this environment's site-packages through a .pth
    file, which, unlike the site folder itself, does not bring the checkout's editable
    install along. Returns its bin folder."""
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip_install = [sys.executable, "-m", "pip", "--python", str(python), "install"]
    subprocess.run([*pip_install, "--no-deps", "--no-index", "-q", str(wheel)], check=True)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "project_dependencies.pth").write_text("\n".join(site.getsitepackages()))
    return venv / "bin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the wheel, the bin folder of a fresh venv that installed it)."""
    folder = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(folder)
    return wheel, fresh_venv(folder, wheel)


def run_installed(bin_folder: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed `measr` command, away from the checkout (cwd) and its manifest."""
    env = {k: v for k, v in os.environ.items() if k not in (MANIFEST_ENV, "PYTHONPATH")}
    return subprocess.run(
        [str(bin_folder / "measr"), *args],
        cwd=cwd,
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_the_wheel_carries_the_manifest_and_every_listed_weights_file(
    installed: tuple[Path, Path],
) -> None:
    wheel, _ = installed
    entries = read_manifest(ROOT / "weights.txt")
    assert entries, "the checkout lists no weights"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "measr/shipped/weights.txt" in names
        for entry in entries:
            inside = f"measr/shipped/{entry.file.relative_to(ROOT).as_posix()}"
            assert inside in names
            assert archive.getinfo(inside).file_size == entry.file.stat().st_size
        metadata = archive.read(f"measr-{__version__}.dist-info/METADATA").decode()
    assert "Requires-Dist: Pillow" in metadata
    assert "tqdm" not in metadata


def test_a_wheel_install_lists_its_weights_and_knows_its_version(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    _, bin_folder = installed
    models = run_installed(bin_folder, "models", cwd=tmp_path)
    assert models.returncode == 0, models.stderr
    default = next(e for e in read_manifest(ROOT / "weights.txt") if e.is_default)
    assert default.name in models.stdout
    assert "shipped" in models.stdout  # read from the package, not from a checkout
    assert "ok" in models.stdout  # the file is there and its checksum matches
    version = run_installed(bin_folder, "--version", cwd=tmp_path)
    assert version.stdout.strip() == f"measr {__version__}"


def test_a_wheel_install_restores_the_bundled_example_with_the_shipped_weights(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    _, bin_folder = installed
    example = ROOT / "examples" / "kodim_hazy.jpg"
    result = run_installed(
        bin_folder, "restore", str(example), "-o", "restored.png", "--threads", "2", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    default = next(e for e in read_manifest(ROOT / "weights.txt") if e.is_default)
    assert default.name in result.stdout
    assert "untrained" not in (result.stdout + result.stderr).lower()
    source, restored = read_image(example), read_image(tmp_path / "restored.png")
    assert (restored.height, restored.width) == (source.height, source.width)
    assert np.abs(restored.pixels - source.pixels).mean() > 0.01  # the haze was worked on
