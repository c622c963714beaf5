"""The methods a quality benchmark compares: `input` (the degraded image as it is), `measr` (a
Restorer) and the baselines, behind one small interface."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from measr.degrade import Spec
from measr.engine import Restorer
from measr.engine.device import resolve_device
from measr.errors import ExitCode, MeasrError
from measr.evaluation.baselines import BASELINES, Baseline

INPUT = "input"
MEASR = "measr"
METHOD_NAMES: tuple[str, ...] = (INPUT, MEASR, *BASELINES)
# CBM3D is left out by default: about 45 s per 500x500 image on two CPU cores.
DEFAULT_METHODS: tuple[str, ...] = tuple(name for name in METHOD_NAMES if name != "cbm3d")


class Method(Protocol):
    """Something that restores a degraded float32 RGB (H, W, 3) image in [0, 1]."""

    @property
    def name(self) -> str: ...

    def describe(self) -> str:
        """What exactly ran (weights, device, settings), for reports."""
        ...

    def unavailable(self) -> str | None:
        """Why it cannot run on this machine at all, or None."""
        ...

    def not_applicable(self, spec: Spec | None) -> str | None:
        """Why it does not apply to images degraded with `spec` (None: unknown), or None."""
        ...

    def restore(self, degraded: np.ndarray, spec: Spec | None) -> np.ndarray: ...


class RunsOnEverySet:
    """A method with nothing to check: always available, blind to the degradation."""

    def unavailable(self) -> str | None:
        return None

    def not_applicable(self, spec: Spec | None) -> str | None:
        return None


@dataclass(frozen=True)
class InputMethod(RunsOnEverySet):
    """The degraded image itself: the score any restoration has to beat."""

    name: str = INPUT

    def describe(self) -> str:
        return "the degraded image itself"

    def restore(self, degraded: np.ndarray, spec: Spec | None) -> np.ndarray:
        return degraded


@dataclass(frozen=True)
class MeasrMethod(RunsOnEverySet):
    """MEASNet through the engine, blind to the degradation as users run it."""

    restorer: Restorer
    tile: int | None = None
    name: str = MEASR
    passes: int | None = None  # None: auto, the default (`measr.engine.passes`)

    def describe(self) -> str:
        restorer = self.restorer
        trained = {True: "trained", False: "UNTRAINED", None: "training unknown"}
        passes = "" if self.passes is None else f", passes {self.passes}"
        return (
            f"MEASNet weights '{restorer.name}' ({restorer.config.name}, "
            f"{trained[restorer.is_trained]}) on {restorer.device}, tile {self.tile or 'auto'}"
            f"{passes}"
        )

    def restore(self, degraded: np.ndarray, spec: Spec | None) -> np.ndarray:
        restoration = self.restorer.restore(degraded, tile=self.tile, passes=self.passes)
        return np.asarray(restoration.pixels, dtype=np.float32)


@dataclass(frozen=True)
class BaselineMethod:
    """A baseline run on `device` (only the network baselines use it)."""

    baseline: Baseline
    device: str = "cpu"

    @property
    def name(self) -> str:
        return self.baseline.name

    def describe(self) -> str:
        return f"{self.baseline.title} on {self.device}"

    def unavailable(self) -> str | None:
        return self.baseline.unavailable()

    def not_applicable(self, spec: Spec | None) -> str | None:
        return self.baseline.not_applicable(spec)

    def restore(self, degraded: np.ndarray, spec: Spec | None) -> np.ndarray:
        assert spec is not None  # not_applicable() refuses sets without a spec
        return self.baseline.run(degraded, spec.steps[0], self.device)


def load_restorer(weights: str | None, device: str | None) -> Restorer:
    """The engine's Restorer for a weights name from weights.txt or a .safetensors file (None:
    the default entry)."""
    return Restorer.from_spec(weights, device=device)


def parse_method_names(text: str | Sequence[str]) -> list[str]:
    """Method names from "input,measr,cbm3d" (or a list of such texts), in order, once each."""
    parts = [text] if isinstance(text, str) else list(text)
    names = [n.strip().lower() for part in parts for n in part.split(",") if n.strip()]
    unknown = [n for n in names if n not in METHOD_NAMES]
    if unknown:
        raise MeasrError(
            f"unknown method '{unknown[0]}'",
            f"choose from {', '.join(METHOD_NAMES)}",
            ExitCode.USAGE,
        )
    if not names:
        raise MeasrError("no methods given", f"choose from {', '.join(METHOD_NAMES)}")
    return list(dict.fromkeys(names))


def build_methods(
    names: Sequence[str],
    *,
    weights: str | None = None,
    tile: int | None = None,
    device: str | None = None,
    restorer: Restorer | None = None,
    passes: int | None = 1,
) -> list[Method]:
    """The methods named, ready to run; the Restorer is loaded only when `measr` is asked for
    (pass `restorer` to reuse one already loaded), and restores in `passes` (None: auto)."""
    names = parse_method_names(list(names))
    # Network baselines run where MEASNet does; "auto" picks CUDA when there is one.
    resolved = str(resolve_device(device or "auto"))
    methods: list[Method] = []
    for name in names:
        if name == INPUT:
            methods.append(InputMethod())
        elif name == MEASR:
            loaded = restorer or load_restorer(weights, device)
            methods.append(MeasrMethod(loaded, tile, passes=passes))
        else:
            methods.append(BaselineMethod(BASELINES[name], resolved))
    return methods
