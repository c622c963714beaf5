"""Canonical restoration tasks and the task mixes used for training, as data.

`three` is the paper's three-task setting (denoising, deraining, dehazing): noise counts as one
task whose third is split evenly over sigma 15, 25 and 50. `five` adds deblurring and low-light
enhancement, each task a fifth. `six` is `five` with clean photos as a task of their own (a
tenth of the samples, the identity as target), so that the task prompt learns what "nothing
to restore" looks like and the network learns to leave such photos alone. `eight` is `six` with
noise as phones make it (`camnoise`) and dark scenes kept dark (`darkscene`: a photo darkened
as a whole is both the input, with phone noise, and the target), both named noise by the
prompt. The order of tasks in a mix is part of the data: training numbers tasks by their
position in `mix_weights(mix)`, so keep it stable (new tasks go at the end).

`COMPOSITES` are specs of damage that comes together (CDD-11's combinations that measr's kinds
cover, and everyday ones); `spec_kinds` names the kinds of damage a spec holds. Each is also a
task, named by its spec, and `eight+composites` is `eight` with a fifth of its samples drawn
evenly from them (`task_kinds` gives every task's kinds, for the prompt's presence head).
"""

from __future__ import annotations

import math

import numpy as np

from measr.degrade.ranges import NOISE
from measr.degrade.spec import Spec, parse_spec
from measr.errors import MeasrError

# The noise tasks are the benchmark protocol's sigmas, one task each: noise15, noise25, noise50.
NOISE_TASKS = tuple(f"noise{sigma:g}" for sigma in NOISE.standard_sigmas)

TASK_SPECS: dict[str, str] = {
    **{f"noise{sigma:g}": f"noise:{sigma:g}" for sigma in NOISE.standard_sigmas},
    "rain": "rain",
    "haze": "haze",
    "blur": "blur",
    "lowlight": "lowlight",
    "clean": "none",
    "camnoise": "camnoise",
    "darkscene": "dark+camnoise",
}

# The kind of damage of each task, as the task prompt learns to name it (noise levels are one
# kind; the prompt estimates the level separately).
TASK_KINDS: dict[str, str] = {
    **{task: "noise" for task in NOISE_TASKS},
    "rain": "rain",
    "haze": "haze",
    "blur": "blur",
    "lowlight": "lowlight",
    "clean": "clean",
    # A dark noisy phone photo is to be denoised, not brightened: the prompt names it noise.
    "camnoise": "noise",
    "darkscene": "noise",
}

# The kind of damage each spec step adds (the others, a dark scene or JPEG, add none the
# prompt names).
STEP_KINDS: dict[str, str] = {
    "noise": "noise",
    "camnoise": "noise",
    "rain": "rain",
    "haze": "haze",
    "blur": "blur",
    "lowlight": "lowlight",
}

# Share of clean photos in the `six` mix, and of phone noise and dark scenes in `eight`.
CLEAN_SHARE = 0.1
CAMERA_NOISE_SHARE = 0.1
DARK_SCENE_SHARE = 0.04

# Damage that comes together, as specs (each applies in the camera's order: haze and rain, then
# exposure, blur, noise): CDD-11's combinations of low light, haze and rain, and the everyday
# dark-and-noisy, blurred-and-noisy and hazy-and-noisy photos (sigma 15, a phone's indoor level).
COMPOSITES = (
    "lowlight+haze",
    "lowlight+rain",
    "haze+rain",
    "lowlight+haze+rain",
    "lowlight+noise:15",
    "blur+noise:15",
    "haze+noise:15",
)

TASK_SPECS.update({spec: spec for spec in COMPOSITES})
# Share of composite damage in the `eight+composites` mix.
COMPOSITE_SHARE = 0.2

MIXES: dict[str, dict[str, float]] = {
    "three": {
        **{task: 1.0 / (3 * len(NOISE_TASKS)) for task in NOISE_TASKS},
        "rain": 1.0 / 3,
        "haze": 1.0 / 3,
    },
    "five": {
        **{task: 1.0 / (5 * len(NOISE_TASKS)) for task in NOISE_TASKS},
        "rain": 1.0 / 5,
        "haze": 1.0 / 5,
        "blur": 1.0 / 5,
        "lowlight": 1.0 / 5,
    },
}
MIXES["six"] = {
    **{task: weight * (1 - CLEAN_SHARE) for task, weight in MIXES["five"].items()},
    "clean": CLEAN_SHARE,
}
MIXES["eight"] = {
    **{
        task: weight * (1 - CAMERA_NOISE_SHARE - DARK_SCENE_SHARE)
        for task, weight in MIXES["six"].items()
    },
    "camnoise": CAMERA_NOISE_SHARE,
    "darkscene": DARK_SCENE_SHARE,
}

MIXES["eight+composites"] = {
    **{task: weight * (1 - COMPOSITE_SHARE) for task, weight in MIXES["eight"].items()},
    **{spec: COMPOSITE_SHARE / len(COMPOSITES) for spec in COMPOSITES},
}


