"""Synthetic rain streaks in the style of Rain100L (light) and Rain100H (heavy).

A streak layer is sparse random seeds smeared along one direction by an anti-aliased line
kernel, softened by a small gaussian, and screen-blended onto the image. Angles are in degrees
from vertical; a positive angle tilts the streaks so the rain falls towards the right.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from measr.degrade._image import as_image, clip_unit
from measr.degrade.ranges import RAIN_HEAVY, RAIN_LIGHT, RainStyle

SEED_INTENSITY = (0.5, 1.0)  # each streak gets its own intensity, a share of the layer brightness


def streak_kernel(length: float, width: float, angle: float) -> np.ndarray:
    """Line kernel with peak 1 and tapered ends; length >= 1 px, width > 0 px, angle in degrees."""
    if length < 1.0 or width <= 0.0:
        raise ValueError(f"streak length must be >= 1 and width > 0, got {length}, {width}")
    half = length / 2.0
    radius = math.ceil(half + width)
    ys, xs = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(np.float32)
    theta = math.radians(angle)
    along_x, along_y = math.sin(theta), math.cos(theta)  # unit vector down the streak
    along = xs * along_x + ys * along_y
    across = np.abs(xs * along_y - ys * along_x)
    core = np.clip(width / 2.0 + 0.5 - across, 0.0, 1.0)
    taper = np.sqrt(np.clip(1.0 - (along / half) ** 2, 0.0, 1.0))
    kernel = (core * taper).astype(np.float32)
    return kernel / kernel.max()


def streak_layer(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    density: float,
    length: float,
    width: float,
    angle: float,
    softness: float = 0.5,
) -> np.ndarray:
    """(H, W) streak intensities in [0, 1]; density in (0, 1] is the share of seed pixels."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"rain density must be in (0, 1], got {density}")
    kernel = streak_kernel(length, width, angle)
    pad = kernel.shape[0] // 2 + 1  # seeds outside the frame let streaks enter from the edges
    height, width_px = shape[0] + 2 * pad, shape[1] + 2 * pad
    starts = rng.random((height, width_px)) < density
    intensity = rng.uniform(*SEED_INTENSITY, size=(height, width_px))
    seeds = (starts * intensity).astype(np.float32)
    streaks = cv2.filter2D(seeds, cv2.CV_32F, kernel, borderType=cv2.BORDER_CONSTANT)
    if softness > 0.0:
        streaks = cv2.GaussianBlur(streaks, (0, 0), sigmaX=softness)
    return np.clip(streaks[pad:-pad, pad:-pad], 0.0, 1.0).astype(np.float32)


def screen_blend(img: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """Screen blend of an (H, W) layer in [0, 1] onto an image: 1 - (1 - img)(1 - layer)."""
    return clip_unit(1.0 - (1.0 - img) * (1.0 - layer[..., None]))


def rain_streaks(
    shape: tuple[int, int],
    rng: np.random.Generator,
    style: RainStyle,
    *,
    angle: float | None = None,
    density: float | None = None,
    length: float | None = None,
    width: float | None = None,
    brightness: float | None = None,
) -> np.ndarray:
    """All streak layers of one image screen-combined into one (H, W) layer in [0, 1]."""
    base_angle = style.angle.pick(rng, angle)
    combined = np.zeros(shape, dtype=np.float32)
    for _ in range(style.layers.sample(rng)):
        jitter = rng.uniform(-style.layer_angle_jitter, style.layer_angle_jitter)
        layer = streak_layer(
            shape,
            rng,
            density=style.density.pick(rng, density),
            length=style.length.pick(rng, length),
            width=style.width.pick(rng, width),
            angle=base_angle + jitter,
            softness=style.softness.sample(rng),
        )
        strength = style.brightness.pick(rng, brightness)
        combined = (1.0 - (1.0 - combined) * (1.0 - strength * layer)).astype(np.float32)
    return clip_unit(combined)


def add_rain(
    img: np.ndarray,
    rng: np.random.Generator,
    heavy: bool = False,
    *,
    angle: float | None = None,
    density: float | None = None,
    length: float | None = None,
    width: float | None = None,
    brightness: float | None = None,
) -> np.ndarray:
    """Light/heavy rain; angle [-30, 30] deg, density (0, 1], sizes in px, brightness [0, 1]."""
    clean = as_image(img)
    style = RAIN_HEAVY if heavy else RAIN_LIGHT
    veil = style.veil.sample(rng)
    base = clean * (1.0 - veil) + veil * style.veil_level
    streaks = rain_streaks(
        clean.shape[:2],
        rng,
        style,
        angle=angle,
        density=density,
        length=length,
        width=width,
        brightness=brightness,
    )
    return screen_blend(base, streaks)
