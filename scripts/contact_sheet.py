"""Contact sheet of every degradation at two or three strengths, for docs/degradations.md.

Run from the repository root:  python scripts/contact_sheet.py
It reads a 256x256 crop of a Kodak24 image, applies each degradation with a fixed seed and
writes a labelled grid as JPEG (default docs/degradations.jpg).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from measr.degrade import (  # noqa: E402
    add_camera_noise,
    add_defocus_blur,
    add_gaussian_noise,
    add_haze,
    add_jpeg,
    add_linear_blur,
    add_low_light,
    add_motion_blur,
    add_rain,
    apply_degradation,
    darken_scene,
    seeded_rng,
)

KODAK = Path("/work/shared/data/val/kodak24/clean")
DEFAULT_IMAGE = KODAK / "kodim21.png"
DEFAULT_CROP = (100, 40)  # x, y of the top-left corner: lighthouse, houses, sky and rocks
TILE = 256
LABEL_HEIGHT = 26

Degrade = Callable[[np.ndarray, np.random.Generator], np.ndarray]

# (label, family, function): tiles of one family share a seed, so with fixed strengths they
# differ only in the strength (both haze tiles use the same depth map, for instance).
TILES: list[tuple[str, str, Degrade]] = [
    ("clean", "clean", lambda img, rng: img.copy()),
    ("noise:15", "noise", lambda img, rng: add_gaussian_noise(img, 15, rng)),
    ("noise:25", "noise", lambda img, rng: add_gaussian_noise(img, 25, rng)),
    ("noise:50", "noise", lambda img, rng: add_gaussian_noise(img, 50, rng)),
    ("rain (light)", "rain", lambda img, rng: add_rain(img, rng)),
    ("rain:heavy", "rain", lambda img, rng: add_rain(img, rng, heavy=True)),
    ("haze beta 0.6", "haze", lambda img, rng: add_haze(img, rng, beta=0.6, airlight=0.85)),
    ("haze beta 1.8", "haze", lambda img, rng: add_haze(img, rng, beta=1.8, airlight=0.85)),
    ("motion blur 11px", "motion", lambda img, rng: add_motion_blur(img, rng, size=11)),
    ("motion blur 29px", "motion", lambda img, rng: add_motion_blur(img, rng, size=29)),
    ("defocus r=2", "defocus", lambda img, rng: add_defocus_blur(img, rng, radius=2.0)),
    ("defocus r=6", "defocus", lambda img, rng: add_defocus_blur(img, rng, radius=6.0)),
    ("lowlight mild", "lowlight", lambda img, rng: add_low_light(img, rng, gain=0.3, gamma=1.5)),
    ("lowlight strong", "lowlight", lambda img, rng: add_low_light(img, rng, gain=0.08, gamma=2.5)),
    ("jpeg:60", "jpeg", lambda img, rng: add_jpeg(img, 60, rng)),
    ("jpeg:20", "jpeg", lambda img, rng: add_jpeg(img, 20, rng)),
    ("haze: even veil", "veil", lambda img, rng: add_haze(img, rng, form="veil", airlight=0.85)),
    ("haze: height", "height", lambda img, rng: add_haze(img, rng, form="height", airlight=0.85)),
    ("haze: coloured", "colour", lambda img, rng: add_haze(img, rng, form="depth", colour=True)),
    (
        "linear blur 15px 30deg",
        "linear",
        lambda img, rng: add_linear_blur(img, rng, length=15, angle=30),
    ),
    ("camnoise shot 1e-3", "camnoise", lambda img, rng: add_camera_noise(img, rng, shot=1e-3)),
    ("camnoise shot 1e-2", "camnoise", lambda img, rng: add_camera_noise(img, rng, shot=1e-2)),
    ("dark scene (target)", "dark", lambda img, rng: darken_scene(img, rng, level=0.12)),
    (
        "lowlight+haze+rain",
        "composite",
        lambda img, rng: apply_degradation(img, "lowlight+haze+rain", rng),
    ),
]


def load_crop(path: Path, x: int, y: int, size: int = TILE) -> np.ndarray:
    """A size x size crop at (x, y) of an image file, as float32 RGB in [0, 1]."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cannot read {path}")
    crop = bgr[y : y + size, x : x + size]
    if crop.shape[:2] != (size, size):
        raise SystemExit(f"crop ({x}, {y}) of size {size} does not fit in {path} {bgr.shape[:2]}")
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def labelled(tile: np.ndarray, label: str) -> np.ndarray:
    """uint8 BGR tile with its label on a dark strip above it."""
    bgr = cv2.cvtColor(np.rint(np.clip(tile, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    strip = np.full((LABEL_HEIGHT, bgr.shape[1], 3), 32, dtype=np.uint8)
    cv2.putText(
        strip, label, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA
    )
    return np.vstack([strip, bgr])


def contact_sheet(img: np.ndarray, seed: int, columns: int = 4) -> np.ndarray:
    """uint8 BGR grid of every tile in TILES applied to img, each with its own seeded rng."""
    tiles = [
        labelled(degrade(img, seeded_rng(seed, family)), label) for label, family, degrade in TILES
    ]
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (-len(tiles) % columns)
    rows = [np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)]
    return np.vstack(rows)


def main(argv: list[str] | None = None) -> None:
    """Write the contact sheet; see --help."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--crop", type=int, nargs=2, default=DEFAULT_CROP, metavar=("X", "Y"))
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--quality", type=int, default=85)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "degradations.jpg")
    args = parser.parse_args(argv)
    sheet = contact_sheet(load_crop(args.image, *args.crop), args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), sheet, [cv2.IMWRITE_JPEG_QUALITY, args.quality]):
        raise SystemExit(f"cannot write {args.out}")
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
