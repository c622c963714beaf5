"""Fixed, seeded validation sets scored during training (PSNR/SSIM per task).

Synthetic tasks degrade the centre crop of each clean validation photo with
`seeded_rng(seed, file name, spec)`, so every run, and `measr benchmark quality`, sees the same
degraded images. Paired sets (real blur, real haze) are used as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from measr.degrade import COMPOSITES, mix_weights, parse_spec, task_spec
from measr.evaluation.metrics import as_rgb, psnr, ssim
from measr.evaluation.sets import list_items, load_item, paired_set, synthesise_pair, synthetic_set
from measr.io import read_image

VALIDATION_SEED = 2024
# The paired sets of real damage, (label, folder under the validation root), in their order.
REAL_SETS = (
    ("blur", "deblur-gopro-like"),
    ("blur", "deblur-camshake"),
    ("haze-its", "dehaze-its-sample"),
)


def label_task(label: str) -> str:
    """The task a set's label belongs to ('haze-its' -> 'haze')."""
    return label.split("-")[0]


@dataclass(frozen=True)
class ValidationItem:
    """One validation pair, float32 (H, W, 3) in [0, 1]."""

    task: str
    name: str
    degraded: np.ndarray
    clean: np.ndarray


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central size x size window (the whole side where the image is smaller)."""
    h, w = image.shape[:2]
    top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
    return image[top : top + size, left : left + size]


def limit_of(per_task: int) -> int | None:
    """The number of photos `per_task` asks for: None (all of them) for 0."""
    return per_task or None


def synthetic_items(
    folder: Path, tasks: list[str], crop: int, per_task: int, seed: int = VALIDATION_SEED
) -> list[ValidationItem]:
    """Each task's degradation of centre crops of the first `per_task` photos of a clean folder
    (0: all of them), made exactly as `measr benchmark quality` makes a synthetic set (seeded,
    stored in 8 bits)."""
    return spec_items(folder, {task: task_spec(task) for task in tasks}, crop, per_task, seed)


def spec_items(
    folder: Path, specs: dict[str, str], crop: int, per_task: int, seed: int = VALIDATION_SEED
) -> list[ValidationItem]:
    """`synthetic_items` for specs by label ({"lowlight+haze": "lowlight+haze"})."""
    return list(iter_spec_items(folder, specs, crop, per_task, seed))


def iter_spec_items(
    folder: Path, specs: dict[str, str], crop: int, per_task: int, seed: int = VALIDATION_SEED
) -> Iterator[ValidationItem]:
    """`spec_items` one at a time (whole photos of a set do not all fit in memory at once)."""
    for item in list_items(synthetic_set(folder, "noise"), limit_of(per_task)):
        clean = centre_crop(as_rgb(read_image(item.clean).pixels), crop)
        for label, spec in specs.items():
            degraded, target = synthesise_pair(clean, parse_spec(spec), seed, item.name)
            yield ValidationItem(label, item.name, degraded, target)


def composite_validation_set(
    root: Path, crop: int = 192, per_task: int = 4
) -> list[ValidationItem]:
    """Damage that comes together (`measr.degrade.COMPOSITES`, labelled by spec, such as
    "lowlight+haze") on the Kodak24 and McMaster crops of `root`, with the fixed seeds of the
    single-damage sets; not part of the default validation, pass it where it is wanted."""
    return list(composite_items(root, crop, per_task))


def composite_items(root: Path, crop: int = 192, per_task: int = 4) -> Iterator[ValidationItem]:
    """`composite_validation_set` one item at a time."""
    for name in ("kodak24", "mcmaster"):
        if (root / name / "clean").is_dir():
            specs = {spec: spec for spec in COMPOSITES}
            yield from iter_spec_items(root / name / "clean", specs, crop, per_task)


def paired_items(task: str, folder: Path, crop: int, limit: int) -> Iterator[ValidationItem]:
    """Centre crops of up to `limit` pairs of a paired folder (`degraded/`, `clean/`; 0: all),
    one at a time."""
    pairs = paired_set(folder)
    for item in list_items(pairs, limit_of(limit)):
        degraded, clean = load_item(pairs, item, seed=0)
        yield ValidationItem(task, item.name, centre_crop(degraded, crop), centre_crop(clean, crop))


def default_validation_set(
    root: Path, tasks: list[str], crop: int = 192, per_task: int = 4
) -> list[ValidationItem]:
    """The project's validation set from `root` (../shared/data/val layout): synthetic tasks on
    Kodak24 and McMaster crops, real blur pairs and real indoor haze pairs where present;
    `per_task` photos of each folder (0: every photo, as the ship rule decides)."""
    synthetic = [t for t in tasks if t != "blur"]
    items: list[ValidationItem] = []
    for name in ("kodak24", "mcmaster"):
        if (root / name / "clean").is_dir():
            items += synthetic_items(root / name / "clean", synthetic, crop, per_task)
    for label, folder in REAL_SETS:
        if label_task(label) in tasks and (root / folder / "degraded").is_dir():
            items += paired_items(label, root / folder, crop, per_task)
    return items


def prompt_validation_set(root: Path, crop: int = 192, per_task: int = 0) -> list[ValidationItem]:
    """Images whose damage is known, for `measr benchmark prompt`: every synthetic task of the
    `six` mix (synthetic blur labelled 'blur-synthetic'; clean photos as 'clean') on the
    Kodak24 and McMaster crops, then the real blur ('blur') and indoor haze ('haze-its') pairs."""
    return list(prompt_validation_items(root, crop, per_task))


def prompt_validation_items(
    root: Path, crop: int = 192, per_task: int = 0
) -> Iterator[ValidationItem]:
    """`prompt_validation_set` one item at a time, in the same order (whole photos of every
    task do not fit in memory at once)."""
    tasks = list(mix_weights("six"))
    synthetic = {task: task_spec(task) for task in tasks if task != "blur"}
    folders = [root / name / "clean" for name in ("kodak24", "mcmaster")]
    for folder in filter(Path.is_dir, folders):
        yield from iter_spec_items(folder, synthetic, crop, per_task)
    for label, paired in REAL_SETS:
        if (root / paired / "degraded").is_dir():
            yield from paired_items(label, root / paired, crop, per_task)
    for folder in filter(Path.is_dir, folders):
        for item in iter_spec_items(folder, {"blur": task_spec("blur")}, crop, per_task):
            yield ValidationItem("blur-synthetic", item.name, item.degraded, item.clean)


def other_source_items(
    folder: Path, crop: int = 192, per_task: int = 0
) -> Iterator[ValidationItem]:
    """Clean photos of `folder`, from a source the training never saw, with each single damage
    of the `six` mix (synthetic blur labelled `blur-synthetic`, as in `prompt_validation_items`)
    and each composite, seeded as the validation sets."""
    specs = {("blur-synthetic" if t == "blur" else t): task_spec(t) for t in mix_weights("six")}
    specs.update({spec: spec for spec in COMPOSITES})
    yield from iter_spec_items(folder, specs, crop, per_task)


Restore = Callable[[torch.Tensor], torch.Tensor]


def framed(restore: Restore, margin: int) -> Restore:
    """`restore` run as `measr restore` runs the network: on the image framed by a mirrored
    margin (`InputRequirements.edge_margin`), cropped after, so that validation and the ship
    rule score what users get (the outer rows restore worse without it)."""
    if margin <= 0:
        return restore

    def restore_framed(x: torch.Tensor) -> torch.Tensor:
        out = restore(F.pad(x, (margin, margin, margin, margin), mode="reflect"))
        return out[..., margin : out.shape[-2] - margin, margin : out.shape[-1] - margin]

    return restore_framed


def restored(items: list[ValidationItem], restore: Restore) -> Iterator[np.ndarray]:
    """`restore` ((1,3,H,W) -> (1,3,H,W)) run on each item's damaged image, as (H, W, 3) float
    pixels in [0, 1], in the items' order."""
    for item in items:
        x = torch.from_numpy(item.degraded.transpose(2, 0, 1).copy())[None]
        yield restore(x)[0].clamp(0, 1).permute(1, 2, 0).float().cpu().numpy()


def evaluate(items: list[ValidationItem], restore: Restore) -> dict[str, tuple[float, float]]:
    """Mean (PSNR, SSIM) per task of `restore` ((1,3,H,W) -> (1,3,H,W)) on the items."""
    scores: dict[str, list[tuple[float, float]]] = {}
    for item, out in zip(items, restored(items, restore), strict=True):
        scores.setdefault(item.task, []).append((psnr(out, item.clean), ssim(out, item.clean)))
    return {
        task: (float(np.mean([s[0] for s in v])), float(np.mean([s[1] for s in v])))
        for task, v in scores.items()
    }
