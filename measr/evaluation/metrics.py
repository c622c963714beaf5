"""PSNR and SSIM as the all-in-one restoration papers report them (PromptIR, AdaIR, MEASNet):
on RGB, on images quantised to 8 bits, over the full image (no border crop); and the mean
colour shift of a restoration (a cast PSNR does not name).

The protocol is data (`PROTOCOL`), so reports and the CLI caption state exactly what was measured;
docs/protocol.md explains each choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, astuple, dataclass

import numpy as np

from measr.io import to_uint

PIXEL_MAX = 255  # data range of 8-bit samples


@dataclass(frozen=True)
class MetricProtocol:
    """How PSNR and SSIM are computed; every field is reported with the scores."""

    color: str = "RGB"
    bit_depth: int = 8
    quantisation: str = "round(x * 255), clipped to [0, 255]"
    border_crop: int = 0
    data_range: int = PIXEL_MAX
    ssim_gaussian_weights: bool = True
    ssim_sigma: float = 1.5
    ssim_window: int = 11  # what skimage derives from sigma 1.5 with truncate 3.5
    ssim_use_sample_covariance: bool = False
    ssim_channels: str = "per RGB channel, then averaged"
    psnr_of_identical_images: str = "inf"

    def caption(self) -> str:
        """One line for a table caption."""
        return (
            f"PSNR (dB) / SSIM on {self.color}, {self.bit_depth}-bit, full image; "
            f"SSIM Gaussian window sigma {self.ssim_sigma:g} ({self.ssim_window}x"
            f"{self.ssim_window}), population covariance (Wang et al. 2004)"
        )

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


PROTOCOL = MetricProtocol()


def quantise(pixels: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] as the uint8 image a PNG of it would hold (round, clip; NaN -> 0)."""
    return to_uint(pixels, PROTOCOL.bit_depth)


def as_rgb(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) from (H, W), (H, W, 1) or (H, W, 3): gray is repeated, as the network sees it."""
    array = np.asarray(pixels)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise ValueError(f"expected an (H, W), (H, W, 1) or (H, W, 3) image, got {array.shape}")
    return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array


def _check_same_shape(restored: np.ndarray, reference: np.ndarray) -> None:
    if restored.shape != reference.shape:
        raise ValueError(f"image shapes differ: {restored.shape} vs {reference.shape}")


def psnr(restored: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of two float RGB images in [0, 1] after 8-bit quantisation; inf if equal."""
    a = quantise(as_rgb(restored))
    b = quantise(as_rgb(reference))
    _check_same_shape(a, b)
    # skimage divides by zero (with a warning) for equal images; the answer is inf either way.
    if np.array_equal(a, b):
        return math.inf
    # Imported here: skimage.metrics pulls in scipy.stats (over a second), which every speed
    # worker process would otherwise pay for without scoring anything.
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(b, a, data_range=PROTOCOL.data_range))


def unquantised_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two float arrays over [0, 1], without 8-bit quantisation: for checking
    that two computations of one output agree (50 dB and up), not for scoring restorations."""
    _check_same_shape(a, b)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def ssim(restored: np.ndarray, reference: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004) of two float RGB images in [0, 1] after 8-bit quantisation:
    Gaussian window sigma 1.5, population covariance, each channel then averaged."""
    from skimage.metrics import structural_similarity

    a = quantise(as_rgb(restored))
    b = quantise(as_rgb(reference))
    _check_same_shape(a, b)
    return float(
        structural_similarity(
            a,
            b,
            channel_axis=2,
            data_range=PROTOCOL.data_range,
            gaussian_weights=PROTOCOL.ssim_gaussian_weights,
            sigma=PROTOCOL.ssim_sigma,
            use_sample_covariance=PROTOCOL.ssim_use_sample_covariance,
        )
    )


@dataclass(frozen=True)
class ColourShift:
    """The mean colour change of a restoration against its clean image: per RGB channel in
    8-bit levels, and in CIELAB (D65) as the change of mean L*, a* (+ red, - green) and
    b* (+ yellow, - blue). A cast is a shift that keeps its sign over a task's images."""

    red: float
    green: float
    blue: float
    lightness: float
    a: float
    b: float

    @classmethod
    def mean(cls, shifts: Sequence[ColourShift]) -> ColourShift:
        """The field-wise mean of several images' shifts."""
        return cls(*np.mean([astuple(s) for s in shifts], axis=0).tolist())

    def flat(self, prefix: str = "shift_") -> dict[str, float]:
        """The fields as `shift_red`, ... for one CSV row."""
        return {f"{prefix}{k}": round(v, 3) for k, v in asdict(self).items()}

    def words(self) -> str:
        """'RGB -0.4 +2.1 -3.0, a* -1.2 b* +4.5' (8-bit levels; Lab units)."""
        return (
            f"RGB {self.red:+.1f} {self.green:+.1f} {self.blue:+.1f}, "
            f"a* {self.a:+.1f} b* {self.b:+.1f}"
        )


def colour_shift(restored: np.ndarray, reference: np.ndarray) -> ColourShift:
    """The mean colour change of `restored` against `reference` (float RGB in [0, 1]), both
    quantised to 8 bits as the other metrics are."""
    from skimage.color import rgb2lab

    a = quantise(as_rgb(restored)).astype(np.float64)
    b = quantise(as_rgb(reference)).astype(np.float64)
    _check_same_shape(a, b)
    rgb = (a - b).mean(axis=(0, 1))
    lab = rgb2lab(a / PIXEL_MAX).mean(axis=(0, 1)) - rgb2lab(b / PIXEL_MAX).mean(axis=(0, 1))
    return ColourShift(*(float(v) for v in (*rgb, *lab)))
