"""Real damage beside the synthetic: photos taken with the damage and without it, and bursts of
sharp video frames averaged into real motion blur.

A training task can draw a share of its samples from such a source (`--real TASK=FOLDER`,
`--real-share`); the rest stay synthetic. A folder with `degraded/` and `clean/` is a set of
pairs; any other folder is a burst: consecutive sharp frames of one clip, sorted by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from measr.errors import MeasrError

# A burst sample averages this many consecutive frames (odd, so that one frame is the centre:
# the sharp target). 7-13 frames of a 240 fps clip are 29-54 ms of exposure, the range of the
# GoPro deblurring set (Nah et al. 2017), which averages 7-13 frames the same way.
BURST_LENGTHS = (7, 9, 11, 13)
# Frames are averaged in linear light: the camera's sensor integrates light, not code values.
DISPLAY_GAMMA = 2.2


class ImageSource(Protocol):
    """What a real source needs of the sample cache: an image as uint8 (H, W, 3) RGB."""

    def get_uint8(self, path: Path) -> np.ndarray: ...


def random_crop(images: list[np.ndarray], size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The same random size x size window of equally sized images (reflect-padded if smaller)."""
    h, w = images[0].shape[:2]
    if h < size or w < size:
        pad = ((0, max(size - h, 0)), (0, max(size - w, 0)), (0, 0))
        images = [np.pad(im, pad, mode="reflect") for im in images]
        h, w = images[0].shape[:2]
    top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return [im[top : top + size, left : left + size] for im in images]


def as_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0


def motion_blur_from_frames(frames: list[np.ndarray]) -> np.ndarray:
    """Real motion blur: the mean of consecutive sharp frames (float in [0, 1]) in linear
    light, back in display values."""
    linear = np.mean([np.power(frame, DISPLAY_GAMMA) for frame in frames], axis=0)
    return np.power(linear, 1.0 / DISPLAY_GAMMA).astype(np.float32)


@dataclass(frozen=True)
class PairedPhotos:
    """Photos taken with the damage and without it: (degraded, clean) files."""

    pairs: list[tuple[Path, Path]]

    def sample(
        self, cache: ImageSource, size: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        degraded_path, clean_path = self.pairs[int(rng.integers(0, len(self.pairs)))]
        degraded, clean = random_crop(
            [cache.get_uint8(degraded_path), cache.get_uint8(clean_path)], size, rng
        )
        return as_float(degraded), as_float(clean)


@dataclass(frozen=True)
class FrameBurst:
    """Consecutive sharp frames of one clip: a run of 7-13 of them averaged is a real motion
    blur, their centre frame its sharp target."""

    frames: list[Path]

    def __post_init__(self) -> None:
        if len(self.frames) < max(BURST_LENGTHS):
            raise MeasrError(
                f"a burst needs at least {max(BURST_LENGTHS)} consecutive frames, "
                f"not {len(self.frames)}",
                "point --real blur=FOLDER at a folder of consecutive video frames",
            )

    def sample(
        self, cache: ImageSource, size: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        length = int(rng.choice(BURST_LENGTHS))
        start = int(rng.integers(0, len(self.frames) - length + 1))
        run = [cache.get_uint8(path) for path in self.frames[start : start + length]]
        crops = [as_float(crop) for crop in random_crop(run, size, rng)]
        return motion_blur_from_frames(crops), crops[length // 2]


RealSource = PairedPhotos | FrameBurst
