"""Tiling as pure functions: a grid of equal tiles covering every pixel, a smooth blending
window per tile, and weighted accumulation so that no seam shows."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

# Smallest blending weight: every pixel of every tile counts a little, so the weight sum is
# never zero, while a tile's edge (where it saw zero padding instead of its neighbour) is
# practically ignored wherever another tile covers it.
WEIGHT_FLOOR = 1e-3


@dataclass(frozen=True)
class Span:
    """One tile's extent along one axis: the window [start, stop), its core [core_start,
    core_stop) (the cores of all tiles partition the axis), and the length of the blending ramp
    centred on each core border (0 at the image border, where there is no neighbour)."""

    start: int
    stop: int
    core_start: int
    core_stop: int
    ramp_before: int
    ramp_after: int

    @property
    def length(self) -> int:
        """Pixels in the window."""
        return self.stop - self.start


@dataclass(frozen=True)
class Tile:
    """One tile: its rows and its columns."""

    rows: Span
    cols: Span


def tile_starts(length: int, tile: int, overlap: int, multiple: int) -> list[int]:
    """As few starts as give overlaps of at least `overlap`, spread evenly from 0 to
    length - tile and rounded to `multiple` (so every tile sees the network's down-sampling grid
    where the whole image would)."""
    if length <= tile:
        return [0]
    max_stride = max(multiple, (tile - overlap) // multiple * multiple)
    count = -(-(length - tile) // max_stride) + 1
    step = (length - tile) / (count - 1)
    starts = [round(i * step / multiple) * multiple for i in range(count - 1)]
    return [*starts, length - tile]  # the last tile ends exactly at the border


def axis_spans(length: int, tile: int, overlap: int, multiple: int = 1) -> list[Span]:
    """Windows of min(tile, length) pixels covering [0, length), each overlapping the next by at
    least `overlap`; their blending ramps are `overlap` long (or the overlap, if shorter)."""
    starts = tile_starts(length, tile, overlap, multiple)
    size = min(tile, length)
    stops = [start + size for start in starts]
    # Neighbours meet in the middle of their overlap: one tile's core ends, the next begins.
    borders = [0] + [(stops[i] + starts[i + 1]) // 2 for i in range(len(starts) - 1)] + [length]
    ramps = [0] + [min(overlap, stops[i] - starts[i + 1]) for i in range(len(starts) - 1)] + [0]
    return [
        Span(starts[i], stops[i], borders[i], borders[i + 1], ramps[i], ramps[i + 1])
        for i in range(len(starts))
    ]


def tile_grid(height: int, width: int, tile: int, overlap: int, multiple: int = 1) -> list[Tile]:
    """All tiles of a (height, width) image, row by row; every tile has the same size."""
    rows = axis_spans(height, tile, overlap, multiple)
    cols = axis_spans(width, tile, overlap, multiple)
    return [Tile(r, c) for r in rows for c in cols]


def smooth_step(u: Tensor) -> Tensor:
    """Raised cosine: 0 for u <= 0, 1 for u >= 1, 0.5 - 0.5 cos(pi u) between."""
    return 0.5 - 0.5 * torch.cos(math.pi * u.clamp(0.0, 1.0))


def axis_window(span: Span) -> Tensor:
    """Weights along the span: 1 inside, raised-cosine ramps centred on the core borders.

    A tile's falling ramp and its neighbour's rising ramp are centred on the same border with
    the same length, so they sum to exactly 1 (a partition of unity); samples sit at pixel
    centres (p + 0.5)."""
    centres = torch.arange(span.start, span.stop, dtype=torch.float64) + 0.5
    window = torch.ones_like(centres)
    if span.ramp_before:
        begin = span.core_start - span.ramp_before / 2
        window *= smooth_step((centres - begin) / span.ramp_before)
    if span.ramp_after:
        begin = span.core_stop - span.ramp_after / 2
        window *= 1 - smooth_step((centres - begin) / span.ramp_after)
    return window.clamp_min(WEIGHT_FLOOR).float()


def blend_window(tile: Tile) -> Tensor:
    """The tile's (h, w) blending weights: separable, 1 in the interior, positive everywhere."""
    return axis_window(tile.rows)[:, None] * axis_window(tile.cols)[None, :]


class BlendAccumulator:
    """Weighted sum of tile results in image coordinates, (H, W, C) channels-last so that the
    final image becomes a numpy array without a copy."""

    def __init__(self, height: int, width: int, channels: int) -> None:
        self.sum = torch.zeros(height, width, channels)
        self.weight = torch.zeros(height, width, 1)

    def add(self, tile: Tile, result: Tensor) -> None:
        """Add one tile's (C, h, w) result weighted by its window; what lies beyond the image
        (padding) is dropped."""
        height, width = self.sum.shape[:2]
        h = min(tile.rows.stop, height) - tile.rows.start
        w = min(tile.cols.stop, width) - tile.cols.start
        window = blend_window(tile)[:h, :w, None]
        values = result[:, :h, :w].permute(1, 2, 0).float().cpu()
        rows = slice(tile.rows.start, tile.rows.start + h)
        cols = slice(tile.cols.start, tile.cols.start + w)
        self.sum[rows, cols] += values * window
        self.weight[rows, cols] += window

    def result(self) -> Tensor:
        """The blended (H, W, C) image (normalised in place)."""
        return self.sum.div_(self.weight)
