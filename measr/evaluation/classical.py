"""Classical restorations used as baselines, as pure functions on float32 (H, W, 3) RGB in [0, 1]:
dark channel prior dehazing (He, Sun, Tang, CVPR 2009) refined with a guided filter (He, Sun,
Tang, ECCV 2010), automatic gamma for low light, a global percentile contrast stretch, and
OpenCV's non-local means denoising (Buades, Coll, Morel, CVPR 2005)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from measr.degrade.haze import dark_channel


@dataclass(frozen=True)
class DarkChannelSettings:
    """The paper's constants: 15x15 patches, airlight from the 0.1% haziest pixels, keep 5% of
    the haze (omega), t >= 0.1. The guided filter (gray guide, radius 60, epsilon 1e-4) replaces
    the paper's soft matting, as common implementations do."""

    patch: int = 15
    brightest_fraction: float = 0.001
    omega: float = 0.95
    t0: float = 0.1
    guide_radius: int = 60
    guide_eps: float = 1e-4


DARK_CHANNEL = DarkChannelSettings()

# Rec. 709 luma weights: "mean luminance" of an sRGB image, as auto-gamma targets it.
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
_MID_GREY = 0.5
_DARKEST_MEAN = 1e-3  # a black frame has no gamma that lifts it; cap the exponent there

# The contrast stretch maps these percentiles of all samples (every channel together, so colours
# keep their balance) to 0 and 1.
STRETCH_PERCENTILES = (0.5, 99.5)

# Non-local means strength per unit of noise sigma (both on the 0-255 scale), for OpenCV's
# luminance (h) and colour (hColor) filters: the best of a grid (h 0.4-1.2 sigma, hColor 0.5-3 h)
# on five 256 px crops of BSD400 training photos at sigma 15, 25 and 50 (never validation data).
NLM_LUMA_PER_SIGMA = 0.5
NLM_COLOUR_PER_SIGMA = 0.75
NLM_TEMPLATE, NLM_SEARCH = 7, 21  # OpenCV's default windows
_LEVELS = 255.0
# Immerkaer's noise estimator: this kernel cancels smooth image content (up to second order).
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def atmospheric_light(image: np.ndarray, dark: np.ndarray, fraction: float) -> np.ndarray:
    """(3,) airlight: of the `fraction` brightest dark-channel pixels, the colour of the one
    brightest in the input (Sec. 4.4)."""
    flat_dark = dark.reshape(-1)
    count = max(1, round(flat_dark.size * fraction))
    candidates = np.argpartition(flat_dark, -count)[-count:]
    pixels = image.reshape(-1, 3)[candidates]
    return pixels[np.argmax(pixels.sum(axis=1))].astype(np.float32)


