"""The MEASNet network: named configurations, the factory, the routing record. Tensors only:
weights on disk are `measr.weights`."""

import torch

from measr.model.configs import CONFIGS, ModelConfig, get_config
from measr.model.context import ForwardContext, RoutingRecord
from measr.model.measnet import InputRequirements, MEASNet, ModelOutput


def build_model(name_or_config: str | ModelConfig) -> MEASNet:
    """The network for a named configuration (full, small, lean, tiny) or an explicit one."""
    config = get_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    return MEASNet(config)


# What the named configurations' networks need from their input: they share it (a test
# checks), so help texts state the size multiple and tile grid from here, not as numbers.
NAMED_REQUIREMENTS = InputRequirements.of(CONFIGS["small"])


def parameter_count(config: ModelConfig) -> int:
    """How many numbers (parameters and buffers) the network of `config` holds, counted without
    allocating them: the network is built on PyTorch's meta device, which records shapes only."""
    with torch.device("meta"):
        model = MEASNet(config)
    tensors = [*model.parameters(), *model.buffers()]
    return sum(tensor.numel() for tensor in tensors)


def state_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The shape of each tensor of the network's state dict, taken on the meta device (no
    memory), by name."""
    with torch.device("meta"):
        model = MEASNet(config)
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


__all__ = [
    "CONFIGS",
    "NAMED_REQUIREMENTS",
    "ForwardContext",
    "InputRequirements",
    "MEASNet",
    "ModelConfig",
    "ModelOutput",
    "RoutingRecord",
    "build_model",
    "get_config",
    "parameter_count",
    "state_shapes",
]
