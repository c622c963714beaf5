"""Degradation specs such as "noise:25+jpeg:40": the one source of truth for their names.

A spec is one or more steps joined by "+", applied with the same generator in the order a
camera meets them, whatever order they are written in: the scene, its haze, rain in front of
it, the exposure, blur, the sensor's noise, the file's compression (steps of one stage apply
left to right). So "lowlight+haze" hazes first, then darkens. Each step is a name with an
optional ":ARG". `parse_spec` checks a spec and gives it back in canonical form (str() of the
result, in the order written), `apply_degradation` runs it, `degrade_pair` also gives the
target (a step that changes the scene itself, such as a dark scene, changes it), and
`seeded_rng` derives a reproducible generator per image so that validation sets are fixed.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from measr.degrade._image import as_image
from measr.degrade.blur import BLUR_KINDS, add_blur
from measr.degrade.camera import add_camera_noise
from measr.degrade.haze import add_haze
from measr.degrade.jpeg import add_jpeg
from measr.degrade.lowlight import add_low_light
from measr.degrade.noise import add_gaussian_noise
from measr.degrade.rain import add_rain
from measr.degrade.ranges import HAZE, JPEG, NOISE, Span
from measr.degrade.scene import darken_scene
from measr.errors import MeasrError

MAX_HAZE_BETA = Span(0.0, 10.0)  # what an explicit haze:BETA may be
RAIN_STYLES = ("light", "heavy")
HAZE_FORMS = HAZE.form.options
# The order in which a camera meets the damage; a spec's steps apply in this order.
STAGES = ("scene", "haze", "rain", "exposure", "blur", "sensor", "file")

Apply = Callable[[np.ndarray, str | None, np.random.Generator], np.ndarray]
CheckArg = Callable[[str, str], str]


@dataclass(frozen=True)
class Degradation:
    """One named degradation of the spec language: usage text, argument check, and function."""

    name: str
    usage: str  # e.g. "noise[:SIGMA]"
    summary: str
    check_arg: CheckArg | None  # canonical argument text, or MeasrError; None: takes no argument
    apply: Apply
    stage: str  # where in STAGES the step applies
    changes_scene: bool = False  # the target is the image after this step (a dark scene)


@dataclass(frozen=True)
class Step:
    """One parsed step: a degradation name and its canonical argument (or None)."""

    name: str
    arg: str | None = None

    def __str__(self) -> str:
        return self.name if self.arg is None else f"{self.name}:{self.arg}"


@dataclass(frozen=True)
class Spec:
    """A parsed spec: steps applied left to right; str() gives the canonical text."""

    steps: tuple[Step, ...]

    def __str__(self) -> str:
        return "+".join(str(step) for step in self.steps)

    @property
    def applied(self) -> tuple[Step, ...]:
        """The steps in the order they apply: by STAGES, as written within a stage."""
        return tuple(sorted(self.steps, key=lambda s: STAGES.index(DEGRADATIONS[s.name].stage)))


def _bad_arg(step: str, why: str) -> MeasrError:
    return MeasrError(f"bad degradation step '{step}': {why}", hint=valid_names_hint())


def _check_number(step: str, text: str, span: Span, integer: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _bad_arg(step, f"'{text}' is not a number") from None
    if not math.isfinite(value) or value not in span:
        raise _bad_arg(step, f"{text} is outside {span}")
    if integer and value != int(value):
        raise _bad_arg(step, f"{text} is not a whole number")
    return value


def _check_sigma(step: str, text: str) -> str:
    return f"{_check_number(step, text, NOISE.valid_sigma):g}"


def _check_haze(step: str, text: str) -> str:
    if text in HAZE_FORMS:
        return text
    try:
        float(text)
    except ValueError:
        forms = ", ".join(HAZE_FORMS)
        raise _bad_arg(step, f"'{text}' is neither a beta nor one of {forms}") from None
    return f"{_check_number(step, text, MAX_HAZE_BETA):g}"


def _check_quality(step: str, text: str) -> str:
    span = Span(JPEG.valid_quality.low, JPEG.valid_quality.high)
    return str(int(_check_number(step, text, span, integer=True)))


def _check_choice(choices: tuple[str, ...]) -> CheckArg:
    def check(step: str, text: str) -> str:
        if text not in choices:
            raise _bad_arg(step, f"'{text}' is not one of {', '.join(choices)}")
        return text

    return check


def _noise(img: np.ndarray, arg: str | None, rng: np.random.Generator) -> np.ndarray:
    return add_gaussian_noise(img, None if arg is None else float(arg), rng)


def _rain(img: np.ndarray, arg: str | None, rng: np.random.Generator) -> np.ndarray:
    return add_rain(img, rng, heavy=arg == "heavy")


def haze_arguments(arg: str | None) -> dict[str, Any]:
    """`add_haze`'s keywords for a haze step's argument: none (every form and airlight drawn),
    a form ("veil"), or a beta (the depth-proxy form with a grey airlight, as "haze:BETA" was
    before the other forms)."""
    if arg is None:
        return {}
    if arg in HAZE_FORMS:
        return {"form": arg}
    return {"beta": float(arg), "colour": False}


def _haze(img: np.ndarray, arg: str | None, rng: np.random.Generator) -> np.ndarray:
    return add_haze(img, rng, **haze_arguments(arg))


def _blur(img: np.ndarray, arg: str | None, rng: np.random.Generator) -> np.ndarray:
    return add_blur(img, rng, kind=arg)


def _low_light(img: np.ndarray, arg: str | None, rng: np.random.Generator) -> np.ndarray:
    return add_low_light(img, rng)


def _camera_noise(img: np.ndarray, arg: str | None, rng: np.random.Generator) -> np.ndarray:
    return add_camera_noise(img, rng)


def _dark_scene(img: np.ndarray, arg: str | None, rng: np.random.Generator) -> np.ndarray:
    return darken_scene(img, rng)


def _jpeg(img: np.ndarray, arg: str | None, rng: np.random.Generator) -> np.ndarray:
    return add_jpeg(img, None if arg is None else int(arg), rng)


def _none(img: np.ndarray, arg: str | None, rng: np.random.Generator) -> np.ndarray:
    return img.copy()


DEGRADATIONS: Mapping[str, Degradation] = MappingProxyType(
    {
        d.name: d
        for d in (
            Degradation(
                "noise",
                "noise[:SIGMA]",
                f"Gaussian noise, SIGMA 0-255 scale (default: random in {NOISE.sigma})",
                _check_sigma,
                _noise,
                "sensor",
            ),
            Degradation(
                "camnoise",
                "camnoise",
                "phone camera noise: Poisson-Gaussian on a Bayer mosaic, demosaiced, JPEG",
                None,
                _camera_noise,
                "sensor",
            ),
            Degradation(
                "rain",
                "rain[:light|heavy]",
                "rain streaks like Rain100L, or Rain100H with :heavy",
                _check_choice(RAIN_STYLES),
                _rain,
                "rain",
            ),
            Degradation(
                "haze",
                "haze[:BETA|depth|veil|height]",
                f"atmospheric haze: with a depth proxy, an even veil or growing with height "
                f"(default: any), or the depth proxy with scattering BETA (random in {HAZE.beta})",
                _check_haze,
                _haze,
                "haze",
            ),
            Degradation(
                "blur",
                "blur[:motion|linear|defocus]",
                "camera-shake, straight-motion or defocus blur (default: any)",
                _check_choice(BLUR_KINDS),
                _blur,
                "blur",
            ),
            Degradation(
                "lowlight",
                "lowlight",
                "LOL-like dark exposure with sensor noise",
                None,
                _low_light,
                "exposure",
            ),
            Degradation(
                "dark",
                "dark",
                "a dark scene: the whole photo darker, the target too (put noise after it)",
                None,
                _dark_scene,
                "scene",
                changes_scene=True,
            ),
            Degradation(
                "jpeg",
                "jpeg[:QUALITY]",
                f"JPEG compression, QUALITY 1-100 (default: random in {JPEG.quality})",
                _check_quality,
                _jpeg,
                "file",
            ),
            Degradation(
                "none",
                "none",
                "no degradation: the clean image itself (what a clean photo must come out as)",
                None,
                _none,
                "scene",
            ),
        )
    }
)


def valid_names_hint() -> str:
    """The hint shown with spec errors: every valid step and how to combine them."""
    usages = ", ".join(d.usage for d in DEGRADATIONS.values())
    return (
        f"valid degradations: {usages}; join several with '+' (they apply in the order a camera "
        "meets them), e.g. noise:25+jpeg:40 or lowlight+haze"
    )


def parse_step(text: str) -> Step:
    """Parse one "name" or "name:arg" step (case and spaces ignored); MeasrError if invalid."""
    cleaned = text.strip().lower()
    name, colon, arg = (part.strip() for part in cleaned.partition(":"))
    if not name:
        raise MeasrError(f"empty degradation step in '{text}'", hint=valid_names_hint())
    degradation = DEGRADATIONS.get(name)
    if degradation is None:
        raise MeasrError(f"unknown degradation '{name}'", hint=valid_names_hint())
    if not colon:
        return Step(name)
    if degradation.check_arg is None:
        raise _bad_arg(cleaned, f"'{name}' takes no argument")
    if not arg:
        raise _bad_arg(cleaned, "missing argument after ':'")
    return Step(name, degradation.check_arg(cleaned, arg))


def parse_spec(spec: str | Spec) -> Spec:
    """Parse "step+step+..." into a Spec (str() is canonical); MeasrError if any step is bad."""
    if isinstance(spec, Spec):
        return spec
    if not spec.strip():
        raise MeasrError("empty degradation spec", hint=valid_names_hint())
    return Spec(tuple(parse_step(part) for part in spec.split("+")))


def degrade_pair(
    img: np.ndarray, spec: str | Spec, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(degraded, target) of an (H, W, 3) float32 image in [0, 1]: every step of the spec
    applied in the order of STAGES; the target is the image itself, or what the steps that
    change the scene (a dark scene) made of it."""
    out = target = as_image(img)
    for step in parse_spec(spec).applied:
        degradation = DEGRADATIONS[step.name]
        out = degradation.apply(out, step.arg, rng)
        if degradation.changes_scene:
            target = out
    return out, target


def apply_degradation(img: np.ndarray, spec: str | Spec, rng: np.random.Generator) -> np.ndarray:
    """Apply every step of a spec to an (H, W, 3) float32 image in [0, 1], in the order of
    STAGES (see `degrade_pair` for the target of a spec that changes the scene)."""
    return degrade_pair(img, spec, rng)[0]


def _key_hash(key: str | int) -> int:
    if isinstance(key, bool) or not isinstance(key, str | int):
        raise TypeError(f"seeded_rng keys must be str or int, got {type(key).__name__}")
    return zlib.crc32(f"{type(key).__name__}:{key}".encode())


def seeded_rng(seed: int, *keys: str | int) -> np.random.Generator:
    """Generator from a base seed >= 0 and keys (file name, spec...), stable across runs."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    sequence = np.random.SeedSequence(seed, spawn_key=tuple(_key_hash(key) for key in keys))
    return np.random.default_rng(sequence)
