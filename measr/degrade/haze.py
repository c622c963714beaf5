"""Haze by the atmospheric scattering model I = J t + A (1 - t), with t = exp(-beta d).

There are no depth maps for arbitrary photos, so d takes one of three forms. Most often it is
a proxy mixed from three cues, each in [0, 1]: a vertical ramp (the top of a photo is usually
farther away), a smooth random field, and the smoothed dark channel of the clean image (bright,
grey regions such as sky are far); the mix is normalised to [0, 1] and mapped to
[depth_near, 1]. An even veil is haze at one depth everywhere (t constant: a fogged window, a
flat haze over a distant view), and height haze grows with height alone (a tilted vertical
ramp raised to a power). The airlight A is near grey, or now and then coloured (dust, smog, a
warm or blue sky).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from measr.degrade._image import as_image, clip_unit
from measr.degrade.ranges import HAZE

# Unit directions off grey in RGB: yellow (+) against blue (-), and red against green.
YELLOW_BLUE = np.array([1.0, 1.0, -2.0]) / math.sqrt(6.0)
RED_GREEN = np.array([1.0, -1.0, 0.0]) / math.sqrt(2.0)


@dataclass(frozen=True)
class HazeDraw:
    """Everything a hazy image draws besides the clean image itself: the scattering beta, the
    RGB airlight, the depth cues' weights (vertical ramp, random field, dark channel) and the
    (H, W) field; an even veil has depth 1 everywhere and beta = -ln t."""

    form: str
    beta: float
    airlight: np.ndarray
    weights: np.ndarray
    field: np.ndarray
    even: bool


def vertical_ramp(height: int, width: int) -> np.ndarray:
    """(H, W) ramp from 1 at the top row to 0 at the bottom row."""
    column = np.linspace(1.0, 0.0, height, dtype=np.float32)
    return np.repeat(column[:, None], width, axis=1)


def height_ramp(height: int, width: int, tilt: float, power: float) -> np.ndarray:
    """(H, W) height above the bottom in [0, 1] along a direction `tilt` degrees off vertical
    (a leaning horizon), raised to `power` > 0 (above 1: the haze thickens near the top)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    radians = math.radians(tilt)
    up = -ys * math.cos(radians) + xs * math.sin(radians)
    return (normalise(up) ** power).astype(np.float32)


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


def draw_depth_cues(
    shape: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The depth proxy's draws for an (H, W) image: the cues' weights (3,) and the field."""
    weights = np.array(
        [
            HAZE.weight_vertical.sample(rng),
            HAZE.weight_field.sample(rng),
            HAZE.weight_dark_channel.sample(rng),
        ]
    )
    height, width = shape
    return weights, smooth_field(height, width, HAZE.field_cells.sample(rng), rng)


def mixed_depth(clean: np.ndarray, weights: np.ndarray, field: np.ndarray) -> np.ndarray:
    """(H, W) depth in [depth_near, 1] from the cues mixed with `weights` (a cue of weight 0,
    such as the dark channel of height haze, is not computed)."""
    height, width = clean.shape[:2]
    w_vertical, w_field, w_dark = (float(w) for w in weights)
    mixed = w_vertical * vertical_ramp(height, width) + w_field * field
    if w_dark:
        scale = min(height, width)
        dark = dark_channel(clean, max(1, scale // 32) | 1)
        mixed = mixed + w_dark * cv2.GaussianBlur(dark, (0, 0), sigmaX=max(1.0, scale / 24.0))
    return (HAZE.depth_near + (1.0 - HAZE.depth_near) * normalise(mixed)).astype(np.float32)


def depth_proxy(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W) relative depth in [depth_near, 1] (1 = farthest) of an (H, W, 3) image."""
    clean = as_image(img)
    weights, field = draw_depth_cues(clean.shape[:2], rng)
    return mixed_depth(clean, weights, field)


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


def coloured(light: np.ndarray, strength: float, hue: float, warm: bool) -> np.ndarray:
    """The airlight `light` (RGB) coloured: its grey level moved off grey by `strength` of
    itself, towards yellow (warm) or blue, turned `hue` degrees towards red or green."""
    radians = math.radians(hue)
    direction = (1.0 if warm else -1.0) * math.cos(radians) * YELLOW_BLUE
    direction = direction + math.sin(radians) * RED_GREEN
    level = float(np.mean(light))
    return np.clip(level * (1.0 + strength * direction), 0.0, 1.0).astype(np.float32)


def draw_haze(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    beta: float | None = None,
    airlight: float | Sequence[float] | None = None,
    form: str | None = None,
    colour: bool | None = None,
) -> HazeDraw:
    """The draws of one hazy (H, W) image. The depth form and the airlight's colour are drawn
    after what haze drew before they existed, so that the depth form with a grey airlight
    (`form="depth", colour=False`) is that haze, draw for draw. A given beta keeps the depth
    proxy unless a form is named (an even veil has no beta of its own)."""
    drawn_beta = HAZE.beta.pick(rng, beta)
    light = pick_airlight(rng, airlight)
    weights, field = draw_depth_cues(shape, rng)
    chosen = HAZE.form.pick(rng, "depth" if form is None and beta is not None else form)
    veil = HAZE.veil_transmission.sample(rng)
    tilt, power = HAZE.height_tilt.sample(rng), HAZE.height_power.sample(rng)
    drawn_colour = rng.random() < HAZE.coloured_probability
    strength, hue = HAZE.colour_strength.sample(rng), HAZE.colour_hue.sample(rng)
    warm = rng.random() < 0.5
    if airlight is None and (drawn_colour if colour is None else colour):
        light = coloured(light, strength, hue, warm)
    if chosen == "veil":
        return HazeDraw(chosen, -math.log(veil), light, np.zeros(3), field, even=True)
    if chosen == "height":
        ramp = height_ramp(*shape, tilt, power)
        return HazeDraw(chosen, drawn_beta, light, np.array([0.0, 1.0, 0.0]), ramp, even=False)
    return HazeDraw(chosen, drawn_beta, light, weights, field, even=False)


def hazy(clean: np.ndarray, draw: HazeDraw) -> np.ndarray:
    """The clean (H, W, 3) image seen through the haze of `draw`."""
    if draw.even:
        depth = np.ones(clean.shape[:2], dtype=np.float32)
    else:
        depth = mixed_depth(clean, draw.weights, draw.field)
    trans = transmission(depth, draw.beta)[..., None]
    return clip_unit(clean * trans + draw.airlight * (1.0 - trans))


def add_haze(
    img: np.ndarray,
    rng: np.random.Generator,
    *,
    beta: float | None = None,
    airlight: float | Sequence[float] | None = None,
    form: str | None = None,
    colour: bool | None = None,
) -> np.ndarray:
    """Haze; form "depth", "veil" or "height" (random: 0.5, 0.25, 0.25; "depth" when only
    beta is given), beta >= 0 (random: [0.6, 1.8]; an even veil draws its t in [0.4, 0.8]
    instead), airlight grey or RGB in [0, 1] (random: grey level in [0.7, 1], coloured with
    p = 0.3 unless `colour` says)."""
    clean = as_image(img)
    return hazy(
        clean,
        draw_haze(clean.shape[:2], rng, beta=beta, airlight=airlight, form=form, colour=colour),
    )
