"""Where the engine's tile passes run: the network on PyTorch (`torch`), its ONNX graph on ONNX
Runtime (`onnx`, `measr.engine.onnx_backend`) or its OpenVINO conversion (`openvino`,
`measr.engine.openvino_backend`). The prompt runs on PyTorch, and so does the whole image's
global-context pass except on OpenVINO; the other backends take the statistics their tiles share
as inputs.

`auto`, the command line's default, is OpenVINO where it pays and is installed (the CPU, without
`--half` or `--compile`, photos in tiles: on a 12 MP photo 2.5x PyTorch with the tiles in
bfloat16, 1.7x in float32, docs/performance.md) and PyTorch everywhere else; the library's
`Restorer` runs PyTorch unless told otherwise. OpenVINO computes a photo's tiles in bfloat16
where the CPU does natively (AMX, AVX512-BF16), unless asked for float32."""

from __future__ import annotations

import torch

from measr.engine import onnx_backend, openvino_backend
from measr.engine.inference import TileForward
from measr.errors import MeasrError
from measr.model import MEASNet

BACKENDS = ("auto", "torch", "onnx", "openvino")
DEFAULT_BACKEND = "torch"  # the library's
CLI_DEFAULT_BACKEND = "auto"


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
        pays = device.type == "cpu" and not half and not compile
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


def tile_passes(
    backend: str, model: MEASNet, threads: int, float32: bool = False
) -> TileForward | None:
    """The forward passes of a resolved backend; None for PyTorch (the network itself).
    OpenVINO's compute a photo's tiles in bfloat16 where the CPU does natively, unless
    `float32`."""
    if backend == "onnx":
        return onnx_backend.OnnxTilePasses(model, threads)
    if backend == "openvino":
        return openvino_backend.OpenVinoTilePasses(model, threads, float32=float32)
    return None
