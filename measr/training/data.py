"""Training samples: clean folders degraded on the fly, and paired folders, mixed by task weights.

Sample `i` of a run is a pure function of (seed, i): its task, image, crop, flips and degradation
all come from `seeded_rng(seed, "sample", i)`. So the data position is just the sample index, a
resumed run sees exactly the batches an uninterrupted one would, and worker processes need no
shared state.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from measr.degrade import (
    Recipe,
    degrade_batch_pair,
    degrade_pair,
    draw_recipe,
    mix_weights,
    pick_task,
    seeded_rng,
    task_spec,
)
from measr.errors import MeasrError
from measr.evaluation.metrics import as_rgb
from measr.evaluation.sets import list_items, paired_set
from measr.io import SUPPORTED_EXTENSIONS, read_image
from measr.training.sources import FrameBurst, PairedPhotos, RealSource, random_crop

# Degrade a crop larger than the patch, then cut the patch from its centre, so that blur kernels
# and rain streaks see real image content at the patch border instead of padding.
DEGRADE_MARGIN = 24


def list_images(folder: Path) -> list[Path]:
    """Image files under `folder`, recursively, sorted for reproducibility. Hidden files and
    folders are left out, as `measr batch` leaves them out: macOS's `._photo.jpg` companions
    carry an image's name but no image."""
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in SUPPORTED_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not files:
        raise MeasrError(f"no images found under '{folder}'", "point --data at a folder of images")
    return files


def load_rgb(path: Path) -> np.ndarray:
    """An image as float32 (H, W, 3) RGB in [0, 1] (grayscale is replicated)."""
    return as_rgb(read_image(path).pixels)


def paired_files(folder: Path) -> list[tuple[Path, Path]]:
    """(degraded, clean) files of a paired folder, matched as the benchmark matches them."""
    return [(item.degraded, item.clean) for item in list_items(paired_set(folder)) if item.degraded]


def real_source(folder: Path) -> RealSource:
    """The real source in `folder`: pairs when it holds `degraded/` and `clean/`, else a burst
    of consecutive sharp frames (its images sorted by name)."""
    if (folder / "degraded").is_dir() and (folder / "clean").is_dir():
        return PairedPhotos(paired_files(folder))
    return FrameBurst(list_images(folder))


class UnreadablePhotoError(Exception):
    """A training photo that cannot be decoded (`ImageCache.get_uint8`); the sample draws
    another."""


class ImageCache:
    """Decoded images kept in memory as uint8 (BSD400 is ~185 MB), loaded on first use. A photo
    that cannot be read is said once (on stderr) and remembered as unreadable."""

    def __init__(self) -> None:
        self._images: dict[Path, np.ndarray] = {}
        self.unreadable: set[Path] = set()

    def get(self, path: Path) -> np.ndarray:
        """float32 (H, W, 3) RGB in [0, 1]."""
        return self.get_uint8(path).astype(np.float32) / 255.0

    def get_uint8(self, path: Path) -> np.ndarray:
        """uint8 (H, W, 3) RGB, as kept; UnreadablePhotoError for a photo that cannot be read."""
        if path in self.unreadable:
            raise UnreadablePhotoError(path)
        if path not in self._images:
            try:
                self._images[path] = np.round(load_rgb(path) * 255).astype(np.uint8)
            except MeasrError as error:
                self.unreadable.add(path)
                sys.stderr.write(f"measr train: skipping a training photo: {error}\n")
                raise UnreadablePhotoError(path) from None
        return self._images[path]


