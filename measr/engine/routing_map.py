"""A picture of the routing: each pixel's top-1 expert at one level, coloured over the grey
image, with a legend strip below it."""

from __future__ import annotations

import cv2
import numpy as np

# Fixed colours (RGB), one per expert index, so maps of different images compare at a glance.
PALETTE = (
    np.array(
        [
            (230, 25, 75),
            (60, 180, 75),
            (0, 130, 200),
            (255, 225, 25),
            (145, 30, 180),
            (70, 240, 240),
            (245, 130, 48),
            (240, 50, 230),
            (128, 128, 0),
            (0, 0, 128),
        ],
        dtype=np.float32,
    )
    / 255
)
OPACITY = 0.55  # colour share of each pixel: enough to read the expert, the photo stays visible
_ROW_HEIGHT = 20
_ENTRY_WIDTH = 48
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def expert_colours(expert_map: np.ndarray) -> np.ndarray:
    """(H, W, 3) palette colours of an (H, W) map of expert indices."""
    return PALETTE[expert_map.astype(np.int64) % len(PALETTE)]


def grey(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) grey version of (H, W, 1|3) pixels (channel mean)."""
    mean = pixels.mean(axis=2, keepdims=True, dtype=np.float32)
    return np.repeat(mean, 3, axis=2)


def legend_strip(width: int, experts: int) -> np.ndarray:
    """A white (h, width, 3) float strip with one coloured square and label per expert, wrapped
    into as many rows as the width needs."""
    per_row = max(1, width // _ENTRY_WIDTH)
    rows = -(-experts // per_row)
    strip = np.full((rows * _ROW_HEIGHT, width, 3), 255, np.uint8)  # OpenCV draws text on 8 bits
    for expert in range(experts):
        top = (expert // per_row) * _ROW_HEIGHT
        left = (expert % per_row) * _ENTRY_WIDTH + 4
        colour = tuple(int(c * 255) for c in PALETTE[expert % len(PALETTE)])
        cv2.rectangle(strip, (left, top + 4), (left + 11, top + 15), colour, thickness=-1)
        label_at = (left + 15, top + 15)
        cv2.putText(strip, f"e{expert}", label_at, _FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return strip.astype(np.float32) / 255


def render_routing_map(pixels: np.ndarray, expert_map: np.ndarray, experts: int) -> np.ndarray:
    """(H + legend, W, 3) float32 RGB in [0, 1]: expert colours blended over the grey image,
    the legend below."""
    blended = (1 - OPACITY) * grey(pixels) + OPACITY * expert_colours(expert_map)
    return np.concatenate([blended, legend_strip(pixels.shape[1], experts)], axis=0)
