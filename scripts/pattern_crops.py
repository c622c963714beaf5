"""The grid several weights leave in flat areas (amplitude at periods 2 and 8, grey levels), on
more crops than scripts/pattern_stages.py: the flattest 256 px window of the first 8 Kodak24
photos with haze and with noise sigma 25 (seed 0, as the benchmark degrades them) and of every
RESIDE ITS pair, each crop with flat blocks. All weights run in one process (plain PyTorch,
float32, CPU), so their numbers compare.

Usage: python scripts/pattern_crops.py WEIGHTS [WEIGHTS ...] [--json OUT.json]
(weights: a name from weights.txt or a .safetensors file; data from ../shared/data/val or $VAL)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from pattern_stages import VAL, best_window, restore

from measr.degrade import parse_spec
from measr.engine import Restorer
from measr.evaluation.metrics import as_rgb
from measr.evaluation.pattern import flat_blocks, periodic_pattern
from measr.evaluation.sets import synthesise_pair
from measr.io import read_image

SIDE = 256
KODAK_PHOTOS = 8
SYNTHETIC = ("haze", "noise:25")

Crop = tuple[str, np.ndarray, np.ndarray]  # (kind, degraded, clean)


def window(clean: np.ndarray) -> tuple[slice, slice]:
    top, left = best_window(clean, SIDE)
    return slice(top, top + SIDE), slice(left, left + SIDE)


def crops() -> list[Crop]:
    found: list[Crop] = []
    for path in sorted((VAL / "kodak24" / "clean").iterdir())[:KODAK_PHOTOS]:
        clean = as_rgb(read_image(path).pixels)
        where = window(clean)
        for spec in SYNTHETIC:
            degraded, target = synthesise_pair(clean, parse_spec(spec), 0, path.name)
            found.append((spec, degraded[where], target[where]))
    pairs = VAL / "dehaze-its-sample"
    for path in sorted((pairs / "clean").iterdir()):
        clean = as_rgb(read_image(path).pixels)
        degraded = as_rgb(read_image(pairs / "degraded" / path.name).pixels)
        where = window(clean)
        found.append(("its", degraded[where], clean[where]))
    return [crop for crop in found if flat_blocks(crop[2])]


def mean_pattern(amplitudes: dict[str, list[tuple[float, float]]]) -> dict[str, list[float]]:
    """Mean (period 2, period 8) per kind of crop and over all of them."""
    means = {kind: np.mean(rows, axis=0).round(3).tolist() for kind, rows in amplitudes.items()}
    every = [row for rows in amplitudes.values() for row in rows]
    means["all"] = np.mean(every, axis=0).round(3).tolist()
    return means


def pattern_of(images: list[np.ndarray], found: list[Crop]) -> dict[str, list[float]]:
    """The mean pattern of `images`, one per crop of `found`, over each crop's flat blocks."""
    amplitudes: dict[str, list[tuple[float, float]]] = {}
    for image, (kind, _, clean) in zip(images, found, strict=True):
        pattern = periodic_pattern(image, clean)
        assert pattern is not None  # crops() keeps crops with flat blocks
        amplitudes.setdefault(kind, []).append((pattern.period2, pattern.period8))
    return mean_pattern(amplitudes)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("weights", nargs="+")
    parser.add_argument("--json", type=Path, default=None)
    options = parser.parse_args()
    torch.set_num_threads(1)
    found = crops()
    kinds = dict.fromkeys(kind for kind, _, _ in found)
    counts = {kind: sum(c[0] == kind for c in found) for kind in kinds}
    report: dict[str, object] = {"crops": counts}
    report["clean"] = pattern_of([clean for _, _, clean in found], found)
    print("clean", report["clean"], counts, flush=True)
    for spec in options.weights:
        model = Restorer.from_spec(spec, device="cpu", backend="torch").model.float().eval()
        outputs = [restore(model, degraded) for _, degraded, _ in found]
        report[spec] = pattern_of(outputs, found)
        print(spec, report[spec], flush=True)
    if options.json is not None:
        options.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
