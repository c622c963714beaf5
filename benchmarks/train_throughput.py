"""Training throughput of a configuration on this machine: 128 px patches per second (and per
CPU-hour) for each training variant, measured in one process, alternating the variants and
keeping each one's best round, so that the ratios survive a busy machine.

Usage: python benchmarks/train_throughput.py [--config small] [--batch 8] [--patch 128]
           [--rounds 3] [--steps 2] [--threads 2] [--variants eager,channels_last,...]
Variants: eager (NCHW fp32, the baseline), channels_last, checkpointing (activation
checkpointing), compile (torch.compile of the model), bf16 (autocast on CPU), and
normalize_attention: eager with MDTA's attention map computed as before the change that
divides the small product by the norms (F.normalize of q and k), the "before" of that change.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor

from measr import build_model
from measr.model import MEASNet, backbone

Variant = Callable[[MEASNet, torch.Tensor, torch.Tensor], None]


def normalised_attention_map(q: Tensor, k: Tensor, heads: int, temperature: Tensor) -> Tensor:
    """MDTA's attention map as first written: normalised copies of q and k, then their product
    (the same function as `backbone.channel_attention_map`, the older arithmetic)."""
    b, c = q.shape[:2]
    qn = F.normalize(q.reshape(b, heads, c // heads, -1), dim=-1)
    kn = F.normalize(k.reshape(b, heads, c // heads, -1), dim=-1)
    return torch.softmax(qn @ kn.transpose(-2, -1) * temperature, dim=-1)


@contextmanager
def attention_map(function: Callable[..., Tensor] | None) -> Iterator[None]:
    """Run MDTA with `function` as its attention map inside the block (None: unchanged)."""
    current = backbone.channel_attention_map
    backbone.channel_attention_map = function or current
    try:
        yield
    finally:
        backbone.channel_attention_map = current


def make_step(
    model: MEASNet, channels_last: bool, bf16: bool, compiled: bool, old_attention: bool
) -> Variant:
    """One optimiser-free training step (forward, L1 + balance loss, backward) of a variant."""
    forward = torch.compile(model) if compiled else model
    memory = torch.channels_last if channels_last else torch.contiguous_format
    patch = normalised_attention_map if old_attention else None

    def step(_: MEASNet, degraded: torch.Tensor, clean: torch.Tensor) -> None:
        with attention_map(patch), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = forward(degraded.contiguous(memory_format=memory))
        loss = F.l1_loss(out.image.float(), clean) + 1e-3 * out.balance_loss.float()
        model.zero_grad(set_to_none=True)
        loss.backward()

    return step


def build_variants(config: str, names: list[str]) -> dict[str, tuple[MEASNet, Variant]]:
    """A freshly built model per variant (same seed), set up as the variant needs."""
    variants = {}
    for name in names:
        torch.manual_seed(0)
        model = build_model(config).train()
        if name == "channels_last":
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if name == "checkpointing":
            model.set_activation_checkpointing(True)
        step = make_step(
            model,
            channels_last=name == "channels_last",
            bf16=name == "bf16",
            compiled=name == "compile",
            old_attention=name == "normalize_attention",
        )
        variants[name] = (model, step)
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", default="eager,channels_last,checkpointing")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    degraded = torch.rand(args.batch, 3, args.patch, args.patch)
    clean = torch.rand(args.batch, 3, args.patch, args.patch)
    variants = build_variants(args.config, args.variants.split(","))
    for model, step in variants.values():  # warm-up (and compilation)
        step(model, degraded, clean)
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, (model, step) in variants.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step(model, degraded, clean)
            seconds = (time.perf_counter() - start) / args.steps
            best[name] = min(best.get(name, float("inf")), seconds)
    base = best[next(iter(best))]
    rows = []
    print(f"{args.config}, batch {args.batch} x {args.patch} px, {args.threads} threads, "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}")  # fmt: skip
    for name, seconds in best.items():
        rate = args.batch / seconds
        row = {
            "variant": name,
            "s_per_step": round(seconds, 3),
            "patches_per_s": round(rate, 3),
            "patches_per_cpu_hour": round(rate * 3600 / args.threads),
            "speedup": round(base / seconds, 3),
        }
        rows.append(row)
        print(f"{name:15s} {seconds:7.2f} s/step  {rate:6.2f} patches/s  "
              f"{row['patches_per_cpu_hour']:7d} per CPU-hour  x{row['speedup']:.2f}")  # fmt: skip
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
