"""GPU inference speed of small and full at 256, 512 and 1024 px (MPix/s): the reference forward
(eager fp32, no engine levers), and the engine's model (fused experts, sync-free pixel experts)
in fp32, under bf16 autocast and in fp16 (what `measr restore --half` runs). Each line also
gives the output's PSNR against the reference's, so a fast path that changes the picture shows.

Usage: python3 scripts/device/gpu_speed.py [SECONDS]  (stops starting new points after SECONDS)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import torch

from measr import build_model
from measr.engine.acceleration import accelerate, default_acceleration
from measr.evaluation.metrics import psnr
from measr.model import MEASNet

Forward = Callable[[torch.Tensor], torch.Tensor]


def timed(forward: Forward, x: torch.Tensor, repeats: int = 5) -> tuple[float, torch.Tensor]:
    """(seconds per forward, output), after one untimed warm-up."""
    with torch.no_grad():
        out = forward(x)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            forward(x)
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats, out.float()


def psnr_db(a: torch.Tensor, b: torch.Tensor) -> float:
    """The project's PSNR (`measr.evaluation.metrics.psnr`) of two (1, 3, H, W) outputs."""
    as_image = lambda t: t[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy()  # noqa: E731
    return psnr(as_image(a), as_image(b))


def variants(reference: MEASNet, engine: MEASNet) -> dict[str, Forward]:
    """The forwards compared at each size; the fp16 one runs a half copy of the engine model."""
    half = build_model(engine.config.name).cuda().eval()
    half.load_state_dict(engine.state_dict())
    half = accelerate(half, default_acceleration(torch.device("cuda"))).half()

    def bf16(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return engine(x).image

    return {
        "reference fp32": lambda x: reference(x).image,
        "engine fp32": lambda x: engine(x).image,
        "engine bf16 autocast": bf16,
        "engine fp16 (--half)": lambda x: half(x.half()).image,
    }


def main(budget_s: float) -> None:
    print(torch.cuda.get_device_name(), "torch", torch.__version__, flush=True)
    start = time.perf_counter()
    for name in ("small", "full"):
        torch.manual_seed(0)
        reference = build_model(name).cuda().eval()
        engine = build_model(name).cuda().eval()
        engine.load_state_dict(reference.state_dict())
        accelerate(engine, default_acceleration(torch.device("cuda")))
        forwards = variants(reference, engine)
        for size in (256, 512, 1024):
            x = torch.rand(1, 3, size, size, device="cuda")
            base_s, base_out = 0.0, x
            for label, forward in forwards.items():  # the reference first: the base
                if time.perf_counter() - start > budget_s:
                    print("time budget spent, stopping", flush=True)
                    return
                seconds, out = timed(forward, x)
                if label == "reference fp32":
                    base_s, base_out = seconds, out
                rate = size * size / 1e6 / seconds
                print(
                    f"{name:5s} {size:5d}px {label:22s} {rate:8.2f} MPix/s "
                    f"{base_s / seconds:5.2f}x  peak {torch.cuda.max_memory_allocated() >> 20} MiB "
                    f"PSNR vs reference {psnr_db(out, base_out):.1f} dB",
                    flush=True,
                )
                torch.cuda.reset_peak_memory_stats()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