def random_flip_rotate(images: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The same random flip and 90-degree rotation (the 8 dihedral views) of each image."""
    turns, flip = int(rng.integers(0, 4)), bool(rng.integers(0, 2))
    out = [np.rot90(im, turns) for im in images]
    return [np.ascontiguousarray(im[:, ::-1] if flip else im) for im in out]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) array -> (3, H, W) tensor of the same dtype."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class TrainingSamples(Dataset[tuple[torch.Tensor, torch.Tensor, int]]):
    """(degraded, clean, task index) patches; index i -> always the same sample for a seed."""

    def __init__(
        self,
        clean_folders: list[Path],
        mix: str,
        patch: int,
        seed: int,
        paired: dict[str, Path] | None = None,
        real: list[tuple[str, Path]] | None = None,
        real_share: float = 0.0,
    ) -> None:
        self.weights = mix_weights(mix)
        self.tasks = list(self.weights)
        self.mix, self.patch, self.seed = mix, patch, seed
        self.clean = [p for folder in clean_folders for p in list_images(folder)]
        self.paired = {task: paired_files(folder) for task, folder in (paired or {}).items()}
        self.real: dict[str, list[RealSource]] = {}
        for task, folder in real or []:
            self.real.setdefault(task, []).append(real_source(folder))
        self.real_share = real_share
        self.cache = ImageCache()

    def __len__(self) -> int:
        return 2**62  # an endless stream; the sampler decides where to start

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        rng = seeded_rng(self.seed, "sample", index)
        task = pick_task(self.mix, rng)
        if task in self.paired:
            degraded, clean = self._paired_sample(task, rng)
        elif task in self.real and rng.random() < self.real_share:
            sources = self.real[task]
            source = sources[int(rng.integers(0, len(sources)))]
            degraded, clean = source.sample(self.cache, self.patch, rng)
        else:
            degraded, clean = self._synthetic_sample(task, rng)
        degraded, clean = random_flip_rotate([degraded, clean], rng)
        return to_tensor(degraded), to_tensor(clean), self.tasks.index(task)

    def _synthetic_sample(
        self, task: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        window = self._clean_window(rng).astype(np.float32) / 255.0
        degraded, target = degrade_pair(window, task_spec(task), rng)  # a dark scene's is dark
        core = slice(DEGRADE_MARGIN, DEGRADE_MARGIN + self.patch)
        return degraded[core, core], target[core, core]

    def _clean_window(self, rng: np.random.Generator) -> np.ndarray:
        """A random uint8 crop of a random clean photo, DEGRADE_MARGIN wider than the patch. An
        unreadable photo is skipped: the next photo drawn from the same generator takes its
        place, so the sample still depends only on the seed, its index and the data."""
        for _ in range(len(self.clean) + 100):
            try:
                image = self.cache.get_uint8(self.clean[int(rng.integers(0, len(self.clean)))])
            except UnreadablePhotoError:
                continue
            (window,) = random_crop([image], self.patch + 2 * DEGRADE_MARGIN, rng)
            return window
        raise MeasrError(
            "none of the training photos drawn could be read", "check the --data folders"
        )

    def _paired_sample(self, task: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        degraded_path, clean_path = self.paired[task][int(rng.integers(0, len(self.paired[task])))]
        degraded, clean = random_crop(
            [self.cache.get(degraded_path), self.cache.get(clean_path)], self.patch, rng
        )
        return degraded, clean


@dataclass(frozen=True)
class RecipeBatch:
    """Clean windows (uint8, DEGRADE_MARGIN around the patch), their task indices, the
    recipes of their degradations and their dihedral views (turns * 2 + flip), for the device
    to degrade (`RecipeSamples`, `on_device`)."""

    windows: Tensor
    task: Tensor
    recipes: list[Recipe]
    views: list[int]

    def pin_memory(self) -> RecipeBatch:
        """What the DataLoader calls with pin_memory: the tensors in page-locked memory, so
        their copy to the GPU runs beside the step instead of before it."""
        return replace(self, windows=self.windows.pin_memory(), task=self.task.pin_memory())


class RecipeSamples(TrainingSamples):
    """Sample i as a clean window and the recipe of its degradation, drawn from
    `seeded_rng(seed, "sample", i)` like `TrainingSamples` (task, photo, crop, then the recipe
    and the view); the device degrades whole batches of them (`on_device`). Paired folders
    have nothing to degrade and stay with `TrainingSamples`."""

    def __getitem__(self, index: int) -> tuple[Tensor, int, Recipe, int]:  # type: ignore[override]
        rng = seeded_rng(self.seed, "sample", index)
        task = pick_task(self.mix, rng)
        window = self._clean_window(rng)
        recipe = draw_recipe(task_spec(task), window.shape[:2], rng)
        view = int(rng.integers(0, 8))
        return to_tensor(window), self.tasks.index(task), recipe, view

    @staticmethod
    def collate(items: Sequence[tuple[Tensor, int, Recipe, int]]) -> RecipeBatch:
        """The DataLoader's collate_fn: recipes and views stay host-side lists."""
        windows, tasks, recipes, views = zip(*items, strict=True)
        return RecipeBatch(torch.stack(windows), torch.tensor(tasks), list(recipes), list(views))


def dihedral(images: Tensor, views: Sequence[int]) -> Tensor:
    """Each (3, H, W) image of a batch in its view of the square's 8 symmetries: view // 2
    quarter turns (as numpy's rot90), then a left-right flip if view is odd."""
    out = torch.empty_like(images)
    for view in sorted(set(views)):
        positions = [i for i, v in enumerate(views) if v == view]
        index = torch.tensor(positions).to(images.device, non_blocking=True)
        turned = torch.rot90(images.index_select(0, index), view // 2, dims=(2, 3))
        out.index_copy_(0, index, turned.flip(3) if view % 2 else turned)
    return out


def on_device(
    batch: RecipeBatch, device: torch.device, patch: int, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """(degraded, clean, task) of a RecipeBatch, degraded on `device`: the patch cut from the
    centre of each degraded window, then turned to its view, as `TrainingSamples` does."""
    windows = batch.windows.to(device, non_blocking=True).float() / 255.0
    degraded, target = degrade_batch_pair(windows, batch.recipes, generator)
    core = slice(DEGRADE_MARGIN, DEGRADE_MARGIN + patch)
    pair = torch.cat([degraded[..., core, core], target[..., core, core]])
    turned = dihedral(pair, batch.views * 2)
    return turned[: len(batch.views)], turned[len(batch.views) :], batch.task


class SampleIndices(torch.utils.data.Sampler[int]):
    """Endless sample indices start, start + 1, ... (rank-strided under DDP)."""

    def __init__(self, start: int, rank: int = 0, world: int = 1) -> None:
        self.start, self.rank, self.world = start, rank, world

    def __iter__(self) -> Iterator[int]:
        index = self.start * self.world + self.rank
        while True:
            yield index
            index += self.world
