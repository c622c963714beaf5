"""The README's picture: for each task, a crop of the degraded input, measr's restoration, the
task's classical baseline (where there is one) and the clean photo, side by side.

Usage: python scripts/comparison_figure.py [OUT.jpg] [--weights NAME|PATH]
Reads the validation data from ../shared/data/val (or $VAL); synthetic degradations use the same
seeds as `measr benchmark quality` (seed 0).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np

from measr.degrade import parse_spec
from measr.evaluation.methods import build_methods
from measr.evaluation.metrics import as_rgb, psnr, quantise
from measr.evaluation.sets import synthesise
from measr.io import read_image

CROP = 176
VAL = Path(os.environ.get("VAL", "../shared/data/val"))

# (label, clean photo or paired folder, spec, baseline, crop top-left)
PANELS = [
    ("noise s25", VAL / "mcmaster/clean/01.png", "noise:25", "ffdnet", (150, 150)),
    ("rain", VAL / "kodak24/clean/kodim13.png", "rain", None, (160, 160)),
    ("haze", VAL / "kodak24/clean/kodim21.png", "haze", "dcp", (150, 150)),
    ("low light", VAL / "kodak24/clean/kodim23.png", "lowlight", "autogamma", (120, 200)),
    ("blur (real)", VAL / "deblur-camshake", "blur", None, (150, 300)),
    ("haze (ITS)", VAL / "dehaze-its-sample", "haze", "dcp", (150, 200)),
]


def pair(source: Path, spec: str) -> tuple[np.ndarray, np.ndarray]:
    """(degraded, clean) float RGB for a clean photo (synthesised) or a paired folder."""
    if source.is_dir():
        name = sorted((source / "degraded").iterdir())[0].name
        degraded = as_rgb(read_image(source / "degraded" / name).pixels)
        return degraded, as_rgb(read_image(source / "clean" / name).pixels)
    clean = as_rgb(read_image(source).pixels)
    return synthesise(clean, parse_spec(spec), 0, source.name), clean


def label(tile: np.ndarray, text: str) -> np.ndarray:
    """An 8-bit BGR tile with a caption bar."""
    out = cv2.cvtColor(quantise(tile), cv2.COLOR_RGB2BGR)
    bar = np.full((18, out.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, out])


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/results/comparison.jpg")
    weights = sys.argv[sys.argv.index("--weights") + 1] if "--weights" in sys.argv else None
    methods = {
        m.name: m for m in build_methods(["measr", "ffdnet", "dcp", "autogamma"], weights=weights)
    }
    rows = []
    for title, source, spec, baseline, (top, left) in PANELS:
        degraded, clean = pair(source, spec)
        parsed = parse_spec(spec)
        restored = methods["measr"].restore(degraded, parsed)
        window = (slice(top, top + CROP), slice(left, left + CROP))
        tiles = [label(degraded[window], f"{title}: input {psnr(degraded, clean):.1f} dB")]
        tiles.append(label(restored[window], f"measr {psnr(restored, clean):.1f} dB"))
        if baseline:
            other = methods[baseline].restore(degraded, parsed)
            tiles.append(label(other[window], f"{baseline} {psnr(other, clean):.1f} dB"))
        else:
            tiles.append(label(np.ones_like(clean[window]), "(no classical baseline)"))
        tiles.append(label(clean[window], "clean"))
        rows.append(np.hstack(tiles))
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
