"""Training throughput on this machine.

With --device (cpu or cuda): the whole training loop, as `measr train` runs it (data loader,
degradation on the device or with numpy in the loader, bf16 autocast and fused AdamW on CUDA,
EMA), for each configuration at 128 px: patches per second, and the TFLOP/s that reaches,
against a matrix product timed in the same run (bf16 on CUDA, fp32 on the CPU).

    python benchmarks/train_throughput.py --device cuda [--configs small,full] [--batch 64]
        [--batches 64,128] [--steps 30] [--warmup 5] [--degrade device,host] [--compile]
        [--json FILE]

The FLOPs of a step are three times the forward's, counted by torch's FlopCounterMode (matrix
products and convolutions) on one batch; the rate is that count times the steps over their
time.

With --degrade-cost: the process CPU time per sample of each training task's degradation,
numpy (one image at a time, as the CPU loader runs it) against the batched torch version on
this CPU, on 176 px windows (the 128 px patch and its margin).

    python benchmarks/train_throughput.py --degrade-cost [--batch 8] [--threads 1]

Without --device: one optimiser-free step of several variants of the model on the CPU,
alternating the variants and keeping each one's best round, so that the ratios survive a busy
machine.

    python benchmarks/train_throughput.py [--config small] [--batch 8] [--patch 128]
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
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from measr import build_model
from measr.degrade import TASK_SPECS, apply_degradation, seeded_rng
from measr.degrade.batched import degrade_batch, draw_recipe
from measr.model import MEASNet, backbone
from measr.training.data import DEGRADE_MARGIN
from measr.training.trainer import TrainConfig, Trainer

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


def matmul_tflops(device: torch.device, seconds: float = 2.0) -> float:
    """TFLOP/s of a large matrix product on random data: bf16 8192^3 on CUDA, fp32 2048^3 on the
    CPU (after warm-ups; the median of repeats within about `seconds`)."""
    cuda = device.type == "cuda"
    size, dtype = (8192, torch.bfloat16) if cuda else (2048, torch.float32)
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    times = []
    for repeat in range(100):
        wait(device)
        start = time.perf_counter()
        a @ b
        wait(device)
        if repeat >= 2:  # warm-ups
            times.append(time.perf_counter() - start)
        if sum(times) > seconds:
            break
    return 2 * size**3 / float(np.median(times)) / 1e12


def wait(device: torch.device) -> None:
    """Let the device finish what was queued, so a host clock measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def photo_folder(root: Path, count: int = 12, size: int = 320) -> None:
    """Photo-like PNGs (smooth colours, edges, texture) to train on when no --data is given."""
    rng = np.random.default_rng(0)
    for i in range(count):
        small = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
        image = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
        noise = rng.integers(0, 24, image.shape).astype(np.uint8)
        cv2.imwrite(str(root / f"photo{i}.png"), cv2.add(image, noise))


