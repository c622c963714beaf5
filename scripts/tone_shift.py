"""Where weights move the tone of the ship rule's photos: per set, each weights' mean PSNR, and
every photo whose restored mean grey level lies more than a few levels from its clean target's
for any of them (PSNR and shift, grey levels 0-255). The photos and their scoring are the ship
rule's (192 px crops, eval mode, framed as `measr restore` frames them), so a loss found here is
a loss `measr export --ship` counts; all weights run in one process, so their numbers compare.

Usage: python scripts/tone_shift.py WEIGHTS [WEIGHTS ...] [--sets noise15,haze] [--levels 10]
    [--json OUT]
(weights: a name from weights.txt or a .safetensors file; data from ../shared/data/val or $VAL)
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from measr.degrade.tasks import mix_weights
from measr.engine import Restorer
from measr.evaluation.metrics import psnr
from measr.manifest import find_entry
from measr.training.validation import ValidationItem, default_validation_set, framed, restored

VAL = Path(os.environ.get("VAL", "../shared/data/val"))


@dataclass(frozen=True)
class Restored:
    """One weights' result on one photo."""

    psnr: float
    shift: float  # mean grey level of the output minus the clean target's, 0-255


def ship_sets() -> str:
    """The sets the ship rule decides on: the default weights' task mix (as `ship_decision`)."""
    return ",".join(mix_weights(find_entry(None).fields["tasks"]))


def restore_all(spec: str, items: list[ValidationItem]) -> list[Restored]:
    """`spec`'s result on every item, as the ship rule scores it."""
    model = Restorer.from_spec(spec, device="cpu", backend="torch").model.float().eval()
    run = framed(lambda x: model(x).image, model.requirements.edge_margin)
    with torch.no_grad():
        return [
            Restored(psnr(out, item.clean), float(out.mean() - item.clean.mean()) * 255)
            for item, out in zip(items, restored(items, run), strict=True)
        ]


def report(
    items: list[ValidationItem], results: dict[str, list[Restored]], levels: float
) -> dict[str, dict[str, object]]:
    """Per set: each weights' mean PSNR and the photos shifted by more than `levels`."""
    sets: dict[str, dict[str, object]] = {}
    for task in dict.fromkeys(item.task for item in items):
        rows = [i for i, item in enumerate(items) if item.task == task]
        means = {w: float(np.mean([r[i].psnr for i in rows])) for w, r in results.items()}
        shifted = {
            items[i].name: {w: asdict(r[i]) for w, r in results.items()}
            for i in rows
            if any(abs(r[i].shift) > levels for r in results.values())
        }
        sets[task] = {"photos": len(rows), "mean_psnr": means, "shifted": shifted}
    return sets


def print_report(sets: dict[str, dict[str, object]], weights: list[str]) -> None:
    for task, found in sets.items():
        means = found["mean_psnr"]
        assert isinstance(means, dict)
        line = "  ".join(f"{w}: {means[w]:.3f}" for w in weights)
        print(f"{task} ({found['photos']} photos)  {line}")
        shifted = found["shifted"]
        assert isinstance(shifted, dict)
        for name, by_weights in shifted.items():
            cells = "  ".join(
                f"{by_weights[w]['psnr']:6.2f} ({by_weights[w]['shift']:+6.1f})" for w in weights
            )
            print(f"    {name:16s} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("weights", nargs="+")
    parser.add_argument("--sets", default=ship_sets(), help="validation tasks to score")
    parser.add_argument("--levels", type=float, default=10.0, help="shift that lists a photo")
    parser.add_argument("--json", type=Path, default=None)
    options = parser.parse_args()
    torch.set_num_threads(1)
    items = default_validation_set(VAL, options.sets.split(","), 192, 0)
    results = {spec: restore_all(spec, items) for spec in options.weights}
    sets = report(items, results, options.levels)
    print_report(sets, options.weights)
    if options.json is not None:
        options.json.write_text(json.dumps(sets, indent=1) + "\n")


if __name__ == "__main__":
    main()
