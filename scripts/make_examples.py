"""Regenerate the example inputs in examples/ from Kodak24 photos with fixed seeds.

Run from the repository root:  python scripts/make_examples.py
  examples/kodim_hazy.jpg   kodim13 (500x500) with add_haze beta 1.4, seed 13, JPEG quality 92
  examples/kodim_noisy.png  256x256 crop of kodim23 with Gaussian noise sigma 25, seed 23
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from measr.degrade import add_gaussian_noise, add_haze, seeded_rng  # noqa: E402

KODAK = Path("/work/shared/data/val/kodak24/clean")
HAZY_SOURCE, HAZY_SEED, HAZY_BETA, HAZY_QUALITY = "kodim13.png", 13, 1.4, 92
NOISY_SOURCE, NOISY_SEED, NOISY_SIGMA = "kodim23.png", 23, 25.0
NOISY_CROP = (244, 90, 256)  # x, y, side: the red macaw's head
MAX_BYTES = 200 * 1024


def read_rgb(path: Path) -> np.ndarray:
    """An image file as float32 RGB in [0, 1]."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cannot read {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def write_rgb(path: Path, img: np.ndarray, params: list[int]) -> None:
    """Write float RGB in [0, 1] as 8 bits; fail if the file is over MAX_BYTES."""
    bgr = cv2.cvtColor(np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), bgr, params):
        raise SystemExit(f"cannot write {path}")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{path} is {size // 1024} KB, over the {MAX_BYTES // 1024} KB limit")
    print(f"wrote {path} ({size // 1024} KB)")


def make_hazy(kodak: Path, out_dir: Path) -> None:
    """examples/kodim_hazy.jpg: the whole photo with beta-1.4 haze from a fixed seed."""
    rng = seeded_rng(HAZY_SEED, HAZY_SOURCE, "haze")
    hazy = add_haze(read_rgb(kodak / HAZY_SOURCE), rng, beta=HAZY_BETA)
    write_rgb(out_dir / "kodim_hazy.jpg", hazy, [cv2.IMWRITE_JPEG_QUALITY, HAZY_QUALITY])


def make_noisy(kodak: Path, out_dir: Path) -> None:
    """examples/kodim_noisy.png: a 256x256 crop with sigma-25 Gaussian noise, 8-bit PNG."""
    x, y, side = NOISY_CROP
    crop = read_rgb(kodak / NOISY_SOURCE)[y : y + side, x : x + side]
    rng = seeded_rng(NOISY_SEED, NOISY_SOURCE, "noise:25")
    noisy = add_gaussian_noise(crop, NOISY_SIGMA, rng)
    write_rgb(out_dir / "kodim_noisy.png", noisy, [cv2.IMWRITE_PNG_COMPRESSION, 9])


def main(argv: list[str] | None = None) -> None:
    """Write both examples; see --help."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", type=Path, default=KODAK, help="folder with kodimNN.png")
    parser.add_argument("--out", type=Path, default=ROOT / "examples")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    make_hazy(args.kodak, args.out)
    make_noisy(args.kodak, args.out)


if __name__ == "__main__":
    main()
