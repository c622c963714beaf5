"""Where the engine's tile passes run: the network on PyTorch (`torch`), its ONNX graph on ONNX
Runtime (`onnx`, `measr.engine.onnx_backend`) or its OpenVINO conversion (`openvino`,
`measr.engine.openvino_backend`). The prompt runs on PyTorch, and so does the whole image's
global-context pass except on OpenVINO; the other backends take the statistics their tiles share
as inputs.

`auto` is OpenVINO where it pays and is installed (the CPU, without `--half` or `--compile`,
photos in tiles: on a 12 MP photo 2.5x PyTorch with the tiles in bfloat16, 1.7x in float32,
docs/performance.md) and PyTorch everywhere else. It is the default of the command line and of
the library alike: `MEASR_BACKEND` names another for both (`default_backend`). OpenVINO computes
a photo's tiles in bfloat16 where the CPU does natively (AMX, AVX512-BF16), unless asked for
float32."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from measr.engine import onnx_backend, openvino_backend
from measr.engine.inference import TileForward
from measr.errors import MeasrError
from measr.model import MEASNet

BACKENDS = ("auto", "torch", "onnx", "openvino")
CLI_DEFAULT_BACKEND = "auto"
# Names the backend of `restore` and `batch` (Typer reads it) and of `Restorer` when none is named.
BACKEND_ENV = "MEASR_BACKEND"


def default_backend() -> str:
    """The backend when none is named: $MEASR_BACKEND, else `auto`, as the command line's
    --backend defaults."""
    return os.environ.get(BACKEND_ENV) or CLI_DEFAULT_BACKEND


def resolve_backend(
    name: str, device: torch.device, half: bool, compile: bool = False
) -> tuple[str, str | None]:
    """The backend to run for the one asked for, and a one-line note when it differs: the
    runtimes run float32 on the CPU, and without their extra installed PyTorch runs instead.
    `auto` resolves silently (module docstring)."""
    if name not in BACKENDS:
        raise MeasrError(
            f"unknown backend '{name}'", f"choose one of {', '.join(BACKENDS)}", option="backend"
        )
    if name == "auto":
        pays = openvino_pays(device, half, compile)
        return ("openvino" if pays and openvino_backend.openvino_available() else "torch"), None
    if name == "torch":
        return name, None
    if device.type != "cpu" or half:
        raise MeasrError(
            f"the {name} backend runs in float32 on the CPU",
            "run it on the CPU, without half precision",
            option="backend",
        )
    runtime, available, hint = {
        "onnx": ("ONNX Runtime", onnx_backend.onnx_available, onnx_backend.INSTALL_HINT),
        "openvino": (
            "OpenVINO",
            openvino_backend.openvino_available,
            openvino_backend.INSTALL_HINT,
        ),
    }[name]
    if not available():
        return "torch", f"{runtime} is not installed, running on PyTorch ({hint})"
    return name, None


def openvino_pays(device: torch.device, half: bool, compile: bool) -> bool:
    """Where `auto` runs OpenVINO when it is installed: the CPU, float32, no torch.compile."""
    return device.type == "cpu" and not half and not compile


def missing_runtime_hint(
    name: str, device: torch.device, half: bool, compile: bool = False
) -> str | None:
    """What to say, once, when a photo is tiled where `auto` would run OpenVINO but it is not
    installed: how much it gives and how to get it; None elsewhere."""
    if name != "auto" or not openvino_pays(device, half, compile):
        return None
    if openvino_backend.openvino_available():
        return None
    return (
        "tiled photos restore 1.8-2.5x faster on OpenVINO, which is not installed "
        f"(docs/performance.md); {openvino_backend.INSTALL_HINT}"
    )


def tile_passes(
    backend: str,
    model: MEASNet,
    threads: int,
    float32: bool = False,
    notify: Callable[[str], None] | None = None,
) -> TileForward | None:
    """The forward passes of a resolved backend; None for PyTorch (the network itself).
    OpenVINO's compute a photo's tiles in bfloat16 where the CPU does natively, unless
    `float32`, and `notify` a conversion before it starts."""
    if backend == "onnx":
        return onnx_backend.OnnxTilePasses(model, threads)
    if backend == "openvino":
        return openvino_backend.OpenVinoTilePasses(model, threads, float32=float32, notify=notify)
    return None
