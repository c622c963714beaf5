"""Parameter ranges of every degradation: the one source of truth for random draws and docs."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Span:
    """A closed interval [low, high] of a real parameter, drawn uniformly."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError(f"empty span [{self.low}, {self.high}]")

    def sample(self, rng: np.random.Generator) -> float:
        """One uniform draw from [low, high]."""
        return float(rng.uniform(self.low, self.high))

    def pick(self, rng: np.random.Generator, value: float | None = None) -> float:
        """A draw, replaced by `value` when given (drawn anyway so the rng stream is the same)."""
        drawn = self.sample(rng)
        return drawn if value is None else float(value)

    def __contains__(self, value: object) -> bool:
        return isinstance(value, numbers.Real) and self.low <= float(value) <= self.high

    def __str__(self) -> str:
        return f"[{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class IntSpan:
    """A closed interval [low, high] of an integer parameter, drawn uniformly."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError(f"empty span [{self.low}, {self.high}]")

    def sample(self, rng: np.random.Generator) -> int:
        """One uniform draw from {low, ..., high}."""
        return int(rng.integers(self.low, self.high + 1))

    def pick(self, rng: np.random.Generator, value: int | None = None) -> int:
        """A draw, replaced by `value` when given (drawn anyway so the rng stream is the same)."""
        drawn = self.sample(rng)
        return drawn if value is None else int(value)

    def __contains__(self, value: object) -> bool:
        return isinstance(value, numbers.Integral) and self.low <= int(value) <= self.high

    def __str__(self) -> str:
        return f"{{{self.low}..{self.high}}}"


@dataclass(frozen=True)
class Choice:
    """One of a few named options, drawn with their probabilities by one uniform number."""

    options: tuple[str, ...]
    probabilities: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.options) != len(self.probabilities) or abs(sum(self.probabilities) - 1) > 1e-9:
            raise ValueError(f"bad choice {self.options} with probabilities {self.probabilities}")

    def sample(self, rng: np.random.Generator) -> str:
        """One option: the first whose cumulative probability exceeds a uniform draw."""
        cuts = np.cumsum(self.probabilities)[:-1]
        return self.options[int(np.searchsorted(cuts, rng.random(), side="right"))]

    def pick(self, rng: np.random.Generator, value: str | None = None) -> str:
        """A draw, replaced by `value` when given (drawn anyway so the rng stream is the same);
        ValueError for a value that is not an option."""
        drawn = self.sample(rng)
        if value is not None and value not in self.options:
            raise ValueError(f"expected one of {self.options}, got {value!r}")
        return drawn if value is None else value

    def __str__(self) -> str:
        return ", ".join(
            f"{o} {p:g}" for o, p in zip(self.options, self.probabilities, strict=True)
        )


@dataclass(frozen=True)
class NoiseRanges:
    """Additive white Gaussian noise; sigma on the 0-255 scale."""

    sigma: Span = Span(0.0, 55.0)  # random draw of plain "noise"
    valid_sigma: Span = Span(0.0, 255.0)  # what an explicit sigma may be
    standard_sigmas: tuple[float, ...] = (15.0, 25.0, 50.0)  # CBSD68 / Kodak24 protocol


@dataclass(frozen=True)
class RainStyle:
    """Streak statistics of one rain style; lengths and widths in pixels."""

    layers: IntSpan  # independent streak layers, each with its own seeds and length
    density: Span  # fraction of pixels that start a streak, per layer
    length: Span  # streak length in pixels
    width: Span  # streak width (full width of the core) in pixels
    brightness: Span  # peak streak intensity before the screen blend
    angle: Span  # degrees from vertical, shared by all layers of one image
    layer_angle_jitter: float  # extra degrees each layer may deviate from the shared angle
    softness: Span  # std in pixels of the gaussian that softens the streak layer
    veil: Span  # strength of the grey-white veil mixed in under the streaks (0 = none)
    veil_level: float = 0.9  # grey level of that veil


RAIN_LIGHT = RainStyle(  # Rain100L-like: sparse, thin, short, one layer, no veil
    layers=IntSpan(1, 1),
    density=Span(0.001, 0.005),
    length=Span(10.0, 35.0),
    width=Span(1.0, 1.8),
    brightness=Span(0.4, 0.75),
    angle=Span(-30.0, 30.0),
    layer_angle_jitter=0.0,
    softness=Span(0.4, 0.7),
    veil=Span(0.0, 0.0),
)

RAIN_HEAVY = RainStyle(  # Rain100H-like: dense, long, wide, bright, several layers, some veil
    layers=IntSpan(2, 3),
    density=Span(0.001, 0.003),
    length=Span(20.0, 60.0),
    width=Span(1.5, 3.0),
    brightness=Span(0.5, 0.85),
    angle=Span(-30.0, 30.0),
    layer_angle_jitter=6.0,
    softness=Span(0.5, 1.0),
    veil=Span(0.05, 0.2),
)


@dataclass(frozen=True)
class HazeRanges:
    """Atmospheric scattering I = J t + A (1 - t), t = exp(-beta d), d in [0, 1]."""

    beta: Span = Span(0.6, 1.8)  # scattering coefficient (RESIDE ITS range)
    airlight: Span = Span(0.7, 1.0)  # global atmospheric light A (grey level)
    airlight_tint: float = 0.04  # each channel of A is scaled by 1 +- up to this
    # Weights of the three depth cues; each cue is in [0, 1] before mixing.
    weight_vertical: Span = Span(0.35, 0.6)  # top of the frame is farther
    weight_field: Span = Span(0.15, 0.35)  # smooth random field (hills, clouds of haze)
    weight_dark_channel: Span = Span(0.15, 0.35)  # bright, grey regions (sky) are farther
    field_cells: IntSpan = IntSpan(2, 5)  # control points of the random field per side
    depth_near: float = 0.1  # normalised depth of the nearest point (t never exactly 1)
    # How the depth varies over the frame, drawn with these probabilities: the three cues
    # above, an even veil (one transmission everywhere), or haze growing with height alone.
    form: Choice = Choice(("depth", "veil", "height"), (0.5, 0.25, 0.25))
    veil_transmission: Span = Span(0.4, 0.8)  # t of an even veil
    height_tilt: Span = Span(-15.0, 15.0)  # degrees the horizon of height haze leans
    height_power: Span = Span(0.5, 2.0)  # depth = (height ramp) ** power: where haze thickens
    # A coloured airlight (dust, smog, a warm or blue sky) instead of a near-grey one.
    coloured_probability: float = 0.3
    colour_strength: Span = Span(0.1, 0.3)  # chroma, as a fraction of the grey level
    colour_hue: Span = Span(-30.0, 30.0)  # degrees off the yellow-blue axis


@dataclass(frozen=True)
class BlurRanges:
    """Camera-shake (motion) kernels and defocus discs; sizes in pixels."""

    motion_size: IntSpan = IntSpan(7, 31)  # side of the square motion kernel (odd)
    motion_extent: Span = Span(0.55, 1.0)  # trajectory extent as a fraction of the side
    motion_steps: int = 96  # samples of the trajectory during the exposure
    motion_inertia: Span = Span(0.6, 0.9)  # how much of its velocity the camera keeps per step
    motion_jerk_probability: float = 0.05  # chance of a sudden shake at each step
    defocus_radius: Span = Span(1.0, 6.0)  # disc radius
    # Straight (linear) motion: a segment of this length at any angle, uniform along it.
    linear_length: Span = Span(5.0, 31.0)
    linear_angle: Span = Span(0.0, 180.0)  # degrees anticlockwise from the x axis
    # What "blur" picks, by one uniform draw cut at 0.4 and 0.7: a draw that made camera
    # shake (under 0.4) or defocus (over 0.7) when the choice was 50/50 still makes it.
    kind: Choice = Choice(("motion", "linear", "defocus"), (0.4, 0.3, 0.3))


@dataclass(frozen=True)
class LowLightRanges:
    """LOL-like low light: linear-light gain and gamma, then Poisson-Gaussian sensor noise."""

    gain: Span = Span(0.05, 0.3)  # exposure factor applied in linear light
    gamma: Span = Span(1.5, 3.0)  # extra power on linear light (darker shadows)
    display_gamma: float = 2.2  # power law between 8-bit values and linear light
    photons: Span = Span(800.0, 6000.0)  # photo-electrons collected by a full-white pixel
    read_noise: Span = Span(0.0005, 0.002)  # read-noise std, fraction of full scale


@dataclass(frozen=True)
class JpegRanges:
    """JPEG quality factor as OpenCV / libjpeg use it."""

    quality: IntSpan = IntSpan(10, 95)  # random draw of plain "jpeg"
    valid_quality: IntSpan = IntSpan(1, 100)  # what an explicit quality may be


@dataclass(frozen=True)
class CameraNoiseRanges:
    """Noise as a phone makes it (Brooks et al. 2019, "Unprocessing images for learned raw
    denoising"): Poisson-Gaussian noise of variance shot * x + read on the raw Bayer mosaic,
    white-balance and colour-correction gains after demosaicing, then JPEG."""

    shot: Span = Span(1e-4, 1.2e-2)  # shot-noise gain, drawn log-uniformly (Brooks et al.)
    read_slope: float = 2.18  # log(read variance) = slope * log(shot) + intercept + N(0, spread)
    read_intercept: float = 1.20
    read_spread: float = 0.26
    red_gain: Span = Span(1.9, 2.4)  # white-balance gains of the raw red and blue channels
    blue_gain: Span = Span(1.5, 1.9)
    saturation: Span = Span(0.6, 1.2)  # colour correction M = (1 + s) I - s/3 J
    quality: IntSpan = IntSpan(70, 95)  # the phone's JPEG quality


@dataclass(frozen=True)
class DarkSceneRanges:
    """A scene that is dark itself (night, a dim room), exposed so that its highlights stay
    bright: a tone curve that sinks the mid-tones and keeps the white end, then (for photos
    too bright for the curve alone) one exposure factor."""

    level: Span = Span(0.07, 0.19)  # mean display level of the dark scene (18 to 48 of 255)
    luma_weights: tuple[float, float, float] = (0.2126, 0.7152, 0.0722)  # Rec. 709, display values
    max_power: float = 4.0  # the steepest tone curve, luma -> luma ** power
    power_steps: int = 30  # bisection steps for the power (a 2 ** -30 bracket)


NOISE = NoiseRanges()
HAZE = HazeRanges()
BLUR = BlurRanges()
LOW_LIGHT = LowLightRanges()
JPEG = JpegRanges()
CAMERA_NOISE = CameraNoiseRanges()
DARK_SCENE = DarkSceneRanges()