MIX_HINT = (
    f"a named mix ({', '.join(MIXES)}), optionally reweighted: 'five:rain=2,blur=1.5' "
    "multiplies those tasks' weights ('noise' names all three sigmas, 'composites' every "
    "composite) and renormalises"
)
# Names that reweight several tasks of a mix at once.
GROUPS: dict[str, tuple[str, ...]] = {"noise": NOISE_TASKS, "composites": COMPOSITES}


def mix_weights(mix: str) -> dict[str, float]:
    """Task -> weight (summing to 1) of a mix: a named mix ("three" or "five"), or a named mix
    with some tasks reweighted, "five:rain=2,noise=0.5" (each factor multiplies the task's
    weight, `noise` stands for its three sigmas and `composites` for every composite, then the
    weights are renormalised). The task
    order stays the named mix's, so a reweighted mix numbers its tasks as its base does.
    MeasrError for an unknown mix, task or a bad factor."""
    name, _, overrides = mix.replace(" ", "").partition(":")
    if name not in MIXES:
        raise MeasrError(f"unknown task mix '{mix}'", hint=f"use {MIX_HINT}")
    weights = dict(MIXES[name])
    if not overrides:  # the named mix exactly as stored (samples of old runs stay the same)
        return weights
    for task, factor in parse_reweighting(overrides, mix):
        members = GROUPS.get(task, (task,))
        if not set(members) <= set(weights):
            raise MeasrError(
                f"task '{task}' is not part of the mix '{name}'",
                hint=f"its tasks: {', '.join(weights)}",
            )
        for member in members:
            weights[member] *= factor
    total = sum(weights.values())
    if total <= 0:
        raise MeasrError(f"the mix '{mix}' gives every task weight 0", hint=f"use {MIX_HINT}")
    return {task: weight / total for task, weight in weights.items()}


def parse_reweighting(overrides: str, mix: str) -> list[tuple[str, float]]:
    """[(task, factor)] from 'rain=2,blur=1.5' (empty for ''); factors are finite and >= 0."""
    pairs = []
    for item in filter(None, overrides.split(",")):
        task, equals, value = item.partition("=")
        try:
            factor = float(value) if equals else math.nan
        except ValueError:
            factor = math.nan
        if not math.isfinite(factor) or factor < 0:
            raise MeasrError(f"bad reweighting '{item}' in the mix '{mix}'", hint=f"use {MIX_HINT}")
        pairs.append((task, factor))
    return pairs


def task_kind(task: str) -> str:
    """The kind of damage of a task ('noise25' -> 'noise'); MeasrError if unknown or if the
    task holds several kinds (a composite: see `task_kinds`)."""
    task_spec(task)
    if task not in TASK_KINDS:
        raise MeasrError(f"task '{task}' holds several kinds of damage", hint="use task_kinds")
    return TASK_KINDS[task]


def task_kinds(task: str) -> tuple[str, ...]:
    """Every kind of damage a task holds ('lowlight+noise:15' -> ('lowlight', 'noise'),
    'darkscene' -> ('noise',), 'clean' -> ('clean',)); MeasrError if unknown."""
    if task in TASK_KINDS:
        return (TASK_KINDS[task],)
    return spec_kinds(task_spec(task)) or ("clean",)


def task_noise_sigma(task: str) -> float | None:
    """The Gaussian noise sigma (0-255 scale) a task adds: its sigma for the noise tasks, 0 for
    clean photos, None where the task's noise is not a single known sigma."""
    if task == "clean":
        return 0.0
    if task in NOISE_TASKS:
        return float(task_spec(task).partition(":")[2])
    return None


def spec_kinds(spec: str | Spec) -> tuple[str, ...]:
    """The kinds of damage a spec holds, once each, in the order they apply
    ("lowlight+haze" -> ("haze", "lowlight"))."""
    kinds = (STEP_KINDS.get(step.name) for step in parse_spec(spec).applied)
    return tuple(dict.fromkeys(kind for kind in kinds if kind is not None))


def task_spec(task: str) -> str:
    """Degradation spec of a task name (see TASK_SPECS); MeasrError if unknown."""
    if task not in TASK_SPECS:
        raise MeasrError(f"unknown task '{task}'", hint=f"valid tasks: {', '.join(TASK_SPECS)}")
    return TASK_SPECS[task]


def pick_task(mix: str, rng: np.random.Generator) -> str:
    """One task name drawn from a mix (see `mix_weights`) with the mix's weights."""
    weights = mix_weights(mix)
    names = list(weights)
    probabilities = np.array([weights[name] for name in names])
    if not math.isclose(probabilities.sum(), 1.0, abs_tol=1e-9):
        raise ValueError(f"weights of mix '{mix}' sum to {probabilities.sum()}, not 1")
    return names[int(rng.choice(len(names), p=probabilities / probabilities.sum()))]
