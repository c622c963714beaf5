"""Where MEASNet's periodic pattern (the grid at periods 2 and 8 in flat areas, issue 37) is made,
and what removes it without training. See docs/pattern.md for the findings.

Usage: python scripts/pattern_stages.py [--weights NAME|PATH] [--crop 256] [--json OUT.json]
       [--parts stages,removal,ensembles,balanced]
Reads the validation data from ../shared/data/val (or $VAL): a flat-ish crop of kodim03 (hazed
and with noise sigma 25, seed 0, as `measr benchmark quality` degrades it) and of an ITS haze pair.
On each crop, the plain network (PyTorch, whole crop, float32, CPU) is run:
1. with forward hooks: the periodic amplitude after each stage, per channel, relative to the
   channel's spread (full-resolution stages at periods 2 and 8; half and quarter resolution at
   the periods that become 8 at full resolution);
2. with the fixed-phase component of one stage's output removed (per channel, the mean over the
   flat blocks of each position modulo the stage's period, minus its overall mean), to see
   which stage's pattern reaches the output;
3. as shift ensembles (the mean of the restorations of the crop shifted by 0/1 and/or 0/4
   pixels, sharing one global context), and with the sub-pixel convolutions of the upsamplers
   balanced (`balance_upsamplers`), for the output's pattern and PSNR.
`--parts` picks among stages (1), removal (2), ensembles and balanced (3).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from measr.degrade import parse_spec
from measr.engine import Restorer
from measr.evaluation.metrics import as_rgb, psnr
from measr.evaluation.pattern import BLOCK, flat_blocks, periodic_pattern
from measr.evaluation.sets import synthesise_pair
from measr.io import read_image
from measr.model.backbone import Upsample
from measr.model.context import ForwardContext
from measr.model.measnet import MEASNet

VAL = Path(os.environ.get("VAL", "../shared/data/val"))
# (stage, scale: how many full-resolution pixels one of its pixels spans)
STAGES = [
    ("patch_embed", 1),
    ("encoder1", 1),
    ("down1", 2),
    ("encoder2", 2),
    ("down2", 4),
    ("encoder3", 4),
    ("up3", 4),
    ("decoder3_experts", 4),
    ("decoder3", 4),
    ("up2", 2),
    ("decoder2_experts", 2),
    ("decoder2", 2),
    ("up1", 1),
    ("decoder1_experts", 1),
    ("decoder1", 1),
    ("refinement", 1),
    ("output", 1),
]
FULL_PERIOD = 8  # the longest period measured, in full-resolution pixels


# Shift ensembles: (row shifts, column shifts), every pair run. A 1-pixel shift turns a 2-pixel
# grid tied to the pixel positions upside down, a 4-pixel shift an 8-pixel one: averaging cancels
# them, and only them (the network is shift-equivariant but for its three 2x resamplings).
def _grid(rows: tuple[int, ...], columns: tuple[int, ...]) -> list[tuple[int, int]]:
    return [(dy, dx) for dy in rows for dx in columns]


SHIFT_ENSEMBLES = {
    "4": _grid((0, 1), (0, 1)),  # cancels the 2-pixel grid
    "4-by-4px": _grid((0, 4), (0, 4)),  # cancels the 8-pixel grid
}


def best_window(clean: np.ndarray, side: int) -> tuple[int, int]:
    """(top, left), multiples of BLOCK, of the side x side window with the most flat blocks."""
    flat = set(flat_blocks(clean))
    height, width = clean.shape[:2]
    best, where = -1, (0, 0)
    for top in range(0, height - side + 1, BLOCK):
        for left in range(0, width - side + 1, BLOCK):
            count = sum(
                (t, x) in flat
                for t in range(top, top + side, BLOCK)
                for x in range(left, left + side, BLOCK)
            )
            if count > best:
                best, where = count, (top, left)
    return where


def crops(side: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, degraded, clean) flat-ish crops of the validation data."""
    found = []
    kodim = as_rgb(read_image(VAL / "kodak24/clean/kodim03.png").pixels)
    top, left = best_window(kodim, side)
    for spec in ("haze", "noise:25"):
        degraded, clean = synthesise_pair(kodim, parse_spec(spec), 0, "kodim03.png")
        window = (slice(top, top + side), slice(left, left + side))
        found.append((f"kodim03 {spec} @{top},{left}", degraded[window], clean[window]))
    pairs = VAL / "dehaze-its-sample"
    name = sorted(p.name for p in (pairs / "clean").iterdir())[0]
    clean = as_rgb(read_image(pairs / "clean" / name).pixels)
    degraded = as_rgb(read_image(pairs / "degraded" / name).pixels)
    top, left = best_window(clean, side)
    window = (slice(top, top + side), slice(left, left + side))
    found.append((f"ITS {name} @{top},{left}", degraded[window], clean[window]))
    return found


