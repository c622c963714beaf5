"""Dark scenes: a photo of a scene that is dark itself (night, a dim room), not under-exposed.

The whole photo is scaled down so that its mean display level lands in DARK_SCENE.level. With
display values a power of linear light, that is one exposure factor for every pixel (no extra
gamma, unlike low light), and the darkened photo is also what restoring it must give back: a
dark scene's target is the dark scene, so the network learns to leave it dark.
"""

from __future__ import annotations

import numpy as np

from measr.degrade._image import as_image, quantize_8bit
from measr.degrade.ranges import DARK_SCENE


def darken_scene(
    img: np.ndarray, rng: np.random.Generator, *, level: float | None = None
) -> np.ndarray:
    """The photo scaled so its mean is `level` in (0, 1] (random: [0.07, 0.19]), in 8 bits;
    a photo already that dark is only rounded."""
    clean = as_image(img)
    level = DARK_SCENE.level.pick(rng, level)
    if not 0.0 < level <= 1.0:
        raise ValueError(f"dark scene level must be in (0, 1], got {level}")
    mean = float(clean.mean())
    scale = min(1.0, level / mean) if mean > 0.0 else 1.0
    return quantize_8bit(clean * np.float32(scale))
