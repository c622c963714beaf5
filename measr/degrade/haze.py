"""Haze by the atmospheric scattering model I = J t + A (1 - t), with t = exp(-beta d).

There are no depth maps for arbitrary photos, so d is a proxy mixed from three cues, each in
[0, 1]: a vertical ramp (the top of a photo is usually farther away), a smooth random field,
and the smoothed dark channel of the clean image (bright, grey regions such as sky are far).
The mix is normalised to [0, 1] and mapped to [depth_near, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from measr.degrade._image import as_image, clip_unit
from measr.degrade.ranges import HAZE


def vertical_ramp(height: int, width: int) -> np.ndarray:
    """(H, W) ramp from 1 at the top row to 0 at the bottom row."""
    column = np.linspace(1.0, 0.0, height, dtype=np.float32)
    return np.repeat(column[:, None], width, axis=1)


def smooth_field(height: int, width: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W) smooth random field in [0, 1] interpolated from a (cells+1)^2 grid, cells >= 1."""
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    field = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    return normalise(field)


def dark_channel(img: np.ndarray, window: int) -> np.ndarray:
    """(H, W) minimum over the channels and a window x window square, window >= 1 px: the
    dark channel of He et al. (Eq. 5), here a depth cue and in the dehazing baseline
    (`measr.evaluation.classical`) the haze estimate."""
    darkest = img.min(axis=2)
    kernel = np.ones((window, window), dtype=np.uint8)
    return cv2.erode(darkest, kernel, borderType=cv2.BORDER_REFLECT)


def normalise(values: np.ndarray) -> np.ndarray:
    """Stretch to [0, 1] by min and max; a constant array becomes zeros."""
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-6:
        return np.zeros_like(values, dtype=np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


def depth_proxy(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W) relative depth in [depth_near, 1] (1 = farthest) of an (H, W, 3) image."""
    clean = as_image(img)
    height, width = clean.shape[:2]
    scale = min(height, width)
    w_vertical = HAZE.weight_vertical.sample(rng)
    w_field = HAZE.weight_field.sample(rng)
    w_dark = HAZE.weight_dark_channel.sample(rng)
    field = smooth_field(height, width, HAZE.field_cells.sample(rng), rng)
    dark = dark_channel(clean, max(1, scale // 32) | 1)
    dark = cv2.GaussianBlur(dark, (0, 0), sigmaX=max(1.0, scale / 24.0))
    mixed = w_vertical * vertical_ramp(height, width) + w_field * field + w_dark * dark
    return (HAZE.depth_near + (1.0 - HAZE.depth_near) * normalise(mixed)).astype(np.float32)


def transmission(depth: np.ndarray, beta: float) -> np.ndarray:
    """Transmission exp(-beta d) in (0, 1] of a depth map d >= 0, beta >= 0."""
    if beta < 0.0:
        raise ValueError(f"haze beta must be >= 0, got {beta}")
    return np.exp(-beta * depth).astype(np.float32)


def pick_airlight(
    rng: np.random.Generator, airlight: float | Sequence[float] | None = None
) -> np.ndarray:
    """RGB atmospheric light: a grey level in [0.7, 1] with a slight tint, or the given one."""
    level = HAZE.airlight.sample(rng)
    tint = 1.0 + rng.uniform(-HAZE.airlight_tint, HAZE.airlight_tint, size=3)
    drawn = np.clip(level * tint, 0.0, 1.0)
    chosen = drawn if airlight is None else np.broadcast_to(np.asarray(airlight, float), (3,))
    if np.any(chosen < 0.0) or np.any(chosen > 1.0):
        raise ValueError(f"airlight must be in [0, 1], got {airlight}")
    return chosen.astype(np.float32)


def add_haze(
    img: np.ndarray,
    rng: np.random.Generator,
    *,
    beta: float | None = None,
    airlight: float | Sequence[float] | None = None,
) -> np.ndarray:
    """Haze; beta >= 0 (random: [0.6, 1.8]), airlight grey or RGB in [0, 1] (random: [0.7, 1])."""
    clean = as_image(img)
    beta = HAZE.beta.pick(rng, beta)
    light = pick_airlight(rng, airlight)
    trans = transmission(depth_proxy(clean, rng), beta)[..., None]
    return clip_unit(clean * trans + light * (1.0 - trans))
