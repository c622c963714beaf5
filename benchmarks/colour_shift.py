"""Colour casts and edges per validation task: mean PSNR and mean colour shift (RGB in 8-bit
levels, CIELAB L*/a*/b*) of weights against the clean images, on the ship rule's validation crops
(`measr.training.validation.default_validation_set`, the network run on each crop as
`measr export --ship` scores it), with and without the engine's mirrored edge margin
(`InputRequirements.edge_margin`), as a markdown table (docs/results/colour-shift.md).

    nice python benchmarks/colour_shift.py --val ../shared/data/val --per-task 6 \
        --weights weights/small-5task.safetensors > docs/results/colour-shift.md

A shift whose sign holds over most images of a task is a cast; the 'same sign' column counts
the images whose a* (and b*) shift has the task's majority sign.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from measr.degrade import mix_weights
from measr.engine.padding import with_edge_margin, without_edge_margin
from measr.evaluation.metrics import ColourShift, colour_shift, psnr
from measr.model import MEASNet
from measr.training.validation import ValidationItem, default_validation_set
from measr.weights import load_model, read_metadata


def restore(model: MEASNet, degraded: np.ndarray, margin: int) -> np.ndarray:
    """The network on one (H, W, 3) crop, framed by a mirrored margin of `margin` px first."""
    framed = with_edge_margin(degraded, margin)
    x = torch.from_numpy(framed.transpose(2, 0, 1).copy())[None]
    with torch.no_grad():
        out = model(x).image[0].clamp(0, 1).permute(1, 2, 0).numpy()
    return without_edge_margin(out, margin)


def majority(values: Sequence[float]) -> int:
    """How many values share the more common sign."""
    signs = np.sign(values)
    return int(max((signs > 0).sum(), (signs < 0).sum()))


def task_row(task: str, items: list[ValidationItem], model: MEASNet, margin: int) -> str:
    """One markdown row: PSNR without and with the margin, input and output shifts."""
    plain = [restore(model, i.degraded, 0) for i in items]
    framed = [restore(model, i.degraded, margin) for i in items]
    shifts = [colour_shift(o, i.clean) for o, i in zip(plain, items, strict=True)]
    out = ColourShift.mean(shifts)
    given = ColourShift.mean([colour_shift(i.degraded, i.clean) for i in items])
    with_margin = ColourShift.mean(
        [colour_shift(o, i.clean) for o, i in zip(framed, items, strict=True)]
    )
    cells = [
        task,
        str(len(items)),
        f"{np.mean([psnr(o, i.clean) for o, i in zip(plain, items, strict=True)]):.2f}",
        f"{np.mean([psnr(o, i.clean) for o, i in zip(framed, items, strict=True)]):.2f}",
        f"{given.red:+.1f} {given.green:+.1f} {given.blue:+.1f}",
        f"{out.red:+.1f} {out.green:+.1f} {out.blue:+.1f}",
        f"{out.lightness:+.1f} {out.a:+.1f} {out.b:+.1f}",
        f"{given.lightness:+.1f} {given.a:+.1f} {given.b:+.1f}",
        f"{majority([s.a for s in shifts])}/{len(items)}, {majority([s.b for s in shifts])}"
        f"/{len(items)}",
        f"{with_margin.a:+.1f} {with_margin.b:+.1f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--val", type=Path, default=Path("../shared/data/val"))
    parser.add_argument("--weights", type=Path, default=Path("weights/small-5task.safetensors"))
    parser.add_argument("--tasks", default=None, help="task mix (default: the weights' own)")
    parser.add_argument("--per-task", type=int, default=6, help="photos per folder (0: all)")
    parser.add_argument("--crop", type=int, default=192)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.weights).eval()
    tasks = args.tasks or read_metadata(args.weights).get("tasks", "five:blur=2.5")
    items = default_validation_set(args.val, list(mix_weights(tasks)), args.crop, args.per_task)
    margin = model.requirements.edge_margin
    print(
        "| task | n | PSNR | PSNR, edge margin | input ΔR ΔG ΔB | output ΔR ΔG ΔB | "
        "output ΔL* Δa* Δb* | input ΔL* Δa* Δb* | same sign a*, b* | Δa* Δb*, edge margin |"
    )
    print("|" + "---|" * 10)
    for task in dict.fromkeys(i.task for i in items):
        print(task_row(task, [i for i in items if i.task == task], model, margin), flush=True)


if __name__ == "__main__":
    main()
