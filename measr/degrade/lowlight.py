"""LOL-like low light: darken in linear light, add Poisson-Gaussian sensor noise, save 8 bits.

Pixel values are taken as a display encoding of linear light with a plain power law
(linear = value ** 2.2). In linear light the image is raised to an extra gamma (shadows sink
faster than highlights, as in an under-exposed camera JPEG) and scaled by an exposure gain.
The sensor then counts photo-electrons (Poisson, `photons` for a full-white pixel) and adds
Gaussian read noise; the result is encoded back and quantised to 8 bits.
"""

from __future__ import annotations

import numpy as np

from measr.degrade._image import as_image, quantize_8bit
from measr.degrade.ranges import LOW_LIGHT


def to_linear(img: np.ndarray) -> np.ndarray:
    """Display values in [0, 1] to linear light in [0, 1] (power law, gamma 2.2)."""
    return np.power(np.clip(img, 0.0, 1.0), LOW_LIGHT.display_gamma).astype(np.float32)


def to_display(linear: np.ndarray) -> np.ndarray:
    """Linear light to display values in [0, 1], clipping first (inverse of to_linear)."""
    return np.power(np.clip(linear, 0.0, 1.0), 1.0 / LOW_LIGHT.display_gamma).astype(np.float32)


def darken(linear: np.ndarray, gain: float, gamma: float) -> np.ndarray:
    """Linear light times gain in (0, 1], raised to gamma >= 1 first: gain * linear ** gamma."""
    if not 0.0 < gain <= 1.0 or gamma < 1.0:
        raise ValueError(f"low light needs gain in (0, 1] and gamma >= 1, got {gain}, {gamma}")
    return (gain * np.power(linear, gamma)).astype(np.float32)


def poisson_gaussian_noise(
    linear: np.ndarray, photons: float, read_noise: float, rng: np.random.Generator
) -> np.ndarray:
    """Shot noise with `photons` (> 0) electrons at full scale, plus N(0, read_noise >= 0)."""
    if photons <= 0.0 or read_noise < 0.0:
        raise ValueError(f"need photons > 0 and read_noise >= 0, got {photons}, {read_noise}")
    electrons = rng.poisson(np.clip(linear, 0.0, None).astype(np.float64) * photons)
    read = rng.standard_normal(linear.shape) * read_noise
    return (electrons / photons + read).astype(np.float32)


def add_low_light(
    img: np.ndarray,
    rng: np.random.Generator,
    *,
    gain: float | None = None,
    gamma: float | None = None,
    photons: float | None = None,
    read_noise: float | None = None,
) -> np.ndarray:
    """Low light; gain in [0.05, 0.3], gamma in [1.5, 3], photons [800, 6000], read [5e-4, 2e-3]."""
    clean = as_image(img)
    gain = LOW_LIGHT.gain.pick(rng, gain)
    gamma = LOW_LIGHT.gamma.pick(rng, gamma)
    photons = LOW_LIGHT.photons.pick(rng, photons)
    read_noise = LOW_LIGHT.read_noise.pick(rng, read_noise)
    dark = darken(to_linear(clean), gain, gamma)
    return quantize_8bit(to_display(poisson_gaussian_noise(dark, photons, read_noise, rng)))
