"""Does the task prompt of a large photo read what its tiles restore? And do tiles agree with
the whole photo on it?

A validation photo is enlarged to SIZE px (bicubic: a large, smooth photo) and damaged at that
size (seeded). The prompt's reading is taken (a) on the photo at full resolution, accumulated
over strips, as `measr restore` now does, and (b) on the photo shrunk to the shared-context side
(1024 px), as it did before. Then the photo is restored whole and in tiles sharing the global
context, and the two outputs are compared (PSNR between them, and each against the clean photo).

    python benchmarks/prompt_resolution.py --photo ../shared/data/val/kodak24/clean/kodim01.png \
        --size 2048 --spec noise:25 --tile 512
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np
import torch

from measr.degrade import apply_degradation, parse_spec, seeded_rng
from measr.engine import Restorer
from measr.engine.inference import context_image, prompt_features
from measr.engine.memory import MAX_CONTEXT_SIDE
from measr.evaluation.metrics import as_rgb, psnr, quantise
from measr.io import from_uint, read_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", required=True)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--spec", default="noise:25")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--whole", action="store_true", help="also restore whole and compare")
    args = parser.parse_args()

    clean = as_rgb(read_image(args.photo).pixels)
    clean = np.clip(cv2.resize(clean, (args.size, args.size), interpolation=cv2.INTER_CUBIC), 0, 1)
    rng = seeded_rng(0, args.photo, args.spec, args.size)
    degraded = from_uint(quantise(apply_degradation(clean, parse_spec(args.spec), rng)))
    restorer = Restorer.from_spec(args.weights, device="cpu", threads=args.threads)
    cpu, f32 = torch.device("cpu"), torch.float32
    image = torch.from_numpy(degraded)
    small = torch.from_numpy(np.ascontiguousarray(context_image(degraded, MAX_CONTEXT_SIDE)))
    with torch.inference_mode():
        full = restorer.damage_of(prompt_features(restorer.model, image, cpu, f32))
        shrunk = restorer.damage_of(prompt_features(restorer.model, small, cpu, f32))
    report: dict[str, object] = {
        "photo": args.photo,
        "size": args.size,
        "spec": args.spec,
        "weights": restorer.name,
        "prompt_full_resolution": full.to_dict() if full else None,
        f"prompt_shrunk_to_{MAX_CONTEXT_SIDE}": shrunk.to_dict() if shrunk else None,
        "input_psnr": psnr(degraded, clean),
    }
    started = time.perf_counter()
    tiled = restorer.restore(degraded, tile=args.tile)
    report["tiled"] = {
        "tiles": tiled.tiles,
        "seconds": round(time.perf_counter() - started, 1),
        "psnr": psnr(tiled.pixels, clean),
    }
    if args.whole:
        started = time.perf_counter()
        whole = restorer.restore(degraded, tile=args.size + 64)
        report["whole"] = {
            "tiles": whole.tiles,
            "seconds": round(time.perf_counter() - started, 1),
            "psnr": psnr(whole.pixels, clean),
        }
        report["tiled_vs_whole_psnr"] = psnr(tiled.pixels, whole.pixels)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
