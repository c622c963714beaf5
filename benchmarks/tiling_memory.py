"""Peak memory of tiled restoration: does a 12-megapixel photo fit in about the memory of a
1-megapixel one? Each point runs in a fresh process and reads its peak RSS (ru_maxrss).

    nice python benchmarks/tiling_memory.py --config small --sizes 1000x1000,4000x3000 --tiles 512

Random weights are fine: memory does not depend on their values. The target is the largest
size within 1.5x the peak of the smallest, for each tile setting.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

KIB_PER_MIB = 1024  # ru_maxrss is in KiB on Linux
TARGET_RATIO = 1.5


def measure(config: str, height: int, width: int, tile: int | None, threads: int) -> dict:
    """Restore one random image in this process, set up as the `measr` command sets up its own;
    the peak RSS before and after."""
    from measr.allocator import tune_process

    tune_process()
    import numpy as np
    import torch

    from measr import Restorer, build_model

    torch.manual_seed(0)
    restorer = Restorer(build_model(config), device="cpu", threads=threads)
    pixels = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MIB
    started = time.perf_counter()
    result = restorer.restore(pixels, tile=tile)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MIB
    return {
        "size": f"{width}x{height}",
        "tile": "auto" if tile is None else tile,
        "tiles": result.tiles,
        "tile_used": result.tile,
        "seconds": round(time.perf_counter() - started, 1),
        "before_mib": round(before),
        "peak_mib": round(peak),
    }


def run_point(config: str, size: str, tile: str, threads: int) -> dict:
    """One measurement in a fresh Python process, so earlier peaks do not count."""
    command = [sys.executable, __file__, "--worker", config, size, tile, str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    """A markdown table, with each peak relative to the smallest size's at the same tile."""
    smallest = {}
    for row in rows:
        smallest.setdefault(row["tile"], row["peak_mib"])
    lines = [
        "| size | --tile | tiles (side) | seconds | RSS before (MiB) | peak RSS (MiB) | vs first |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = row["peak_mib"] / smallest[row["tile"]]
        lines.append(
            f"| {row['size']} | {row['tile']} | {row['tiles']} ({row['tile_used'] or 'whole'}) "
            f"| {row['seconds']} | {row['before_mib']} | {row['peak_mib']} | {ratio:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        config, size, tile, threads = sys.argv[2:6]
        width, height = map(int, size.split("x"))
        print(
            json.dumps(
                measure(config, height, width, None if tile == "auto" else int(tile), int(threads))
            )
        )
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="small")
    parser.add_argument("--sizes", default="1000x1000,4000x3000", help="WxH, smallest first")
    parser.add_argument("--tiles", default="512", help="tile sides or 'auto', e.g. 512,auto")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    rows = []
    for tile in args.tiles.split(","):
        for size in args.sizes.split(","):
            rows.append(run_point(args.config, size, tile, args.threads))
            print(f"measured {size} --tile {tile}: {rows[-1]['peak_mib']} MiB", file=sys.stderr)
    print(f"config {args.config}, CPU, {args.threads} threads; target: within {TARGET_RATIO}x")
    print(table(rows))


if __name__ == "__main__":
    main()
