"""Fixed, seeded validation sets scored during training (PSNR/SSIM per task).

Synthetic tasks degrade the centre crop of each clean validation photo with
`seeded_rng(seed, file name, spec)`, so every run, and `measr benchmark quality`, sees the same
degraded images. Paired sets (real blur, real haze) are used as they are.
"""

from __future__ import annotations

from collections.abc import Callable
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
    items = []
    for item in list_items(synthetic_set(folder, "noise"), limit_of(per_task)):
        clean = centre_crop(as_rgb(read_image(item.clean).pixels), crop)
        for label, spec in specs.items():
            degraded, target = synthesise_pair(clean, parse_spec(spec), seed, item.name)
            items.append(ValidationItem(label, item.name, degraded, target))
    return items


def composite_validation_set(
    root: Path, crop: int = 192, per_task: int = 4
) -> list[ValidationItem]:
    """Damage that comes together (`measr.degrade.COMPOSITES`, labelled by spec, such as
    "lowlight+haze") on the Kodak24 and McMaster crops of `root`, with the fixed seeds of the
    single-damage sets; not part of the default validation, pass it where it is wanted."""
    items: list[ValidationItem] = []
    for name in ("kodak24", "mcmaster"):
        if (root / name / "clean").is_dir():
            specs = {spec: spec for spec in COMPOSITES}
            items += spec_items(root / name / "clean", specs, crop, per_task)
    return items


def paired_items(task: str, folder: Path, crop: int, limit: int) -> list[ValidationItem]:
    """Centre crops of up to `limit` pairs of a paired folder (`degraded/`, `clean/`; 0: all)."""
    pairs = paired_set(folder)
    items = []
    for item in list_items(pairs, limit_of(limit)):
        degraded, clean = load_item(pairs, item, seed=0)
        items.append(
            ValidationItem(task, item.name, centre_crop(degraded, crop), centre_crop(clean, crop))
        )
    return items


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
    real = {"blur": ["deblur-gopro-like", "deblur-camshake"], "haze": ["dehaze-its-sample"]}
    for task, folders in real.items():
        if task not in tasks:
            continue
        for folder in folders:
            if (root / folder / "degraded").is_dir():
                label = "haze-its" if task == "haze" else task
                items += paired_items(label, root / folder, crop, per_task)
    return items


def prompt_validation_set(root: Path, crop: int = 192, per_task: int = 0) -> list[ValidationItem]:
    """Images whose damage is known, for `measr benchmark prompt`: every synthetic task of the
    `six` mix (synthetic blur labelled 'blur-synthetic'; clean photos as 'clean') on the
    Kodak24 and McMaster crops, then the real blur ('blur') and indoor haze ('haze-its') pairs."""
    tasks = list(mix_weights("six"))
    items = default_validation_set(root, tasks, crop, per_task)
    synthetic_blur = []
    for name in ("kodak24", "mcmaster"):
        if (root / name / "clean").is_dir():
            synthetic_blur += synthetic_items(root / name / "clean", ["blur"], crop, per_task)
    relabelled = [
        ValidationItem("blur-synthetic", i.name, i.degraded, i.clean) for i in synthetic_blur
    ]
    return items + relabelled


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


def evaluate(items: list[ValidationItem], restore: Restore) -> dict[str, tuple[float, float]]:
    """Mean (PSNR, SSIM) per task of `restore` ((1,3,H,W) -> (1,3,H,W)) on the items."""
    scores: dict[str, list[tuple[float, float]]] = {}
    for item in items:
        x = torch.from_numpy(item.degraded.transpose(2, 0, 1).copy())[None]
        out = restore(x)[0].clamp(0, 1).permute(1, 2, 0).float().cpu().numpy()
        scores.setdefault(item.task, []).append((psnr(out, item.clean), ssim(out, item.clean)))
    return {
        task: (float(np.mean([s[0] for s in v])), float(np.mean([s[1] for s in v])))
        for task, v in scores.items()
    }
