"""One speed measurement in a fresh interpreter: `python -m measr.evaluation.speed_worker` reads a
job as JSON on stdin and writes its answer as one JSON line on stdout.

A fresh process per point is what makes the CPU peak memory honest: `ru_maxrss` only ever
grows, so the peak of a point is only its own in a process that has run nothing larger.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import psutil
import torch
from torch.utils.flop_counter import FlopCounterMode

from measr.allocator import tune_process
from measr.engine.padding import pad_to_requirements, unpad
from measr.model import MEASNet, build_model

KIB_PER_MIB = 1024  # ru_maxrss is in KiB on Linux
FLOP_COUNT_SIDE = 512  # largest image the FLOPs are counted on (count_flops)


def _synchronise(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _reference(model: MEASNet, image: torch.Tensor) -> Callable[[], object]:
    """A plain eager float32 forward of the whole image (padded as the network needs)."""

    def forward() -> object:
        padded, info = pad_to_requirements(image, model.requirements)
        return unpad(model(padded).image, info)

    return forward


def _engine(
    model: MEASNet, image: torch.Tensor, tile: int | None, compile: bool
) -> Callable[[], object]:
    """What users get: the engine's Restorer on a float32 (H, W, 3) array."""
    from measr.engine import Restorer

    restorer = Restorer(model, device=str(image.device), compile=compile)
    pixels = image[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)
    return lambda: restorer.restore(pixels, tile=tile)


def _peak_memory_mib(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    if sys.platform == "win32":  # the peak working set; `resource` is POSIX-only
        return float(psutil.Process().memory_info().peak_wset) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MIB


def measure_model(job: dict[str, Any]) -> dict[str, Any]:
    """Warm-up runs, then `repeats` timed runs; peak memory above what the model and input
    already held; the model's FLOPs on the whole image when asked."""
    device = job["device"]
    model = build_model(job["config"]).eval().to(device)
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, job["size"], job["size"], generator=generator).to(device)
    if job["mode"] == "reference":
        forward = _reference(model, image)
    else:
        forward = _engine(model, image, job["tile"], compile=job["mode"] == "compiled")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
    else:
        before = _peak_memory_mib(device)
    try:
        for _ in range(job["warmup"]):
            forward()
        seconds = []
        for _ in range(job["repeats"]):
            _synchronise(device)
            start = time.perf_counter()
            forward()
            _synchronise(device)
            seconds.append(time.perf_counter() - start)
    except torch.OutOfMemoryError:
        return {"status": "out of memory"}
    answer: dict[str, Any] = {
        "status": "ok",
        "seconds": seconds,
        "peak_memory_mib": _peak_memory_mib(device) - before,
    }
    if job["count_flops"]:
        answer["flops"] = count_flops(model, job["size"], device)
    return answer


def count_flops(model: MEASNet, size: int, device: str) -> float:
    """The model's FLOPs on a size x size image. Counted on at most FLOP_COUNT_SIDE px and
    scaled by the pixel count: every layer's work is proportional to the pixels (the attention
    is across channels, the experts run k per pixel or per image), and a whole-image count at
    2048 px would need the memory that the reference runs out of."""
    side = min(size, FLOP_COUNT_SIDE)
    image = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0)).to(device)
    with FlopCounterMode(display=False) as counter:
        _reference(model, image)()
    return float(counter.get_total_flops()) * (size / side) ** 2


def measure_matmul(job: dict[str, Any]) -> dict[str, Any]:
    """The best time of a float32 square matmul (after one untimed run)."""
    device, size = job["device"], job["size"]
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(size, size, generator=generator).to(device)
    b = torch.rand(size, size, generator=generator).to(device)
    best = float("inf")
    for index in range(job["repeats"] + 1):
        _synchronise(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        _synchronise(device)
        if index:
            best = min(best, time.perf_counter() - start)
    return {"status": "ok", "best_seconds": best, "threads": torch.get_num_threads()}


def main() -> None:
    tune_process()  # measure the network as the `measr` command runs it
    job = json.loads(sys.stdin.read())
    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    # Float32 means float32: no TF32 shortcut in either the peak or the model.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    measure = measure_matmul if job["kind"] == "MatmulJob" else measure_model
    with torch.inference_mode():
        answer = measure(job)
    sys.stdout.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
