"""Additive white Gaussian noise, saved as 8 bits like the CBSD68 / Kodak24 test protocol."""

from __future__ import annotations

import numpy as np

from measr.degrade._image import as_image, quantize_8bit
from measr.degrade.ranges import NOISE


def add_gaussian_noise(
    img: np.ndarray, sigma: float | None, rng: np.random.Generator, *, quantize: bool = True
) -> np.ndarray:
    """Add N(0, sigma) noise, sigma on the 0-255 scale in [0, 255] (None: uniform in [0, 55])."""
    clean = as_image(img)
    sigma = NOISE.sigma.pick(rng, sigma)
    if sigma not in NOISE.valid_sigma:
        raise ValueError(f"noise sigma must be in {NOISE.valid_sigma} (0-255 scale), got {sigma}")
    noise = rng.standard_normal(clean.shape, dtype=np.float32) * np.float32(sigma / 255.0)
    noisy = clean + noise
    return quantize_8bit(noisy) if quantize else np.clip(noisy, 0.0, 1.0).astype(np.float32)
