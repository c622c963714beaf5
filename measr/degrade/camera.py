"""Noise as a phone camera makes it: signal-dependent noise on the raw Bayer mosaic, carried
through demosaicing, white balance, colour correction and JPEG.

The clean photo is taken back to what the sensor saw ("unprocessing", Brooks et al. 2019):
display values to linear light (power 2.2), the colour correction undone (it desaturates), the
white balance undone (red and blue divided by their gains), one colour kept per pixel through
a Bayer filter. There the noise is Poisson-Gaussian (Foi et al. 2008): photo-electrons are
Poisson, so the variance grows with the signal, `shot * x`, plus Gaussian read noise of variance
`read`. The camera then demosaics (Malvar, He and Cutler's linear 5x5 filters, which spread
each pixel's noise over its neighbours and colours; the scene itself is not re-demosaiced, its
clean photo was demosaiced once already), applies the white balance and colour correction
(which amplify red and blue noise and mix it across channels: the chroma blotches of real
phone photos), encodes for display, rounds to 8 bits and saves a JPEG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from measr.degrade._image import as_image, quantize_8bit
from measr.degrade.jpeg import compress
from measr.degrade.lowlight import poisson_gaussian_noise, to_display, to_linear
from measr.degrade.ranges import CAMERA_NOISE

# Bayer patterns by the colours of their top-left 2x2 cell, read row by row; a crop of a photo
# may start on any of them.
BAYER_PATTERNS = ("rggb", "grbg", "gbrg", "bggr")
CHANNEL = {"r": 0, "g": 1, "b": 2}

# Malvar, He and Cutler (2004), "High-quality linear interpolation for demosaicing of
# Bayer-patterned color images", Fig. 2, in eighths: green at a red or blue pixel; the other
# of red/blue at a green pixel whose row holds it (its transpose: whose column holds it); red
# at blue and blue at red.
GREEN_AT_RED_OR_BLUE = (
    np.array(
        [
            [0, 0, -1, 0, 0],
            [0, 0, 2, 0, 0],
            [-1, 2, 4, 2, -1],
            [0, 0, 2, 0, 0],
            [0, 0, -1, 0, 0],
        ]
    )
    / 8.0
)
ALONG_ROW_AT_GREEN = (
    np.array(
        [
            [0, 0, 0.5, 0, 0],
            [0, -1, 0, -1, 0],
            [-1, 4, 5, 4, -1],
            [0, -1, 0, -1, 0],
            [0, 0, 0.5, 0, 0],
        ]
    )
    / 8.0
)
ACROSS_AT_RED_OR_BLUE = (
    np.array(
        [
            [0, 0, -1.5, 0, 0],
            [0, 2, 0, 2, 0],
            [-1.5, 0, 6, 0, -1.5],
            [0, 2, 0, 2, 0],
            [0, 0, -1.5, 0, 0],
        ]
    )
    / 8.0
)
DEMOSAIC_KERNELS = (
    GREEN_AT_RED_OR_BLUE,
    ALONG_ROW_AT_GREEN,
    ALONG_ROW_AT_GREEN.T,
    ACROSS_AT_RED_OR_BLUE,
)


@dataclass(frozen=True)
class CameraDraw:
    """One photo's camera: noise levels (shot gain, read variance, both of linear light in
    [0, 1]), white-balance gains, colour correction, Bayer pattern and JPEG quality."""

    shot: float
    read: float
    red_gain: float
    blue_gain: float
    saturation: float
    pattern: str
    quality: int


def draw_camera(
    rng: np.random.Generator,
    *,
    shot: float | None = None,
    read: float | None = None,
    quality: int | None = None,
) -> CameraDraw:
    """A phone's settings: log(shot) uniform over CAMERA_NOISE.shot, log(read) on Brooks et
    al.'s line through it with a Gaussian spread, gains, pattern and quality uniform."""
    ranges = CAMERA_NOISE
    log_shot = rng.uniform(math.log(ranges.shot.low), math.log(ranges.shot.high))
    spread = rng.normal(0.0, ranges.read_spread)
    drawn_shot = math.exp(log_shot)
    chosen_shot = drawn_shot if shot is None else float(shot)
    drawn_read = math.exp(
        ranges.read_slope * math.log(chosen_shot) + ranges.read_intercept + spread
    )
    chosen_read = drawn_read if read is None else float(read)
    if chosen_shot <= 0.0 or chosen_read < 0.0:
        raise ValueError(f"need shot > 0 and read >= 0, got {chosen_shot}, {chosen_read}")
    return CameraDraw(
        shot=chosen_shot,
        read=chosen_read,
        red_gain=ranges.red_gain.sample(rng),
        blue_gain=ranges.blue_gain.sample(rng),
        saturation=ranges.saturation.sample(rng),
        pattern=BAYER_PATTERNS[int(rng.integers(0, len(BAYER_PATTERNS)))],
        quality=ranges.quality.pick(rng, quality),
    )


