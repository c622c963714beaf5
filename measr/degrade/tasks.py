"""Canonical restoration tasks and the task mixes used for training, as data.

`three` is the paper's three-task setting (denoising, deraining, dehazing): noise counts as one
task whose third is split evenly over sigma 15, 25 and 50. `five` adds deblurring and low-light
enhancement, each task a fifth. The order of tasks in a mix is part of the data: training
numbers tasks by their position in `mix_weights(mix)`, so keep it stable.
"""

from __future__ import annotations

import math

import numpy as np

from measr.errors import MeasrError

TASK_SPECS: dict[str, str] = {
    "noise15": "noise:15",
    "noise25": "noise:25",
    "noise50": "noise:50",
    "rain": "rain",
    "haze": "haze",
    "blur": "blur",
    "lowlight": "lowlight",
}

NOISE_TASKS = ("noise15", "noise25", "noise50")

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


def mix_weights(mix: str) -> dict[str, float]:
    """Task -> weight (summing to 1) of a named mix ("three" or "five"); MeasrError if unknown."""
    if mix not in MIXES:
        raise MeasrError(f"unknown task mix '{mix}'", hint=f"valid mixes: {', '.join(MIXES)}")
    return dict(MIXES[mix])


def task_spec(task: str) -> str:
    """Degradation spec of a task name (see TASK_SPECS); MeasrError if unknown."""
    if task not in TASK_SPECS:
        raise MeasrError(f"unknown task '{task}'", hint=f"valid tasks: {', '.join(TASK_SPECS)}")
    return TASK_SPECS[task]


def pick_task(mix: str, rng: np.random.Generator) -> str:
    """One task name drawn from a named mix with the mix's weights."""
    weights = mix_weights(mix)
    names = list(weights)
    probabilities = np.array([weights[name] for name in names])
    if not math.isclose(probabilities.sum(), 1.0, abs_tol=1e-9):
        raise ValueError(f"weights of mix '{mix}' sum to {probabilities.sum()}, not 1")
    return names[int(rng.choice(len(names), p=probabilities / probabilities.sum()))]
