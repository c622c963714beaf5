"""Choosing the device and precision a restoration runs on."""

from __future__ import annotations

import re

import torch

from measr.errors import ExitCode, MeasrError
from measr.model import InputRequirements

_NO_CUDA_HINT = "run on the CPU, or install a CUDA build of PyTorch on a machine with a GPU"


def resolve_device(spec: str = "auto") -> torch.device:
    """'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N', checked against what
    this machine has."""
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if match is None:
        raise MeasrError(
            f"unknown device '{spec}'", "use auto, cpu, cuda or cuda:N", option="device"
        )
    if not torch.cuda.is_available():
        raise MeasrError(
            f"device '{spec}' asked for, but CUDA is not available",
            _NO_CUDA_HINT,
            ExitCode.MODEL,
            option="device",
        )
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise MeasrError(
            f"device '{spec}' asked for, but this machine has {count} CUDA device(s)",
            f"use cuda:0 to cuda:{count - 1}",
            ExitCode.MODEL,
            option="device",
        )
    return torch.device("cuda", index)


def check_half(device: torch.device, requirements: InputRequirements) -> None:
    """Half precision runs on CUDA only (CPU kernels for float16 are slow or missing)."""
    if device.type != "cuda":
        raise MeasrError(
            "half precision runs on CUDA only",
            "run in float32 on the CPU, or on a CUDA device of a machine with a GPU",
            ExitCode.MODEL,
            option="half",
        )
    if not requirements.supports_half:
        raise MeasrError(
            "this model does not support half precision",
            "run in float32",
            ExitCode.MODEL,
            option="half",
        )