def box_mean(array: np.ndarray, radius: int) -> np.ndarray:
    """(H, W) mean over the (2r+1)^2 window clipped to the image: a zero-padded box sum divided
    by the number of pixels inside (the guided filter paper's `boxfilter`, any radius)."""
    size = (2 * radius + 1, 2 * radius + 1)
    values = np.asarray(array, dtype=np.float64)
    sums = cv2.boxFilter(values, -1, size, normalize=False, borderType=cv2.BORDER_CONSTANT)
    counts = cv2.boxFilter(
        np.ones_like(values), -1, size, normalize=False, borderType=cv2.BORDER_CONSTANT
    )
    return sums / counts


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Edge-preserving smoothing of `source` following the gray `guide` (He et al. 2010, Alg. 1);
    both (H, W)."""
    mean_guide = box_mean(guide, radius)
    mean_source = box_mean(source, radius)
    covariance = box_mean(guide * source, radius) - mean_guide * mean_source
    variance = box_mean(guide * guide, radius) - mean_guide * mean_guide
    a = covariance / (variance + eps)
    b = mean_source - a * mean_guide
    return box_mean(a, radius) * guide + box_mean(b, radius)


def dehaze_dark_channel(
    image: np.ndarray, settings: DarkChannelSettings = DARK_CHANNEL
) -> np.ndarray:
    """Haze-free estimate J = (I - A) / max(t, t0) + A with t from the dark channel prior (Eq. 12,
    22), refined by a guided filter on the gray image instead of soft matting."""
    hazy = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    airlight = np.maximum(
        atmospheric_light(hazy, dark_channel(hazy, settings.patch), settings.brightest_fraction),
        1e-3,
    )
    coarse = 1.0 - settings.omega * dark_channel(hazy / airlight, settings.patch)
    gray = cv2.cvtColor(hazy, cv2.COLOR_RGB2GRAY)
    refined = guided_filter(gray, coarse, settings.guide_radius, settings.guide_eps)
    transmission = np.maximum(refined, settings.t0)[:, :, np.newaxis]
    restored = (hazy - airlight) / transmission + airlight
    return np.clip(restored, 0.0, 1.0).astype(np.float32)


def auto_gamma_exponent(image: np.ndarray) -> float:
    """The gamma that maps the image's mean luminance to mid grey: mean ** gamma = 0.5."""
    mean = float(np.clip(np.asarray(image, dtype=np.float32) @ _LUMA, 0.0, 1.0).mean())
    mean = min(max(mean, _DARKEST_MEAN), 1.0 - _DARKEST_MEAN)
    return math.log(_MID_GREY) / math.log(mean)


def auto_gamma(image: np.ndarray) -> np.ndarray:
    """Low-light enhancement by one global gamma curve chosen by `auto_gamma_exponent`."""
    pixels = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    return np.power(pixels, np.float32(auto_gamma_exponent(pixels))).astype(np.float32)


def contrast_stretch(
    image: np.ndarray, percentiles: tuple[float, float] = STRETCH_PERCENTILES
) -> np.ndarray:
    """Map the low and high percentiles of all samples to 0 and 1, linearly (one curve for the
    whole image and every channel): the one-liner that lifts an even veil or a dim exposure."""
    pixels = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    low, high = np.percentile(pixels, percentiles)
    if high - low < 1e-6:  # a flat image has no contrast to stretch
        return pixels
    return np.clip((pixels - low) / (high - low), 0.0, 1.0).astype(np.float32)


def estimate_noise_sigma(image: np.ndarray) -> float:
    """Blind estimate of white Gaussian noise sigma on the [0, 1] scale (Immerkaer, CVIU 1996):
    the mean absolute response of a kernel blind to smooth content, over every channel (a gray
    mix would average the channels' independent noise down)."""
    pixels = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    if min(pixels.shape[:2]) < 3:
        return 0.0
    response = cv2.filter2D(pixels, -1, _NOISE_KERNEL)[1:-1, 1:-1]
    return float(math.sqrt(math.pi / 2) * np.abs(response).mean() / 6)


def nl_means_strength(image: np.ndarray, sigma: float | None) -> float:
    """The noise sigma (0-1 scale) non-local means is set for: `sigma` when the caller knows it
    (a set's spec, as in noise:25), else the blind estimate of `estimate_noise_sigma`."""
    return estimate_noise_sigma(image) if sigma is None else sigma


def nl_means(image: np.ndarray, sigma: float) -> np.ndarray:
    """OpenCV's `fastNlMeansDenoisingColored` on the 8-bit image, its luminance and colour
    strengths set in proportion to the noise `sigma` (0-1 scale)."""
    levels = sigma * _LEVELS
    rgb = np.clip(np.round(np.asarray(image, dtype=np.float32) * _LEVELS), 0, 255).astype(np.uint8)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # OpenCV's Lab conversion expects BGR order
    denoised = cv2.fastNlMeansDenoisingColored(
        bgr,
        None,
        NLM_LUMA_PER_SIGMA * levels,
        NLM_COLOUR_PER_SIGMA * levels,
        NLM_TEMPLATE,
        NLM_SEARCH,
    )
    return (denoised[:, :, ::-1].astype(np.float32) / _LEVELS).astype(np.float32)
