"""Degrade a batch on its device: images grouped by spec, each group in a few batched ops.

`degrade_batch(clean, recipes, generator)` is the batched twin of `apply_degradation`: image i
gets the spec its recipe was drawn for, with the recipe's parameters; the per-pixel randomness
comes from `generator`, a `torch.Generator` on the batch's device. The grouping is read from
the recipes, which live on the host, so it never waits for the device.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import numpy as np
import torch
from torch import Tensor

from measr.degrade.batched import ops
from measr.degrade.batched.recipes import Recipe, StepRecipe
from measr.degrade.rain import SEED_INTENSITY

Apply = Callable[[Tensor, Sequence[StepRecipe], torch.Generator], Tensor]


def scalars(steps: Sequence[StepRecipe], key: str, like: Tensor) -> Tensor:
    """(B,) tensor of a scalar value of each image's recipe, on `like`'s device."""
    values = np.array([float(s.values[key]) for s in steps], dtype=np.float32)
    return to_device(values, like)


def arrays(steps: Sequence[StepRecipe], key: str, like: Tensor) -> Tensor:
    """(B, ...) tensor of an equally shaped array of each image's recipe."""
    return to_device(np.stack([np.asarray(s.values[key], np.float32) for s in steps]), like)


def to_device(values: np.ndarray, like: Tensor) -> Tensor:
    """A host array on `like`'s device and dtype, copied without waiting where it can be."""
    host = torch.from_numpy(np.ascontiguousarray(values))
    if like.device.type == "cuda":
        host = host.pin_memory()
    return host.to(like.device, like.dtype, non_blocking=True)


def centred(kernels: Sequence[np.ndarray], side: int | None = None) -> np.ndarray:
    """(N, K, K) stack of odd square kernels, each centred in the largest one's square (zeros
    around a smaller kernel change nothing of a convolution)."""
    side = side or max(k.shape[0] for k in kernels)
    stack = np.zeros((len(kernels), side, side), dtype=np.float32)
    for i, kernel in enumerate(kernels):
        offset = (side - kernel.shape[0]) // 2
        stack[i, offset : offset + kernel.shape[0], offset : offset + kernel.shape[1]] = kernel
    return stack


def _noise(x: Tensor, steps: Sequence[StepRecipe], generator: torch.Generator) -> Tensor:
    return ops.gaussian_noise(x, scalars(steps, "sigma", x), generator)


def _low_light(x: Tensor, steps: Sequence[StepRecipe], generator: torch.Generator) -> Tensor:
    gain, gamma, photons, read_noise = (
        scalars(steps, key, x) for key in ("gain", "gamma", "photons", "read_noise")
    )
    return ops.low_light(x, gain, gamma, photons, read_noise, generator)


def _haze(x: Tensor, steps: Sequence[StepRecipe], generator: torch.Generator) -> Tensor:
    depth = ops.depth_proxy(x, arrays(steps, "weights", x), arrays(steps, "field", x))
    depth = ops.even_where(depth, scalars(steps, "even", x))
    return ops.haze(x, depth, scalars(steps, "beta", x), arrays(steps, "airlight", x))


def _dark_scene(x: Tensor, steps: Sequence[StepRecipe], generator: torch.Generator) -> Tensor:
    return ops.darken_scene(x, scalars(steps, "level", x))


def _blur(x: Tensor, steps: Sequence[StepRecipe], generator: torch.Generator) -> Tensor:
    kernels = centred([s.values["kernel"] for s in steps])  # type: ignore[misc]
    return ops.convolve_symmetric(x, to_device(kernels, x)).clamp(0.0, 1.0)


def _rain(x: Tensor, steps: Sequence[StepRecipe], generator: torch.Generator) -> Tensor:
    layers = max(len(s.values["density"]) for s in steps)  # type: ignore[arg-type]
    kernels = [[s.values.get(f"kernel{i}") for i in range(layers)] for s in steps]
    side = max(k.shape[0] for row in kernels for k in row if k is not None)  # type: ignore[union-attr]
    blank = np.zeros((1, 1), np.float32)  # a layer an image does not have: strength 0
    stacked = np.stack(
        [centred([np.flip(k) if k is not None else blank for k in row], side) for row in kernels]
    )
    density = np.zeros((len(steps), layers), np.float32)
    strength = np.zeros((len(steps), layers), np.float32)
    for i, step in enumerate(steps):
        count = len(step.values["density"])  # type: ignore[arg-type]
        density[i, :count] = step.values["density"]
        strength[i, :count] = step.values["strength"]
    height, width = x.shape[-2:]
    shape = (len(steps), layers, height + side - 1, width + side - 1)
    seeds = ops.streak_seeds(shape, to_device(density, x), SEED_INTENSITY, generator)
    veil, level = scalars(steps, "veil", x), scalars(steps, "veil_level", x)
    return ops.rain(x, seeds, to_device(stacked, x), to_device(strength, x), veil, level)


def _none(x: Tensor, steps: Sequence[StepRecipe], generator: torch.Generator) -> Tensor:
    return x


APPLY: Mapping[str, Apply] = MappingProxyType(
    {
        "noise": _noise,
        "lowlight": _low_light,
        "haze": _haze,
        "blur": _blur,
        "rain": _rain,
        "dark": _dark_scene,
        "none": _none,
    }
)
# The steps that change the scene itself: the target is the image after them.
SCENE_STEPS = frozenset({"dark"})


def groups(recipes: Sequence[Recipe]) -> dict[tuple[str, ...], list[int]]:
    """Positions of the images of each spec (by step names), in first-seen order."""
    grouped: dict[tuple[str, ...], list[int]] = {}
    for i, recipe in enumerate(recipes):
        grouped.setdefault(recipe.key, []).append(i)
    return grouped


def degrade_group(
    x: Tensor, recipes: Sequence[Recipe], generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """(degraded, target) of a group's images: the steps shared by its recipes (same step
    names) applied in order; the target is the image after the steps that change the scene."""
    target = x
    for k, name in enumerate(recipes[0].key):
        x = APPLY[name](x, [r.steps[k] for r in recipes], generator)
        if name in SCENE_STEPS:
            target = x
    return x, target


def degrade_batch_pair(
    clean: Tensor, recipes: Sequence[Recipe], generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """(degraded, target) copies of a (B, 3, H, W) float batch in [0, 1]: image i degraded by
    recipes[i]; its target is the clean image, or the scene its recipe made of it (a dark
    scene), as `measr.degrade.degrade_pair` gives them."""
    if clean.ndim != 4 or clean.shape[1] != 3 or clean.shape[0] != len(recipes):
        raise ValueError(
            f"expected (B, 3, H, W) images and B recipes, got {tuple(clean.shape)} and "
            f"{len(recipes)} recipes"
        )
    out, target = torch.empty_like(clean), clean.clone()
    for positions in groups(recipes).values():
        index = torch.tensor(positions).to(clean.device, non_blocking=True)
        members = [recipes[i] for i in positions]
        degraded, scene = degrade_group(clean.index_select(0, index), members, generator)
        out.index_copy_(0, index, degraded)
        if any(name in SCENE_STEPS for name in members[0].key):
            target.index_copy_(0, index, scene)
    return out, target


def degrade_batch(clean: Tensor, recipes: Sequence[Recipe], generator: torch.Generator) -> Tensor:
    """A degraded copy of a (B, 3, H, W) float batch in [0, 1]: image i by recipes[i]."""
    return degrade_batch_pair(clean, recipes, generator)[0]