def fixed_phase(feature: Tensor, period: int, blocks: list[tuple[int, int]], scale: int) -> Tensor:
    """(C, period, period): per channel, the mean over the flat blocks of each position modulo
    `period` (in the feature's own pixels), minus its mean over positions."""
    side = BLOCK // scale
    tiles = torch.stack(
        [
            feature[0, :, t // scale : t // scale + side, x // scale : x // scale + side]
            for t, x in blocks
        ]
    )  # (N, C, side, side), every block starting at a multiple of the period
    c = tiles.shape[1]
    grouped = tiles.reshape(len(blocks), c, side // period, period, side // period, period)
    phase = grouped.mean(dim=(0, 2, 4))
    return phase - phase.mean(dim=(1, 2), keepdim=True)


def periodic_part(phase: Tensor, period: int) -> Tensor:
    """The part of a (C, q, q) phase pattern that repeats every `period` of its pixels (a
    divisor of q), tiled back to (C, q, q); zero for a period of 1."""
    c, q, _ = phase.shape
    if period < 2:
        return torch.zeros_like(phase)
    folded = phase.reshape(c, q // period, period, q // period, period).mean(dim=(1, 3))
    return folded.repeat(1, q // period, q // period)


def relative_amplitudes(
    feature: Tensor, blocks: list[tuple[int, int]], scale: int
) -> dict[str, float]:
    """RMS over channels and positions of the fixed-phase pattern over the RMS spread of the
    channels over the crop: at full-resolution period 8 (what does not repeat sooner) and, on
    full-resolution stages, period 2."""
    spread = max(float(feature[0].float().std(dim=(1, 2)).pow(2).mean().sqrt()), 1e-12)
    q = FULL_PERIOD // scale
    phase = fixed_phase(feature.float(), q, blocks, scale)
    result = {"period8": float((phase - periodic_part(phase, q // 2)).pow(2).mean().sqrt())}
    if scale == 1:
        result["period2"] = float(periodic_part(phase, 2).pow(2).mean().sqrt())
    return {key: value / spread for key, value in result.items()}


@contextmanager
def hooks(model: nn.Module, hook: Callable[[str, int, Tensor], Tensor | None]) -> Iterator[None]:
    """Call hook(stage, scale, output) after each stage; a tensor it returns replaces it."""
    handles = []
    for stage, scale in STAGES:

        def run(module: nn.Module, args: object, output: object, stage=stage, scale=scale):  # type: ignore[no-untyped-def]
            tensor = output[0] if isinstance(output, tuple) else output
            replaced = hook(stage, scale, tensor)
            if replaced is None:
                return None
            return (replaced, *output[1:]) if isinstance(output, tuple) else replaced

        handles.append(model.get_submodule(stage).register_forward_hook(run))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def to_tensor(image: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].float()


def to_image(tensor: Tensor) -> np.ndarray:
    return tensor[0].clamp(0, 1).permute(1, 2, 0).numpy()


def restore(model: MEASNet, degraded: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return to_image(model(to_tensor(degraded)).image)


def shift_ensemble(
    model: MEASNet, degraded: np.ndarray, shifts: list[tuple[int, int]]
) -> np.ndarray:
    """Mean of the restorations of the image moved by each (dy, dx) against the pixel grid
    (reflect-padded by 8 so every shifted window keeps a size the network takes), each moved
    back. Every pass reuses the global context (task prompt, pooled statistics, attention) of
    one pass over the image itself, as the engine's tiles do, so the passes differ only in how
    the image falls on the network's 2x resampling grid."""
    height, width = degraded.shape[:2]
    context = ForwardContext(capture_global=True)
    with torch.inference_mode():
        model(to_tensor(degraded), context)
    padded = np.pad(degraded, ((8, 8), (8, 8), (0, 0)), mode="reflect")
    total = np.zeros_like(degraded)
    for dy, dx in shifts:
        window = padded[dy : dy + height + 8, dx : dx + width + 8]
        with torch.inference_mode():
            out = model(to_tensor(window), ForwardContext(shared=context.captured)).image
        total += to_image(out)[8 - dy : 8 - dy + height, 8 - dx : 8 - dx + width]
    return total / len(shifts)


def balance_upsamplers(model: MEASNet, names: tuple[str, ...] = ("up1", "up2", "up3")) -> None:
    """Give the four sub-pixel kernels of each output channel of the named upsamplers the same
    response to a constant input (their mean), by spreading each kernel's difference from that
    mean evenly over its 3x3 taps: a flat input then gives a flat output, the condition under
    which a sub-pixel convolution makes no checkerboard (Aitken et al. 2017, ICNR)."""
    with torch.no_grad():
        for name in names:
            module = model.get_submodule(name)
            assert isinstance(module, Upsample)
            conv = module.body[0]
            weight = conv.weight  # (4 C, C_in, 3, 3); output channel c takes phases 4c .. 4c+3
            out4, c_in, kh, kw = weight.shape
            grouped = weight.view(out4 // 4, 4, c_in, kh, kw)
            sums = grouped.sum(dim=(3, 4), keepdim=True)  # (C, 4, C_in, 1, 1)
            excess = sums - sums.mean(dim=1, keepdim=True)
            grouped -= excess / (kh * kw)


def remove_fixed_phase(target: str, blocks: list[tuple[int, int]]) -> Callable[..., Tensor | None]:
    """A hook that subtracts, at stage `target` only, its fixed-phase pattern (period 8 at full
    resolution, in its own pixels) from the whole feature map."""

    def hook(stage: str, scale: int, tensor: Tensor) -> Tensor | None:
        if stage != target:
            return None
        period = FULL_PERIOD // scale
        phase = fixed_phase(tensor.float(), period, blocks, scale)
        reps = (tensor.shape[-2] // period, tensor.shape[-1] // period)
        return tensor - phase.repeat(1, *reps)[None].to(tensor.dtype)

    return hook


PARTS = ("stages", "removal", "ensembles", "balanced")


def analyse(
    model: MEASNet, degraded: np.ndarray, clean: np.ndarray, parts: tuple[str, ...] = PARTS
) -> dict[str, object]:
    """The measurements of the module text named in `parts` on one crop; the output's pattern
    always."""
    blocks = flat_blocks(clean)
    entry: dict[str, object] = {"flat_blocks": len(blocks)}

    def score(out: np.ndarray) -> dict[str, float]:
        pattern = periodic_pattern(out, clean, blocks)
        assert pattern is not None
        return {
            "period2": round(pattern.period2, 3),
            "period8": round(pattern.period8, 3),
            "psnr": round(psnr(out, clean), 2),
        }

    own = periodic_pattern(clean, clean, blocks)
    assert own is not None
    entry["clean"] = {"period2": round(own.period2, 3), "period8": round(own.period8, 3)}
    entry["input"] = score(degraded)
    stages: dict[str, dict[str, float]] = {}

    def measure(stage: str, scale: int, tensor: Tensor) -> None:
        amplitudes = relative_amplitudes(tensor, blocks, scale)
        stages[stage] = {key: round(value, 4) for key, value in amplitudes.items()}

    with hooks(model, measure):
        entry["output"] = score(restore(model, degraded))
    if "stages" in parts:
        entry["relative_pattern_by_stage"] = stages
    if "removal" in parts:
        removed = {}
        for target, _ in STAGES[STAGES.index(("up3", 4)) :]:
            with hooks(model, remove_fixed_phase(target, blocks)):
                removed[target] = score(restore(model, degraded))
        entry["fixed_phase_removed_at"] = removed
    if "ensembles" in parts:
        for label, shifts in SHIFT_ENSEMBLES.items():
            entry[f"shift_ensemble_{label}"] = score(shift_ensemble(model, degraded, shifts))
    if "balanced" in parts:
        state = {key: value.clone() for key, value in model.state_dict().items()}
        for names in (("up1",), ("up1", "up2", "up3")):
            balance_upsamplers(model, names)
            entry["balanced_" + "+".join(names)] = score(restore(model, degraded))
            model.load_state_dict(state)
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--weights", default=None)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"Comma-separated, from {','.join(PARTS)} (none: the output's pattern alone).",
    )
    options = parser.parse_args()
    parts = tuple(part for part in options.parts.split(",") if part)
    restorer = Restorer.from_spec(options.weights, device="cpu", backend="torch")
    model = restorer.model.float().eval()
    results = []
    for name, degraded, clean in crops(options.crop):
        start = time.perf_counter()
        entry = {"crop": name, **analyse(model, degraded, clean, parts)}
        entry["seconds"] = round(time.perf_counter() - start, 1)
        print(json.dumps(entry), flush=True)
        results.append(entry)
    if options.json is not None:
        report = {"weights": restorer.name, "crop": options.crop, "crops": results}
        options.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
