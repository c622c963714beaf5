"""The synthetic degradations as batched torch operations that run where the model runs.

The numpy functions of `measr.degrade` stay the reference and the CPU loader's path. Here a
data-loader worker draws each image's recipe on the host (`draw_recipe`: every parameter and
small array, from the same ranges and by the same functions), and `degrade_batch` does the
pixel work of a whole batch on its device, its per-pixel randomness from a `torch.Generator`.
JPEG has no batched twin (libjpeg's quantisation stays on the CPU), so neither has phone noise,
which ends in one: `draw_recipe` refuses them.
"""

from measr.degrade.batched.apply import degrade_batch, degrade_batch_pair
from measr.degrade.batched.recipes import DRAWS, Recipe, StepRecipe, draw_recipe, missing_twins

__all__ = [
    "DRAWS",
    "Recipe",
    "StepRecipe",
    "degrade_batch",
    "degrade_batch_pair",
    "draw_recipe",
    "missing_twins",
]
