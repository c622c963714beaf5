"""The routing of one image, gathered tile by tile from the network's routing records: the task
prompt's atom weights, a per-pixel expert map and usage histogram per STP-G-MESE level, and the
experts each tile chose per FD-MEE band."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from measr.engine.tiling import Tile
from measr.errors import MeasrError
from measr.model import MEASNet, RoutingRecord
from measr.model.stp_g_mese import STPGMESE


def pixel_routing_levels(model: MEASNet) -> list[str]:
    """The names of the network's STP-G-MESE levels in the routing record ('encoder1', ...)."""
    return [m.context_key for m in model.modules() if isinstance(m, STPGMESE)]


def check_routing_level(model: MEASNet, level: str) -> None:
    """Refuse a routing-map level the network does not have."""
    levels = pixel_routing_levels(model)
    if level not in levels:
        raise MeasrError(f"unknown routing level '{level}'", f"use one of {', '.join(levels)}")


def shares(counts: tuple[int, ...]) -> list[float]:
    """A histogram as fractions of its total."""
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


@dataclass(frozen=True)
class RoutingSummary:
    """Which experts an image (or a group of images) used; compact and JSON-serialisable.

    Pixel usage counts, for every image pixel, each of its top-k experts once (both slots,
    not weighted by the gates): how often an expert was selected, at the level's resolution
    scaled to image pixels. Band usage counts the tiles that chose each expert (either slot)."""

    prompt_weights: tuple[float, ...]  # the prompt's softmax over atoms, mean over pixels
    pixel_usage: dict[str, tuple[int, ...]]  # "encoder1".."encoder3" -> count per expert
    band_choices: dict[str, tuple[tuple[int, ...], ...]]  # "decoder1.low"... -> experts per tile
    band_usage: dict[str, tuple[int, ...]]  # band -> tiles that chose each expert
    tiles: int
    pixels: int

    def dominant_atoms(self, count: int = 2) -> list[tuple[int, float]]:
        """The `count` heaviest prompt atoms as (atom, weight), heaviest first."""
        order = np.argsort(self.prompt_weights)[::-1][:count]
        return [(int(i), float(self.prompt_weights[i])) for i in order]

    def top_experts(self, level: str, count: int = 2) -> list[int]:
        """The `count` most-selected experts of an STP-G-MESE level, most used first."""
        order = np.argsort(self.pixel_usage[level], kind="stable")[::-1][:count]
        return [int(i) for i in order]

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers, for JSON."""
        return {
            "prompt_weights": [round(w, 6) for w in self.prompt_weights],
            "pixel_usage": {k: list(v) for k, v in self.pixel_usage.items()},
            "band_choices": {k: [list(t) for t in v] for k, v in self.band_choices.items()},
            "band_usage": {k: list(v) for k, v in self.band_usage.items()},
            "tiles": self.tiles,
            "pixels": self.pixels,
        }


def merge_summaries(summaries: Iterable[RoutingSummary]) -> RoutingSummary:
    """One summary for several images: counts added, prompt weights averaged over pixels."""
    items = list(summaries)
    if not items:
        raise ValueError("nothing to merge")
    pixels = sum(s.pixels for s in items)
    weighted = np.stack([np.asarray(s.prompt_weights) * s.pixels for s in items])
    weights = weighted.sum(axis=0) / max(pixels, 1)

    def added(histograms: list[dict[str, tuple[int, ...]]]) -> dict[str, tuple[int, ...]]:
        return {
            key: tuple(int(c) for c in np.sum([h[key] for h in histograms], axis=0))
            for key in histograms[0]
        }

    choices = {k: tuple(c for s in items for c in s.band_choices[k]) for k in items[0].band_choices}
    return RoutingSummary(
        prompt_weights=tuple(float(w) for w in weights),
        pixel_usage=added([s.pixel_usage for s in items]),
        band_choices=choices,
        band_usage=added([s.band_usage for s in items]),
        tiles=sum(s.tiles for s in items),
        pixels=pixels,
    )


class RoutingCollector:
    """Receives each tile batch's routing record and stitches it into image coordinates: every
    tile contributes only its core (the cores partition the image), so overlaps count once."""

    def __init__(
        self, height: int, width: int, pixel_experts: int, band_experts: int, margin: int = 0
    ) -> None:
        self.height, self.width = height, width
        # Tiles are cut from the image framed by this mirrored margin (`with_edge_margin`).
        self.margin = margin
        self.pixel_experts, self.band_experts = pixel_experts, band_experts
        self.maps: dict[str, np.ndarray] = {}  # level -> (H, W) int8 top-1 expert
        self.pixel_counts: dict[str, np.ndarray] = {}
        self.band_choices: dict[str, list[tuple[int, ...]]] = {}
        self.prompt_sum: np.ndarray | None = None
        self.tiles = 0

    def core_in_image(self, tile: Tile) -> tuple[slice, slice]:
        """The tile's core, clipped to the image (the canvas may extend past it and its
        margin), in the canvas's coordinates."""
        m = self.margin
        rows = slice(max(tile.rows.core_start, m), min(tile.rows.core_stop, self.height + m))
        cols = slice(max(tile.cols.core_start, m), min(tile.cols.core_stop, self.width + m))
        return slice(rows.start, max(rows.stop, rows.start)), slice(
            cols.start, max(cols.stop, cols.start)
        )

    def __call__(self, tiles: list[Tile], record: RoutingRecord) -> None:
        """Add one batch of tiles (the `RoutingSink` of `run_tiles`)."""
        for index, tile in enumerate(tiles):
            rows, cols = self.core_in_image(tile)
            area = (rows.stop - rows.start) * (cols.stop - cols.start)
            if record.prompt_weights is not None:
                weights = record.prompt_weights[index].float().cpu().numpy() * area
                self.prompt_sum = weights if self.prompt_sum is None else self.prompt_sum + weights
            for level, routing in record.pixel.items():
                self.add_pixel_level(level, tile, routing.experts[index].cpu().numpy())
            for band, choice in record.image.items():
                experts = tuple(int(e) for e in choice.experts[index].tolist())
                self.band_choices.setdefault(band, []).append(experts)
            self.tiles += 1

    def add_pixel_level(self, level: str, tile: Tile, experts: np.ndarray) -> None:
        """One tile's (k, h, w) expert choices at one level, scaled to image pixels and cropped
        to the tile's core: the top-1 expert goes into the map, all k into the histogram."""
        rows, cols = self.core_in_image(tile)
        scale_y = (tile.rows.stop - tile.rows.start) // experts.shape[1]
        scale_x = (tile.cols.stop - tile.cols.start) // experts.shape[2]
        level_rows = (np.arange(rows.start, rows.stop) - tile.rows.start) // scale_y
        level_cols = (np.arange(cols.start, cols.stop) - tile.cols.start) // scale_x
        core = experts[:, level_rows][:, :, level_cols]
        if level not in self.maps:
            self.maps[level] = np.zeros((self.height, self.width), np.int8)
            self.pixel_counts[level] = np.zeros(self.pixel_experts, np.int64)
        m = self.margin
        self.maps[level][rows.start - m : rows.stop - m, cols.start - m : cols.stop - m] = core[0]
        self.pixel_counts[level] += np.bincount(core.ravel(), minlength=self.pixel_experts)

    def summary(self) -> RoutingSummary:
        """The aggregated routing of the whole image."""
        pixels = self.height * self.width
        prompt = self.prompt_sum / pixels if self.prompt_sum is not None else np.zeros(0)
        band_usage = {
            band: tuple(int(c) for c in np.bincount(np.ravel(choices), minlength=self.band_experts))
            for band, choices in sorted(self.band_choices.items())
        }
        return RoutingSummary(
            prompt_weights=tuple(float(w) for w in prompt),
            pixel_usage={k: tuple(int(c) for c in v) for k, v in self.pixel_counts.items()},
            band_choices={k: tuple(v) for k, v in sorted(self.band_choices.items())},
            band_usage=band_usage,
            tiles=self.tiles,
            pixels=pixels,
        )
