"""Weights on disk: safetensors files whose metadata carries the model configuration, so a file
always says which network it belongs to."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from measr.errors import WeightsError
from measr.model.configs import ModelConfig
from measr.model.measnet import MEASNet

CONFIG_KEY = "measr.config"


def save_weights(
    model: MEASNet, path: str | Path, *, half: bool = False, metadata: dict[str, str] | None = None
) -> None:
    """Write the model's parameters (and buffers) to a safetensors file atomically, with its
    configuration (and any extra string metadata) in the header. `half` stores float16."""
    path = Path(path)
    tensors = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        tensors[name] = tensor.half() if half and tensor.is_floating_point() else tensor
    header = {CONFIG_KEY: model.config.to_json(), **(metadata or {})}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=header)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; weights are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The header metadata of a safetensors weights file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(
            f"cannot read weights '{path}': {error}",
            "the file is missing, truncated or not safetensors",
        ) from None


def read_config(path: str | Path) -> ModelConfig:
    """The configuration a weights file was saved with."""
    metadata = read_metadata(path)
    if CONFIG_KEY not in metadata:
        raise WeightsError(
            f"weights '{path}' carry no measr configuration",
            "they were not written by measr: use weights exported with `measr export`",
        )
    return ModelConfig.from_json(metadata[CONFIG_KEY])


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file, as float32 where they are floating point."""
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(
            f"cannot read weights '{path}': {error}",
            "the file is missing, truncated or not safetensors",
        ) from None
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}


def load_into(
    model: MEASNet, state: dict[str, torch.Tensor], source: str, config: ModelConfig
) -> None:
    """Copy `state` into `model`, failing with a message naming both configurations when they
    do not match."""
    target = model.config
    differences = target.differences(config)
    if differences:
        raise WeightsError(
            f"weights '{source}' are for configuration '{config.name}', not '{target.name}' "
            f"({'; '.join(differences[:4])})",
            f"build the model with config '{config.name}', or use weights made for '{target.name}'",
        )
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise WeightsError(
            f"weights '{source}' do not fit configuration '{target.name}': "
            f"{len(missing)} missing and {len(unexpected)} unexpected tensors "
            f"(e.g. {(missing or unexpected)[0]})",
            "the file was made by a different measr version; re-export it",
        )


def load_model(path: str | Path) -> MEASNet:
    """A network built from the configuration stored in a weights file, with its weights."""
    config = read_config(path)
    model = MEASNet(config)
    load_into(model, load_state(path), str(path), config)
    return model


def load_weights(model: MEASNet, path: str | Path) -> None:
    """Load a weights file into an existing network; the configurations must match."""
    load_into(model, load_state(path), str(path), read_config(path))
