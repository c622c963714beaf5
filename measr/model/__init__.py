"""The MEASNet network: named configurations, the factory, the routing record. Tensors only:
weights on disk are `measr.weights`."""

from measr.model.configs import CONFIGS, ModelConfig, get_config
from measr.model.context import ForwardContext, RoutingRecord
from measr.model.measnet import InputRequirements, MEASNet, ModelOutput


def build_model(name_or_config: str | ModelConfig) -> MEASNet:
    """The network for a named configuration ('full', 'small', 'tiny') or an explicit one."""
    config = get_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    return MEASNet(config)


__all__ = [
    "CONFIGS",
    "ForwardContext",
    "InputRequirements",
    "MEASNet",
    "ModelConfig",
    "ModelOutput",
    "RoutingRecord",
    "build_model",
    "get_config",
]
