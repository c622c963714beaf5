"""Whole photos on each backend, as a user's folder meets them: the photos restored one after
the other by one `Restorer` per backend, the backends alternating photo by photo in one process,
so that a busy machine slows them alike (docs/performance.md, "The default install").

    nice python benchmarks/runtimes.py --backends torch,openvino --threads 2 \
        ../shared/data/val/kodak24/clean/kodim0[1-4].png ../shared/data/val/mcmaster/clean/1.tif

Each backend's first photo is reported apart from the others: it includes what a process pays
once (OpenVINO: reading the converted network from the cache, or converting it when the cache is
empty, and compiling it for any shape). The photos' sizes vary, so every later photo runs on the
network compiled for any shape, as in a batch of mixed sizes. The outputs are compared with the
first backend's (PSNR over [0, 1] pixels).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from measr.allocator import tune_process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="+", type=Path)
    parser.add_argument("--backends", default="torch,openvino")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tile", type=int, default=None, help="tile side (default: the plan's)")
    args = parser.parse_args()
    tune_process()  # as the measr command does, before torch is imported

    from measr.engine import Restorer
    from measr.evaluation.metrics import unquantised_psnr
    from measr.io import read_image

    names = args.backends.split(",")
    restorers = {
        name: Restorer.from_name(device="cpu", threads=args.threads, backend=name) for name in names
    }
    times: dict[str, list[float]] = {name: [] for name in names}
    print("| photo | size | " + " | ".join(f"{n} s" for n in names) + " | tiles | PSNR dB |")
    print("|---|---|" + "---|" * (len(names) + 2))
    for index, path in enumerate(args.photos):
        image = read_image(path)
        outputs: dict[str, np.ndarray] = {}
        tiles = 1
        # Alternate which backend goes first, so neither always meets a warmer machine.
        order = names if index % 2 == 0 else names[::-1]
        for name in order:
            started = time.perf_counter()
            restoration = restorers[name].restore(image.pixels, tile=args.tile)
            times[name].append(time.perf_counter() - started)
            outputs[name] = restoration.pixels
            tiles = restoration.tiles
        agreement = min(unquantised_psnr(outputs[n], outputs[names[0]]) for n in names[1:])
        cells = " | ".join(f"{times[n][-1]:.2f}" for n in names)
        size = f"{image.width}x{image.height}"
        print(f"| {path.name} | {size} | {cells} | {tiles} | {agreement:.1f} |")
    print()
    for name in names:
        later = times[name][1:]
        rest = f"; later photos median {statistics.median(later):.2f} s" if later else ""
        print(f"{name}: first photo {times[name][0]:.2f} s{rest}; total {sum(times[name]):.1f} s")
    if len(names) == 2 and len(args.photos) > 1:
        a, b = names
        ratio = statistics.median(times[a][1:]) / statistics.median(times[b][1:])
        print(f"later photos, median {a} / median {b}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
