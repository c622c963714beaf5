"""Dark scenes: a photo of a scene that is dark itself (night, a dim room), not under-exposed.

A camera exposes a dark scene so that its brightest parts (lamps, windows, a lit face) come
out bright; most of the frame is dark. An under-exposed photo (low light) is darker as a whole:
nothing in it comes near white. That difference is what tells the two apart, so a dark scene
is made with a tone curve that keeps the white end: each pixel's luma goes to luma ** power
(its colour ratios kept), the power the one that brings the mean display level to
DARK_SCENE.level. A photo too bright for the steepest curve (`max_power`) is then scaled the
rest of the way, and a photo already that dark is only rounded.

The darkened photo is also what restoring it must give back: a dark scene's target is the dark
scene, so the network learns to leave it dark.
"""

from __future__ import annotations

import numpy as np

from measr.degrade._image import as_image, quantize_8bit
from measr.degrade.ranges import DARK_SCENE


def luma_of(img: np.ndarray) -> np.ndarray:
    """(H, W) luma of display values, float64."""
    return img.astype(np.float64) @ np.asarray(DARK_SCENE.luma_weights, dtype=np.float64)


def tone_curve(img: np.ndarray, power: float) -> np.ndarray:
    """Each pixel's luma raised to `power` >= 1, its colour ratios kept:
    img * luma ** (power - 1)."""
    return img.astype(np.float64) * (luma_of(img) ** (power - 1.0))[..., None]


def scene_power(img: np.ndarray, level: float) -> float:
    """The power of the tone curve that brings the mean of `img` down to `level` (bisection,
    a bracket of 2 ** -DARK_SCENE.power_steps), at most DARK_SCENE.max_power; 1 when the photo
    is that dark already."""
    brightness = img.astype(np.float64).mean(axis=2)
    luma = luma_of(img)
    low, high = 1.0, DARK_SCENE.max_power
    for _ in range(DARK_SCENE.power_steps):
        middle = 0.5 * (low + high)
        if float((brightness * luma ** (middle - 1.0)).mean()) > level:
            low = middle
        else:
            high = middle
    return 1.0 if float(brightness.mean()) <= level else high


def darken_scene(
    img: np.ndarray, rng: np.random.Generator, *, level: float | None = None
) -> np.ndarray:
    """The photo as a dark scene of mean `level` in (0, 1] (random: [0.07, 0.19]), in 8 bits:
    the tone curve of `scene_power`, then one factor if the curve alone leaves it brighter."""
    clean = as_image(img)
    level = DARK_SCENE.level.pick(rng, level)
    if not 0.0 < level <= 1.0:
        raise ValueError(f"dark scene level must be in (0, 1], got {level}")
    toned = tone_curve(clean, scene_power(clean, level))
    mean = float(toned.mean())
    scale = min(1.0, level / mean) if mean > 0.0 else 1.0
    return quantize_8bit((toned * scale).astype(np.float32))