def colour_correction(saturation: float) -> np.ndarray:
    """(3, 3) camera-to-display matrix (1 + s) I - (s / 3) J: rows sum to 1 (grey stays grey),
    colours are pushed away from grey by 1 + s. Its inverse is a convex mix towards grey."""
    return (1.0 + saturation) * np.eye(3) - saturation / 3.0 * np.ones((3, 3))


def bayer_channels(shape: tuple[int, int], pattern: str) -> np.ndarray:
    """(H, W) index of the colour (0 red, 1 green, 2 blue) each pixel of a Bayer pattern sees."""
    cell = np.array([CHANNEL[c] for c in pattern]).reshape(2, 2)
    height, width = shape
    return np.tile(cell, ((height + 1) // 2, (width + 1) // 2))[:height, :width]


def mosaic(raw: np.ndarray, pattern: str) -> np.ndarray:
    """(H, W) Bayer mosaic of an (H, W, 3) image: each pixel's own colour of `pattern`."""
    channels = bayer_channels(raw.shape[:2], pattern)
    return np.take_along_axis(raw, channels[..., None], axis=2)[..., 0]


def demosaic(bayer: np.ndarray, pattern: str) -> np.ndarray:
    """(H, W, 3) image from an (H, W) mosaic by Malvar-He-Cutler interpolation, borders
    mirrored about the edge pixel (which keeps the Bayer phase)."""
    src = np.ascontiguousarray(bayer, dtype=np.float32)
    green, along_row, along_column, across = (
        cv2.filter2D(src, cv2.CV_32F, k.astype(np.float32), borderType=cv2.BORDER_REFLECT_101)
        for k in DEMOSAIC_KERNELS
    )
    return assemble(src, green, along_row, along_column, across, bayer_channels(src.shape, pattern))


def assemble(
    bayer: np.ndarray,
    green: np.ndarray,
    along_row: np.ndarray,
    along_column: np.ndarray,
    across: np.ndarray,
    channels: np.ndarray,
) -> np.ndarray:
    """(H, W, 3) from the mosaic, its four filtered images and each pixel's colour index."""
    red_row = np.any(channels == 0, axis=1, keepdims=True)  # rows whose pixels include red
    at_red, at_green, at_blue = (channels == c for c in range(3))
    red = np.select([at_red, at_blue, at_green & red_row], [bayer, across, along_row], along_column)
    blue = np.select(
        [at_blue, at_red, at_green & ~red_row], [bayer, across, along_row], along_column
    )
    return np.stack([red, np.where(at_green, bayer, green), blue], axis=2).astype(np.float32)


def sensor_image(clean: np.ndarray, camera: CameraDraw, rng: np.random.Generator) -> np.ndarray:
    """The 8-bit display image the camera makes of `clean`, before its JPEG."""
    correction = colour_correction(camera.saturation)
    white = np.array([camera.red_gain, 1.0, camera.blue_gain])
    raw = to_linear(clean) @ np.linalg.inv(correction).T / white
    bayer = mosaic(raw.astype(np.float32), camera.pattern)
    noisy = poisson_gaussian_noise(bayer, 1.0 / camera.shot, math.sqrt(camera.read), rng)
    # Demosaicing is linear: the noise goes through it alone. Its errors on the scene itself
    # are left out, since the clean photos were demosaiced once already.
    rgb = ((raw + demosaic(noisy - bayer, camera.pattern)) * white) @ correction.T
    return quantize_8bit(to_display(rgb.astype(np.float32)))


def add_camera_noise(
    img: np.ndarray,
    rng: np.random.Generator,
    *,
    shot: float | None = None,
    read: float | None = None,
    quality: int | None = None,
) -> np.ndarray:
    """Phone noise; shot > 0 (random: log-uniform in [1e-4, 1.2e-2]), read variance >= 0
    (random: Brooks et al.'s line through shot), JPEG quality (random: [70, 95])."""
    clean = as_image(img)
    camera = draw_camera(rng, shot=shot, read=read, quality=quality)
    return compress(sensor_image(clean, camera, rng), camera.quality)
