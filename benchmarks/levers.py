"""Which speed levers pay: variants of one forward pass timed in the same process, alternating,
best of N, so that their ratios survive a busy machine (docs/performance.md).

    OMP_WAIT_POLICY=PASSIVE nice python benchmarks/levers.py --config small --size 256 \
        --variants reference,fused,strips,compiled,compiled-strips --repeats 5

Every variant is checked against the reference output (PSNR in dB over [0, 1] pixels).
The first call of a compiled variant (compilation, or loading from inductor's cache) is
reported separately.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch
import torch._inductor.config
from torch import Tensor

from measr.engine.acceleration import Acceleration, accelerate, compile_steps, prepare_input
from measr.evaluation.metrics import unquantised_psnr
from measr.model import MEASNet, build_model
from measr.model.fast import fuse_experts
from measr.model.strips import stripe_blocks
from measr.weights import load_model

Forward = Callable[[], Tensor]


def fresh_model(config: str, weights: str | None) -> MEASNet:
    if weights:
        return load_model(weights).eval()
    torch.manual_seed(0)
    return build_model(config).eval()


def variant(name: str, model: MEASNet, x: Tensor) -> Forward:
    """One lever setting as a zero-argument forward."""
    if name == "reference":
        return lambda: model(x).image
    if name == "fused":
        fuse_experts(model)
        return lambda: model(x).image
    if name == "fused-cl":
        fuse_experts(model)
        model.to(memory_format=torch.channels_last)
        xc = x.contiguous(memory_format=torch.channels_last)
        return lambda: model(xc).image
    if name == "strips":
        accelerate(model, Acceleration(row_strips=True))
        return lambda: model(x).image
    if name.startswith("strips-") and name.removeprefix("strips-").isdigit():
        # Row strips whose widest map is at most this many KiB (measr's default: 8192).
        fuse_experts(model)
        stripe_blocks(model, budget=int(name.removeprefix("strips-")) * 2**10)
        return lambda: model(x).image
    if name == "compiled-strips":
        acceleration = Acceleration(compile=True, row_strips=True)
        accelerate(model, acceleration)
        xc = prepare_input(x, acceleration)
        return lambda: model(xc).image
    if name == "compiled-nchw":
        fuse_experts(model)
        compile_steps(model)
        return lambda: model(x).image
    if name == "compiled":
        acceleration = Acceleration(compile=True)
        accelerate(model, acceleration)
        xc = prepare_input(x, acceleration)
        return lambda: model(xc).image
    if name == "compiled-frozen":
        # Inductor's freezing: weights become constants, convolutions and linears are
        # pre-packed for oneDNN. Read when a graph compiles, so list this variant last.
        torch._inductor.config.freezing = True
        acceleration = Acceleration(compile=True)
        accelerate(model, acceleration)
        xc = prepare_input(x, acceleration)
        return lambda: model(xc).image
    if name.endswith("-bf16"):
        # Any variant under bf16 autocast (AMX matmuls and convolutions on recent Xeons).
        fp32_forward = variant(name.removesuffix("-bf16"), model, x)

        def forward() -> Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return fp32_forward().float()

        return forward
    raise SystemExit(f"unknown variant {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="small")
    parser.add_argument("--weights", default=None, help="a .safetensors file (default: random)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--variants", default="reference,fused,compiled")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    names = args.variants.split(",")
    forwards: dict[str, Forward] = {}
    first: dict[str, float] = {}
    outputs: dict[str, Tensor] = {}
    with torch.inference_mode():
        for name in names:
            forwards[name] = variant(name, fresh_model(args.config, args.weights), x)
            start = time.perf_counter()
            outputs[name] = forwards[name]()
            first[name] = time.perf_counter() - start
        best = dict.fromkeys(names, math.inf)
        for _ in range(args.repeats):
            for name in names:
                start = time.perf_counter()
                forwards[name]()
                best[name] = min(best[name], time.perf_counter() - start)
    reference = names[0]
    print(
        f"{args.config} {args.batch}x{args.size}px, {args.threads} thread(s), best of "
        f"{args.repeats}, ratios to '{reference}'\n"
    )
    print("| variant | first call s | best s | MPix/s | x ref | PSNR vs ref dB |")
    print("|---|---|---|---|---|---|")
    megapixels = args.batch * args.size**2 / 1e6
    for name in names:
        agreement = unquantised_psnr(
            outputs[name].float().numpy(), outputs[reference].float().numpy()
        )
        print(
            f"| {name} | {first[name]:.1f} | {best[name]:.3f} | {megapixels / best[name]:.3f} "
            f"| {best[reference] / best[name]:.2f} | {agreement:.1f} |"
        )


if __name__ == "__main__":
    main()
