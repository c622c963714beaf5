"""Evaluation sets: paired folders (`degraded/` + `clean/`) or clean folders degraded on the fly
with a named spec and a fixed seed per image, so that everyone measures the same images.

The command-line form of a set is `[NAME=]FOLDER[:SPEC]` (see `parse_set`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from measr.degrade import COMPOSITES, Spec, degrade_pair, parse_spec, seeded_rng
from measr.errors import ExitCode, MeasrError
from measr.evaluation.metrics import as_rgb, quantise
from measr.io import from_uint, is_supported_path, read_image

DEGRADED = "degraded"
CLEAN = "clean"
SET_SYNTAX = "[NAME=]FOLDER[:SPEC]"
SET_EXAMPLES = "e.g. kodak24=data/val/kodak24:noise:25 or data/val/dehaze-its-sample:haze"


@dataclass(frozen=True)
class EvalSet:
    """A named set of images. `degraded` is None for a synthetic set, whose `spec` then says how
    to degrade each clean image; on a paired set `spec` only names the task (or is None)."""

    name: str
    clean: Path
    degraded: Path | None = None
    spec: Spec | None = None

    @property
    def is_synthetic(self) -> bool:
        return self.degraded is None

    @property
    def source(self) -> str:
        """Where the degraded images come from, for reports."""
        if self.degraded is not None:
            return f"paired: {self.degraded}"
        return f"synthetic: {self.clean} degraded with {self.spec}"


@dataclass(frozen=True)
class SetItem:
    """One image of a set: its file name, its clean file and (paired sets) its degraded file."""

    name: str
    clean: Path
    degraded: Path | None


def _set_error(message: str) -> MeasrError:
    return MeasrError(message, f"give a set as {SET_SYNTAX}, {SET_EXAMPLES}", ExitCode.USAGE)


def _default_name(folder: Path, spec: Spec | None) -> str:
    # A folder called "clean" says nothing; its parent names the set.
    base = folder.parent.name if folder.name == CLEAN else folder.name
    return f"{base}:{spec}" if spec is not None else base


def paired_set(folder: str | Path, *, name: str | None = None, spec: str | None = None) -> EvalSet:
    """A set of `folder/degraded/X` and `folder/clean/X` pairs; `spec` ("haze", "noise:25")
    names the degradation so task-specific baselines can run."""
    root = Path(folder)
    if not (root / DEGRADED).is_dir() or not (root / CLEAN).is_dir():
        raise _set_error(f"'{root}' has no '{DEGRADED}/' and '{CLEAN}/' folders")
    parsed = parse_spec(spec) if spec else None
    return EvalSet(name or _default_name(root, parsed), root / CLEAN, root / DEGRADED, parsed)


def synthetic_set(folder: str | Path, spec: str, *, name: str | None = None) -> EvalSet:
    """A set of the clean images in `folder` (or `folder/clean/`), degraded with `spec`."""
    root = Path(folder)
    if not root.is_dir():
        raise _set_error(f"'{root}' is not a folder")
    clean = root / CLEAN if (root / CLEAN).is_dir() else root
    parsed = parse_spec(spec)
    return EvalSet(name or _default_name(clean, parsed), clean, None, parsed)


def composite_sets(folder: str | Path) -> list[EvalSet]:
    """One synthetic set of the clean images in `folder` per spec of damage that comes together
    (`measr.degrade.COMPOSITES`), named like "kodak24:lowlight+haze"."""
    return [synthetic_set(folder, spec) for spec in COMPOSITES]


def parse_set(text: str) -> EvalSet:
    """A set from `[NAME=]FOLDER[:SPEC]`: a folder with `degraded/` and `clean/` is paired (SPEC
    optional, it names the task); any other folder holds clean images (SPEC required). The
    folder ends at the first ':', so folder names cannot contain one."""
    name: str | None = None
    head, equals, rest = text.partition("=")
    if equals and head and "/" not in head:
        name, text = head.strip(), rest
    folder, _, spec = text.partition(":")
    if not folder:
        raise _set_error(f"no folder in set '{text}'")
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise _set_error(f"set folder '{root}' does not exist")
    if (root / DEGRADED).is_dir():
        return paired_set(root, name=name, spec=spec or None)
    if not spec:
        raise _set_error(
            f"'{root}' has no '{DEGRADED}/' folder, so its images are clean and need a "
            "degradation to apply"
        )
    return synthetic_set(root, spec, name=name)


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_supported_path(p))


def list_items(eval_set: EvalSet, limit: int | None = None) -> list[SetItem]:
    """The set's images in file-name order (the first `limit` of them). Paired files match by
    name, or by name without extension when the clean copy is stored in another format."""
    if eval_set.degraded is None:
        items = [SetItem(p.name, p, None) for p in _images(eval_set.clean)]
    else:
        clean = {p.name: p for p in _images(eval_set.clean)}
        clean_by_stem = {p.stem: p for p in clean.values()}
        items = []
        for degraded in _images(eval_set.degraded):
            match = clean.get(degraded.name) or clean_by_stem.get(degraded.stem)
            if match is None:
                raise MeasrError(
                    f"set '{eval_set.name}': no clean image for '{degraded.name}' in "
                    f"'{eval_set.clean}'",
                    "paired folders need the same file names in degraded/ and clean/",
                    ExitCode.INPUT,
                )
            items.append(SetItem(degraded.name, match, degraded))
    if not items:
        folder = eval_set.degraded or eval_set.clean
        raise MeasrError(
            f"set '{eval_set.name}': no images in '{folder}'",
            "put PNG, JPEG, TIFF, WebP or BMP files there",
            ExitCode.INPUT,
        )
    return items[:limit] if limit is not None else items


def synthesise_pair(
    clean: np.ndarray, spec: Spec, seed: int, image_name: str
) -> tuple[np.ndarray, np.ndarray]:
    """(degraded, target) of a synthetic set: the spec applied with the generator fixed by
    (seed, file name, spec), the degraded image stored in 8 bits as a PNG of it would be; the
    target is the clean image, or the scene a spec makes of it (a dark scene stays dark)."""
    rng = seeded_rng(seed, image_name, str(spec))
    degraded, target = degrade_pair(clean, spec, rng)
    return from_uint(quantise(degraded)), target


def synthesise(clean: np.ndarray, spec: Spec, seed: int, image_name: str) -> np.ndarray:
    """The degraded image of a synthetic set (see `synthesise_pair`)."""
    return synthesise_pair(clean, spec, seed, image_name)[0]


def load_item(eval_set: EvalSet, item: SetItem, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(degraded, clean) float32 RGB (H, W, 3) images in [0, 1] of one item."""
    clean = as_rgb(read_image(item.clean).pixels)
    if item.degraded is None:
        assert eval_set.spec is not None  # a synthetic set always has its spec
        return synthesise_pair(clean, eval_set.spec, seed, item.name)
    degraded = as_rgb(read_image(item.degraded).pixels)
    if degraded.shape != clean.shape:
        raise MeasrError(
            f"set '{eval_set.name}': '{item.name}' is {degraded.shape[1]}x{degraded.shape[0]} "
            f"but its clean image is {clean.shape[1]}x{clean.shape[0]}",
            "a degraded image and its clean image must have the same size",
            ExitCode.INPUT,
        )
    return degraded, clean
