"""Synthetic degradations as pure, seeded functions on float32 (H, W, 3) RGB images in [0, 1].

Every function takes an explicit `numpy.random.Generator`, returns a new array and leaves its
input alone. Parameter ranges live in `measr.degrade.ranges`; the spec language used by the CLI
and by training ("noise:25+jpeg:40") lives in `measr.degrade.spec`. Their batched torch twins,
which degrade a training batch on its device, live in `measr.degrade.batched`.
"""

from measr.degrade.batched import Recipe, degrade_batch, degrade_batch_pair, draw_recipe
from measr.degrade.blur import (
    add_blur,
    add_defocus_blur,
    add_linear_blur,
    add_motion_blur,
    defocus_kernel,
    linear_motion_kernel,
    motion_kernel,
)
from measr.degrade.camera import add_camera_noise, demosaic, mosaic
from measr.degrade.haze import add_haze, depth_proxy, transmission
from measr.degrade.jpeg import add_jpeg
from measr.degrade.lowlight import add_low_light, poisson_gaussian_noise
from measr.degrade.noise import add_gaussian_noise
from measr.degrade.rain import add_rain, streak_kernel, streak_layer
from measr.degrade.scene import darken_scene
from measr.degrade.spec import (
    DEGRADATIONS,
    Spec,
    Step,
    apply_degradation,
    degrade_pair,
    parse_spec,
    seeded_rng,
    valid_names_hint,
)
from measr.degrade.tasks import (
    COMPOSITES,
    MIXES,
    TASK_KINDS,
    TASK_SPECS,
    mix_weights,
    pick_task,
    spec_kinds,
    task_kind,
    task_kinds,
    task_noise_sigma,
    task_spec,
)

__all__ = [
    "COMPOSITES",
    "DEGRADATIONS",
    "MIXES",
    "TASK_KINDS",
    "TASK_SPECS",
    "Recipe",
    "Spec",
    "Step",
    "add_blur",
    "add_camera_noise",
    "add_defocus_blur",
    "add_gaussian_noise",
    "add_haze",
    "add_jpeg",
    "add_linear_blur",
    "add_low_light",
    "add_motion_blur",
    "add_rain",
    "apply_degradation",
    "darken_scene",
    "defocus_kernel",
    "degrade_batch",
    "degrade_batch_pair",
    "degrade_pair",
    "demosaic",
    "depth_proxy",
    "draw_recipe",
    "linear_motion_kernel",
    "mix_weights",
    "mosaic",
    "motion_kernel",
    "parse_spec",
    "pick_task",
    "poisson_gaussian_noise",
    "seeded_rng",
    "spec_kinds",
    "streak_kernel",
    "streak_layer",
    "task_kind",
    "task_kinds",
    "task_noise_sigma",
    "task_spec",
    "transmission",
    "valid_names_hint",
]
