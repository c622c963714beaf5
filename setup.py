"""Build hook: the shipped weights and their manifest travel in the wheel as package data.

They live at the top of the checkout (`weights.txt`, `weights/`), where training, export and
the docs name them; a wheel carries a copy under `measr/shipped/`, which `measr.manifest`
reads when measr runs from an installed wheel. Only the files `weights.txt` lists are copied,
so checkpoints left beside them never ride along."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
MANIFEST = "weights.txt"
SHIPPED = Path("measr") / "shipped"  # keep in step with measr.manifest.SHIPPED_FOLDER


def listed_files(manifest: Path) -> list[str]:
    """The FILE column of every entry of the manifest (NAME FILE SHA256 ..., `#` comments)."""
    files = []
    for line in manifest.read_text().splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 3:
            files.append(parts[1])
    return files


class BuildWithWeights(build_py):
    """build_py that also copies the manifest and the weights it lists into the package."""

    def run(self) -> None:
        super().run()
        manifest = ROOT / MANIFEST
        if self.editable_mode or not manifest.exists():
            return  # an editable install reads the checkout's own weights.txt
        target = Path(self.build_lib) / SHIPPED
        for relative in [MANIFEST, *listed_files(manifest)]:
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / relative, destination)


setup(cmdclass={"build_py": BuildWithWeights})
