"""GPU inference speed of small and full, fp32 and bf16, at 256 and 512 px (MPix/s)."""

from __future__ import annotations

import time

import torch

from measr import build_model


def mpix_per_s(name: str, size: int, bf16: bool, repeats: int = 5) -> float:
    model = build_model(name).eval().cuda()
    x = torch.rand(1, 3, size, size, device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
        model(x)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
        torch.cuda.synchronize()
    return repeats * size * size / 1e6 / (time.perf_counter() - start)


if __name__ == "__main__":
    print(torch.cuda.get_device_name(), "torch", torch.__version__)
    for name in ("small", "full"):
        for size in (256, 512, 1024):
            for bf16 in (False, True):
                rate = mpix_per_s(name, size, bf16)
                print(f"{name:5s} {size:5d}px {'bf16' if bf16 else 'fp32'} {rate:8.2f} MPix/s")
