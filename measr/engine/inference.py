"""Running the network on an image of any size: tiles cut from the image (padded where they
reach past it), run in batches with the global context of the whole image, blended back."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import cv2
import numpy as np
import torch
from torch import Tensor

from measr.engine.acceleration import eager_unless
from measr.engine.memory import return_freed_memory
from measr.engine.padding import pad_to_requirements, pad_to_size, padded_length
from measr.engine.tiling import BlendAccumulator, Tile, tile_grid
from measr.model import ForwardContext, MEASNet, RoutingRecord
from measr.model.context import SharedStats
from measr.model.task_prompt import PROMPT_CELL

# Called with each batch of tiles and the routing the network recorded for it.
RoutingSink = Callable[[list[Tile], RoutingRecord], None]
# Called as a restoration advances, with (tiles done, tiles in all): (0, n) before the first;
# tiles done may be a fraction while a pass runs (`measr.engine.progress`).
ProgressCallback = Callable[[float, int], None]
# A forward pass over a batch of tiles sharing a context, on another backend than the
# network's own (`measr.engine.onnx_backend`): (B, C, h, w) in, restored (B, C, h, w) out.
TileForward = Callable[[Tensor, ForwardContext], Tensor]
# The context pass on another backend: (1, C, H, W) image and the prompt's pooled features in,
# every global statistic the network computes on it out (`capture_global_context`).
ContextCapture = Callable[[Tensor, SharedStats | None], SharedStats]


def plan_tiles(model: MEASNet, height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    """The tile grid for an image: tiles of `tile` pixels rounded down to the alignment (at least
    two alignment cells, so neighbours can overlap), overlapping by at least `overlap`; the
    overlap is at most half a tile. An image that fits in one tile is one tile: the whole image
    padded to the network's size multiple."""
    align = model.requirements.tile_alignment
    side = max(tile // align * align, 2 * align)
    overlap = min(max(overlap, 0), side // 2)
    canvas_h = padded_length(height, model.requirements)
    canvas_w = padded_length(width, model.requirements)
    if canvas_h > side:
        canvas_h = -(-canvas_h // align) * align
    if canvas_w > side:
        canvas_w = -(-canvas_w // align) * align
    return tile_grid(canvas_h, canvas_w, side, overlap, align)


def balanced_tile(model: MEASNet, height: int, width: int, tile: int, overlap: int) -> int:
    """The smallest tile side (a multiple of the alignment, at most `tile`) that covers the
    image in no more tiles than `tile` does. An automatic tile is as large as memory allows;
    when the image needs two of them per axis, equal tiles that large overlap by most of their
    area (a 1024 px image in 704 px tiles computes 1.9x its pixels; in 576 px tiles, 1.3x)."""
    align = model.requirements.tile_alignment

    def count(side: int) -> tuple[int, int]:
        grid = plan_tiles(model, height, width, side, overlap)
        return len({t.rows for t in grid}), len({t.cols for t in grid})

    rows, cols = count(tile)
    best = tile
    for side in range(tile // align * align - align, 2 * align - 1, -align):
        shrunk_rows, shrunk_cols = count(side)
        if shrunk_rows > rows or shrunk_cols > cols:
            break
        best = side
    return best


def context_image(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """The (H, W, C) image shrunk by area averaging so its longest side is at most `max_side`
    (the image itself when it already fits)."""
    height, width = pixels.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return pixels
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return small.reshape(size[1], size[0], pixels.shape[2])


def as_model_input(pixels: Tensor, channels: int) -> Tensor:
    """(h, w, C) channels-last pixels as (channels, h, w), gray replicated to every channel."""
    planar = pixels.permute(2, 0, 1)
    return planar.expand(channels, -1, -1) if planar.shape[0] == 1 else planar


# Rows of the image the prompt's conv net reads at once (a multiple of its cell): 64 cells,
# about 60 MB of features for a 4000 px wide photo.
PROMPT_STRIP_ROWS = 64 * PROMPT_CELL


def prompt_features(
    model: MEASNet, image: Tensor, device: torch.device, dtype: torch.dtype
) -> SharedStats:
    """The task prompt's pooled features of the whole (H, W, C) image at full resolution, as
    the shared statistic the prompt reads (`{key: (1, features)}`). The conv net reads
    non-overlapping cells, so strips of whole cells give exactly the whole image's mean (with
    the prompt's context, strips overlapping by a cell above and below); an
    image smaller than one cell is reflect-padded to the network's minimum first."""
    channels = model.requirements.channels
    planar = as_model_input(image, channels)[None]
    if min(planar.shape[-2:]) < model.requirements.min_size:
        planar, _ = pad_to_requirements(planar, model.requirements)
    moments = None
    # With context the cells pooled need a cell of neighbours above and below: strips overlap
    # by that much, and each pools the cells the next one cannot.
    step = PROMPT_STRIP_ROWS - 2 * model.task_prompt.context_cells * PROMPT_CELL
    for top in range(0, planar.shape[2] - PROMPT_CELL + 1, step):
        strip = planar[:, :, top : top + PROMPT_STRIP_ROWS].to(device, dtype)
        rows = strip.shape[2] // PROMPT_CELL * PROMPT_CELL
        part = model.task_prompt.feature_moments(strip[:, :, :rows])
        moments = part if moments is None else moments + part
    assert moments is not None  # the image has at least one cell (padded above)
    return {model.task_prompt.context_key: model.task_prompt.pool(moments).to(dtype)}


def capture_global_context(
    model: MEASNet,
    pixels: np.ndarray,
    max_side: int,
    device: torch.device,
    dtype: torch.dtype,
    layout: torch.memory_format = torch.contiguous_format,
    prompt: SharedStats | None = None,
    capture: ContextCapture | None = None,
) -> SharedStats:
    """Every global statistic of the network (prompt, pooled statistics, routers, attention
    maps, FFT cut-offs), computed once on the whole image, downscaled to fit `max_side`; the
    prompt's pooled features are `prompt`'s when given (see `prompt_features`), so that the
    routers of the context pass read the full-resolution photo's prompt. `capture` runs the
    pass on another backend."""
    small = torch.from_numpy(np.ascontiguousarray(context_image(pixels, max_side)))
    x = as_model_input(small, model.requirements.channels)[None].to(device, dtype)
    padded, _ = pad_to_requirements(x, model.requirements)
    padded = padded.contiguous(memory_format=layout)
    captured = (capture or network_capture(model))(padded, prompt)
    return_freed_memory()
    return {**captured, **(prompt or {})}


def network_capture(model: MEASNet) -> ContextCapture:
    """The context pass on the network itself."""

    def capture(image: Tensor, prompt: SharedStats | None) -> SharedStats:
        ctx = ForwardContext(capture_global=True, shared=prompt)
        model(image, ctx)
        return ctx.captured

    return capture


def tile_input(image: Tensor, tile: Tile, channels: int) -> Tensor:
    """The (channels, h, w) input of one tile: its part of the (H, W, C) image, padded where the
    tile reaches past the image (only tiles at the bottom and right border do)."""
    crop = image[tile.rows.start : tile.rows.stop, tile.cols.start : tile.cols.stop]
    planar = as_model_input(crop, channels)[None]
    size = (tile.rows.stop - tile.rows.start, tile.cols.stop - tile.cols.start)
    return pad_to_size(planar, *size)[0]


def batches(tiles: list[Tile], size: int) -> Iterator[list[Tile]]:
    """Consecutive groups of at most `size` tiles."""
    for begin in range(0, len(tiles), size):
        yield tiles[begin : begin + size]


def run_tiles(
    model: MEASNet,
    image: Tensor,
    tiles: list[Tile],
    *,
    tile_batch: int,
    shared: SharedStats | None,
    device: torch.device,
    dtype: torch.dtype,
    routing_sink: RoutingSink | None = None,
    layout: torch.memory_format = torch.contiguous_format,
    progress: ProgressCallback | None = None,
    forward: TileForward | None = None,
) -> Tensor:
    """Restore the (H, W, C) image tile by tile, `tile_batch` tiles per forward pass, every
    pass reusing the shared global context; returns the blended (H, W, 3) result on the CPU.
    A last, smaller batch runs the compiled steps eagerly (its shape is used once).
    `progress(done, total)` is called after each pass. `forward` runs the passes instead of
    the network (another backend; it records no routing)."""
    height, width = image.shape[:2]
    channels = model.requirements.channels
    blend = BlendAccumulator(height, width, channels)
    done = 0
    for group in batches(tiles, tile_batch):
        x = torch.stack([tile_input(image, t, channels) for t in group]).to(device, dtype)
        ctx = ForwardContext(record_routing=routing_sink is not None, shared=shared)
        if forward is not None:
            restored = forward(x, ctx)
        else:
            with eager_unless(len(group) == tile_batch):
                restored = model(x.contiguous(memory_format=layout), ctx).image
        for tile, result in zip(group, restored, strict=True):
            blend.add(tile, result)
        if routing_sink is not None:
            routing_sink(group, ctx.routing)
        return_freed_memory()
        done += len(group)
        if progress is not None:
            progress(done, len(tiles))
    return blend.result()
