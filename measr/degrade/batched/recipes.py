"""What a degradation of one image draws besides its random pixels: its "recipe".

A recipe holds a spec step's parameters (sigma, gain, beta, ...) and its small arrays (a blur
kernel, a rain streak kernel, the smooth random field of haze), drawn with numpy from the
ranges of `measr.degrade.ranges` by the very functions and in the very order the numpy
degradations draw them. Only the per-pixel draws (noise, photon counts, streak seeds) are left
to the device. So haze and blur recipes drawn from a generator are exactly what `add_haze` and
`add_blur` draw from it, and a recipe is as cheap to make in a data-loader worker as a few
random numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import cv2
import numpy as np

from measr.degrade.batched.ops import gaussian_side
from measr.degrade.blur import blur_kernel
from measr.degrade.haze import draw_haze as draw_haze_of
from measr.degrade.rain import streak_kernel
from measr.degrade.ranges import DARK_SCENE, LOW_LIGHT, NOISE, RAIN_HEAVY, RAIN_LIGHT
from measr.degrade.spec import Spec, haze_arguments, parse_spec

Values = dict[str, float | np.ndarray]


@dataclass(frozen=True)
class StepRecipe:
    """The draws of one spec step for one image (name as in `DEGRADATIONS`)."""

    name: str
    values: Values = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    """The draws of a whole spec for one image; `key` groups images a batch degrades alike."""

    steps: tuple[StepRecipe, ...]

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(step.name for step in self.steps)


Draw = Callable[[str | None, tuple[int, int], np.random.Generator], Values]


def draw_noise(arg: str | None, shape: tuple[int, int], rng: np.random.Generator) -> Values:
    """sigma (0-255 scale), as `add_gaussian_noise` picks it."""
    return {"sigma": NOISE.sigma.pick(rng, None if arg is None else float(arg))}


def draw_low_light(arg: str | None, shape: tuple[int, int], rng: np.random.Generator) -> Values:
    """gain, gamma, photons and read noise, as `add_low_light` picks them."""
    return {
        "gain": LOW_LIGHT.gain.sample(rng),
        "gamma": LOW_LIGHT.gamma.sample(rng),
        "photons": LOW_LIGHT.photons.sample(rng),
        "read_noise": LOW_LIGHT.read_noise.sample(rng),
    }


def draw_haze(arg: str | None, shape: tuple[int, int], rng: np.random.Generator) -> Values:
    """beta, airlight, the depth cues' weights and field, and whether the depth is even (a
    veil), as `add_haze` draws them."""
    drawn = draw_haze_of(shape, rng, **haze_arguments(arg))
    return {
        "beta": drawn.beta,
        "airlight": drawn.airlight,
        "weights": drawn.weights.astype(np.float32),
        "field": drawn.field,
        "even": float(drawn.even),
    }


def draw_blur(arg: str | None, shape: tuple[int, int], rng: np.random.Generator) -> Values:
    """The blur kernel `add_blur` would convolve with (camera shake, straight or defocus)."""
    return {"kernel": blur_kernel(rng, arg)}


def draw_dark_scene(arg: str | None, shape: tuple[int, int], rng: np.random.Generator) -> Values:
    """The mean level of the dark scene, as `darken_scene` draws it."""
    return {"level": DARK_SCENE.level.sample(rng)}


def softened(kernel: np.ndarray, softness: float) -> np.ndarray:
    """A streak kernel with the Gaussian that softens its layer folded in (one convolution on
    the device instead of two): the kernel padded by the Gaussian's reach, then blurred."""
    reach = gaussian_side(softness) // 2
    padded = np.pad(kernel, reach)
    return cv2.GaussianBlur(padded, (0, 0), sigmaX=softness, borderType=cv2.BORDER_CONSTANT)


def draw_rain(arg: str | None, shape: tuple[int, int], rng: np.random.Generator) -> Values:
    """Veil, and per streak layer its seed density, softened kernel and strength, in the order
    `add_rain` draws them (its seed pixels, drawn there between a layer's kernel and strength,
    are the device's to draw here)."""
    style = RAIN_HEAVY if arg == "heavy" else RAIN_LIGHT
    veil = style.veil.sample(rng)
    base_angle = style.angle.sample(rng)
    densities, kernels, strengths = [], [], []
    for _ in range(style.layers.sample(rng)):
        jitter = rng.uniform(-style.layer_angle_jitter, style.layer_angle_jitter)
        densities.append(style.density.sample(rng))
        length, width = style.length.sample(rng), style.width.sample(rng)
        softness = style.softness.sample(rng)
        kernels.append(softened(streak_kernel(length, width, base_angle + jitter), softness))
        strengths.append(style.brightness.sample(rng))
    return {
        "veil": veil,
        "veil_level": style.veil_level,
        "density": np.array(densities, dtype=np.float32),
        "strength": np.array(strengths, dtype=np.float32),
        **{f"kernel{i}": k for i, k in enumerate(kernels)},
    }


def draw_nothing(arg: str | None, shape: tuple[int, int], rng: np.random.Generator) -> Values:
    """The clean image draws nothing."""
    return {}


# JPEG is not here: its quantisation of DCT blocks is libjpeg's own and stays on the CPU path;
# nor is phone noise (`camnoise`), which ends in a JPEG.
DRAWS: Mapping[str, Draw] = MappingProxyType(
    {
        "noise": draw_noise,
        "lowlight": draw_low_light,
        "haze": draw_haze,
        "blur": draw_blur,
        "rain": draw_rain,
        "dark": draw_dark_scene,
        "none": draw_nothing,
    }
)


def missing_twins(spec: str | Spec) -> tuple[str, ...]:
    """The steps of a spec that have no batched version (JPEG, phone noise), once each."""
    return tuple(dict.fromkeys(s.name for s in parse_spec(spec).steps if s.name not in DRAWS))


def draw_recipe(spec: str | Spec, shape: tuple[int, int], rng: np.random.Generator) -> Recipe:
    """The recipe of a spec for an (H, W) image, its steps in the order they apply; ValueError
    for a step with no device twin."""
    steps = []
    for step in parse_spec(spec).applied:
        if step.name not in DRAWS:
            raise ValueError(
                f"'{step.name}' has no batched version; degrade it on the CPU (train without "
                "--degrade-on-device)"
            )
        steps.append(StepRecipe(step.name, DRAWS[step.name](step.arg, shape, rng)))
    return Recipe(tuple(steps))