def step_flops(trainer: Trainer, batch: tuple[Tensor, Tensor, Tensor]) -> float:
    """FLOPs of one training step on `batch`: the forward's matrix products and convolutions
    as FlopCounterMode counts them, times 3 for forward and backward (the backward costs about
    twice the forward). The backward is not counted directly: torch's counter charges a grouped
    convolution's backward as if it were dense, ~40x too much for this network's depthwise
    convolutions (torch 2.13)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter, trainer._autocast():
        trainer.model(batch[0].to(trainer.device))
    return 3.0 * counter.get_total_flops()


def time_loop(
    args: argparse.Namespace, config: str, batch: int, degrade: str, data: Path, run_dir: Path
) -> dict[str, object]:
    """Patches/s and TFLOP/s of the training loop of one configuration at one batch size."""
    settings = TrainConfig(
        config=config, tasks="five", data=[str(data)], steps=10**6, batch=batch,
        patch=args.patch, workers=args.workers, device=args.device,
        degrade_on_device=degrade == "device", compile=args.compile,
        prompt_weight=args.prompt_weight, channels_last=args.channels_last,
    )  # fmt: skip
    trainer = Trainer(settings, run_dir)
    batches = trainer.batches()
    flops = step_flops(trainer, next(batches))
    for _ in range(args.warmup):  # compilation, autotuning, the loader's first batches
        trainer.train_step(*next(batches))
        trainer.step += 1
    wait(trainer.device)
    start = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step(*next(batches))
        trainer.step += 1
    wait(trainer.device)
    seconds = (time.perf_counter() - start) / args.steps
    return {
        "config": config,
        "degrade": degrade,
        "batch": batch,
        "patch": args.patch,
        "s_per_step": round(seconds, 4),
        "patches_per_s": round(batch / seconds, 2),
        "gflop_per_patch": round(flops / batch / 1e9, 2),
        "tflops": round(flops / seconds / 1e12, 4),
    }


def loop_main(args: argparse.Namespace) -> None:
    """Time the whole training loop of each configuration on --device."""
    device = torch.device(args.device)
    if device.type == "cpu" and args.threads:
        torch.set_num_threads(args.threads)
    reference = matmul_tflops(device)
    kind = "bf16 8192^3" if device.type == "cuda" else "fp32 2048^3"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"{name or platform.machine()}, torch {torch.__version__}, matmul {kind}: "
          f"{reference:.2f} TFLOP/s")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "photos"
            data.mkdir()
            photo_folder(data)
        batches = [int(b) for b in (args.batches or str(args.batch)).split(",")]
        runs = [(c, b, d) for c in args.configs.split(",") for b in batches
                for d in args.degrade.split(",")]  # fmt: skip
        for config, batch, degrade in runs:
            run_dir = Path(tmp) / f"{config}-{batch}-{degrade}"
            try:
                row = time_loop(args, config, batch, degrade, data, run_dir)
            except torch.OutOfMemoryError:
                torch.cuda.empty_cache()
                print(f"{config:6s} degrade on {degrade:6s} batch {batch}: out of memory")
                continue
            row["of_matmul"] = round(float(row["tflops"]) / reference, 5)  # type: ignore[arg-type]
            rows.append(row)
            if args.json:  # after every row: a run stopped by a time limit keeps what it timed
                with open(args.json, "w") as handle:
                    summary = {"args": vars(args) | {"data": str(args.data)}, "rows": rows}
                    json.dump(summary | {"matmul_tflops": reference}, handle, indent=1)
            print(f"{config:6s} degrade on {degrade:6s} batch {batch} x {args.patch} px: "
                  f"{row['patches_per_s']:8.2f} patches/s, {row['s_per_step']:.3f} s/step, "
                  f"{row['gflop_per_patch']} GFLOP/patch, {row['tflops']} TFLOP/s "
                  f"({100 * float(row['of_matmul']):.2f} % of the matmul)")  # fmt: skip


def cpu_ms_per_sample(run: Callable[[], object], samples: int, repeats: int = 2) -> float:
    """Process CPU milliseconds per sample of `run` (after one untimed call)."""
    run()
    start = time.process_time()
    for _ in range(repeats):
        run()
    return (time.process_time() - start) / repeats / samples * 1000


def degrade_cost_main(args: argparse.Namespace) -> None:
    """CPU time per sample of each task's degradation, numpy against batched torch."""
    torch.set_num_threads(args.threads)
    side = args.patch + 2 * DEGRADE_MARGIN
    images = torch.rand(args.batch, 3, side, side)
    arrays = [im.permute(1, 2, 0).numpy().copy() for im in images]
    print(f"{args.batch} windows of {side} px, {args.threads} thread(s), CPU ms per sample")
    for task, spec in TASK_SPECS.items():

        def numpy_run(spec: str = spec) -> None:
            for i, array in enumerate(arrays):
                apply_degradation(array, spec, seeded_rng(0, i))

        numpy_ms = cpu_ms_per_sample(numpy_run, args.batch)
        try:
            recipes = [draw_recipe(spec, (side, side), seeded_rng(0, i)) for i in range(args.batch)]
        except ValueError:  # no batched twin (JPEG, phone noise)
            print(f"{task:10s} numpy {numpy_ms:6.1f}  torch batched      -")
            continue

        def torch_run(recipes: list = recipes) -> None:
            degrade_batch(images, recipes, torch.Generator().manual_seed(0))

        torch_ms = cpu_ms_per_sample(torch_run, args.batch)
        print(f"{task:10s} numpy {numpy_ms:6.1f}  torch batched {torch_ms:6.1f}")


def variants_main(args: argparse.Namespace) -> None:
    """Time one optimiser-free step of each model variant on the CPU."""
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], help="time the whole loop here")
    parser.add_argument("--configs", default="small,full", help="with --device")
    parser.add_argument("--batches", help="batch sizes to try, e.g. 64,128, with --device")
    parser.add_argument("--degrade", default="device", help="device, host or both, with --device")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps, with --device")
    parser.add_argument("--workers", type=int, default=0, help="loader workers, with --device")
    parser.add_argument("--prompt-weight", type=float, default=0.1, help="with --device")
    parser.add_argument("--channels-last", action="store_true", help="with --device")
    parser.add_argument("--compile", action="store_true", help="with --device")
    parser.add_argument("--data", type=Path, help="clean photos (default: generated)")
    parser.add_argument("--degrade-cost", action="store_true", help="time the degradations")
    parser.add_argument("--config", default="small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", default="eager,channels_last,checkpointing")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    if args.degrade_cost:
        degrade_cost_main(args)
    elif args.device:
        loop_main(args)
    else:
        variants_main(args)


if __name__ == "__main__":
    main()
