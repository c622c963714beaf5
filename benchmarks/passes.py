"""One pass against `--passes auto` on the composite validation set (issue 35).

Each crop is restored once; auto then goes on from that same first pass (its first pass is
one pass's output, so it is computed once), and both are scored against the clean crop, with
the damaged input beside them. Per composite spec: mean PSNR / SSIM of the input, one pass and
auto, and auto's mean number of passes.

    python benchmarks/passes.py --weights FILE_OR_NAME --val ../shared/data/val \
        --crop 192 --per-task 2 --json docs/results/passes.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from measr.engine import Restoration, Restorer
from measr.engine.options import RestoreOptions
from measr.engine.passes import restore_in_passes
from measr.evaluation.metrics import psnr, ssim
from measr.training.validation import composite_validation_set, default_validation_set


class FirstPassKnown:
    """A Restorer whose first `restore` call returns a restoration already made (the same
    pixels one pass gives), so that auto's first pass is not computed twice."""

    def __init__(self, restorer: Restorer, first: Restoration) -> None:
        self.restorer = restorer
        self.first: Restoration | None = first

    def restore(self, pixels: np.ndarray, options: RestoreOptions, **keywords: Any) -> Restoration:
        first, self.first = self.first, None
        return first or self.restorer.restore(pixels, options, **keywords)

    def read_damage(self, pixels: np.ndarray) -> Any:
        return self.restorer.read_damage(pixels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None)
    parser.add_argument("--val", type=Path, default=Path("../shared/data/val"))
    parser.add_argument("--crop", type=int, default=192)
    parser.add_argument("--per-task", type=int, default=2)
    parser.add_argument("--singles", default="", help="also these single tasks, e.g. noise25,haze")
    parser.add_argument("--no-composites", action="store_true", help="the single tasks alone")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    restorer = Restorer.from_spec(args.weights, device="cpu", backend="torch")
    items = (
        [] if args.no_composites else composite_validation_set(args.val, args.crop, args.per_task)
    )
    if args.singles:
        tasks = args.singles.split(",")
        items += default_validation_set(args.val, tasks, args.crop, args.per_task)
    rows: dict[str, list[dict[str, float]]] = {}
    started = time.perf_counter()
    for number, item in enumerate(items, 1):
        one = restorer.restore(item.degraded)
        auto = restore_in_passes(
            FirstPassKnown(restorer, one),  # type: ignore[arg-type]
            item.degraded,
            RestoreOptions(passes=None),
        )
        scores = {"passes": float(len(auto.passes))}
        for name, pixels in (("input", item.degraded), ("one", one.pixels), ("auto", auto.pixels)):
            scores[f"{name}_psnr"] = psnr(pixels, item.clean)
            scores[f"{name}_ssim"] = ssim(pixels, item.clean)
        rows.setdefault(item.task, []).append(scores)
        print(
            f"{number}/{len(items)} {item.task} {item.name}: input {scores['input_psnr']:.2f} "
            f"one {scores['one_psnr']:.2f} auto {scores['auto_psnr']:.2f} dB in "
            f"{len(auto.passes)} passes ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    summary = {
        task: {key: float(np.mean([r[key] for r in group])) for key in group[0]}
        | {"photos": len(group)}
        for task, group in rows.items()
    }
    print("| set | photos | input | one pass | auto | auto passes |")
    print("|---|---|---|---|---|---|")
    for task, s in summary.items():
        print(
            f"| {task} | {s['photos']} | {s['input_psnr']:.2f} / {s['input_ssim']:.3f} | "
            f"{s['one_psnr']:.2f} / {s['one_ssim']:.3f} | {s['auto_psnr']:.2f} / "
            f"{s['auto_ssim']:.3f} | {s['passes']:.2f} |"
        )
    if args.json is not None:
        record = {"weights": restorer.name, "crop": args.crop, "per_task": args.per_task}
        args.json.write_text(json.dumps({**record, "sets": summary, "photos": rows}, indent=1))


if __name__ == "__main__":
    main()
