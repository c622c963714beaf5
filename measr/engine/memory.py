"""How big a tile, a tile batch and the global-context image may be, from a memory budget."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import psutil
import torch

from measr.allocator import KEEPS_FREED_MEMORY, available_memory, c_library
from measr.model import ModelConfig

# Peak activation memory of one inference pass, in bytes per input pixel per channel of the
# configuration's base width (`dim`), float32. Measured on CPU with ru_maxrss (tiny, small and
# full at 256-1024 px): 145-280; the upper end keeps the estimate safe.
ACTIVATION_BYTES_PER_PIXEL_PER_DIM = 280
# The same with the transformer blocks in row strips (`measr.engine.row_strips`), whose widest
# maps never exist whole: 111-144 measured (small at 512 and 1024 px, full at 512 px) while glibc
# returned freed memory at once; since measr keeps it for reuse (`measr.allocator`, faster, but
# freed blocks stay resident until the tile ends) `small` at 1024 px peaks at 4.44 GiB against
# 3.13 GiB, about 175 per pixel per dim less the process's own ~0.4 GiB. Without that setting
# (MEASR_KEEP_FREED_MEMORY=0, or a C library other than glibc) 160 keeps the estimate safe.
STRIPED_BYTES_PER_PIXEL_PER_DIM = 200 if KEEPS_FREED_MEMORY else 160
# Share of the free memory one restoration may take; the rest is left to the rest of the
# machine (and, on CPU, to the decoded images and the blending buffers). With a quarter, `full`
# tiled a 1024 px image into four 576 px tiles on a 24 GiB machine (1.3x the pixels, and the
# context pass besides), where the whole image takes 4.6-5.2 GiB in strips (measured).
MEMORY_SHARE = 0.4
# Tiles beyond this side do not run faster per pixel, they only hold more memory. Above 1024,
# so that a 4000 x 3000 photo fits 3 x 4 tiles of 1088 px (14.2 MP computed) where 1024 px tiles,
# whose starts fall on a 64 px grid, need 4 x 5 (balanced to 896 px: 16.1 MP).
MAX_AUTO_TILE = 1152
# The global context is computed on the image downscaled to at most this side: large enough
# for the statistics to be those of the photo, small enough to run whole.
MAX_CONTEXT_SIDE = 1024
# Planned sides are rounded down to a multiple of this, so that they do not follow every change
# of free memory from one image to the next: each new tile or context size means new compiled
# graphs (minutes cold) for `--compile`.
PLAN_STEP = 128
# On a GPU several tiles per pass keep the device busy; on a CPU the threads already are.
MAX_GPU_TILE_BATCH = 8


@dataclass(frozen=True)
class MemoryPlan:
    """Sizes chosen for one device: tile side, tiles per pass, longest side of the context."""

    tile: int
    tile_batch: int
    context_side: int


def free_memory(device: torch.device) -> int:
    """Bytes currently available on the device (GPU: free device memory; CPU: MemAvailable)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return available_memory()


def bytes_per_pixel(config: ModelConfig, half: bool = False, striped: bool = False) -> int:
    """Estimated peak activation bytes per input pixel for a configuration (`striped`: with the
    transformer blocks in row strips)."""
    per_pixel_dim = (
        STRIPED_BYTES_PER_PIXEL_PER_DIM if striped else ACTIVATION_BYTES_PER_PIXEL_PER_DIM
    )
    per_pixel = per_pixel_dim * config.dim
    return per_pixel // 2 if half else per_pixel


def total_memory(device: torch.device) -> int:
    """Bytes of memory the device has in all, used or not."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    return int(psutil.virtual_memory().total)


def plan_memory(
    config: ModelConfig,
    device: torch.device,
    *,
    half: bool = False,
    striped: bool = False,
    budget: int | None = None,
    cap: int | None = None,
) -> MemoryPlan:
    """Tile side, tile batch and context side that fit `budget` bytes, and never more than
    `cap` bytes (`--max-memory`). Without a `budget`, tiles fit a share of the device's free
    memory and the context a share of all its memory: the context's size changes what the
    network computes (a 620 px photo whose context fell to 256 px while a training run held
    the memory lost 5 dB), so how busy the machine is must not decide it; tiles only change
    where the work is cut."""
    bytes_per = bytes_per_pixel(config, half, striped)
    tile_budget = budget if budget is not None else int(free_memory(device) * MEMORY_SHARE)
    context_budget = budget if budget is not None else int(total_memory(device) * MEMORY_SHARE)
    if cap is not None:
        tile_budget, context_budget = min(tile_budget, cap), min(context_budget, cap)
    pixels = tile_budget // bytes_per
    tile = min(side_for(pixels), MAX_AUTO_TILE)
    batch = 1
    if device.type == "cuda":
        batch = max(1, min(MAX_GPU_TILE_BATCH, pixels // tile**2))
    context_side = min(side_for(context_budget // bytes_per), MAX_CONTEXT_SIDE)
    return MemoryPlan(tile=tile, tile_batch=batch, context_side=context_side)


def side_for(pixels: int) -> int:
    """The planned side of a square of at most `pixels` pixels."""
    return rounded_side(math.isqrt(max(pixels, 1)))


def planned_peak(
    config: ModelConfig,
    tile_pixels: int,
    tile_batch: int,
    context_pixels: int,
    *,
    half: bool = False,
    striped: bool = False,
) -> int:
    """The activation bytes a restoration is expected to peak at: its largest pass, a batch of
    tiles or the shared-context image (the same per-pixel estimate the plan is made with)."""
    largest = max(tile_pixels * tile_batch, context_pixels)
    return largest * bytes_per_pixel(config, half, striped)


def rounded_side(side: int) -> int:
    """`side` rounded down to a multiple of PLAN_STEP (sides under one step stay as they are)."""
    return side if side < PLAN_STEP else side // PLAN_STEP * PLAN_STEP


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (macOS, musl)."""
    return getattr(c_library(), "malloc_trim", None)


def return_freed_memory() -> None:
    """Hand memory freed by the last forward pass back to the operating system.

    glibc keeps freed activation buffers in its heaps and, as tile after tile allocates them
    at slightly different places, the process grows by megabytes per tile (measured: +560 MiB
    over 56 tiles of 512 px with the tiny config) although nothing leaks; trimming after each
    pass keeps the resident size flat."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
