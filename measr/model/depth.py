"""A network of another depth from trained weights: the same widths, more or fewer transformer
blocks per stage, every tensor the trained network has for it reused.

Each stage is a residual stack (x + attention, x + FFN), so a stage cut to its first blocks is
still a sound network: what the cut blocks added is lost, not what the kept ones learned.
Blocks beyond the trained ones start freshly initialised. This is how a cheaper configuration
(`lean`: fewer blocks at full resolution) starts from `small`'s weights instead of from random.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from measr.errors import MeasrError
from measr.model.configs import CONFIGS, ModelConfig
from measr.model.measnet import MEASNet

# The fields that count blocks; a configuration that differs from another only in these (and
# its name and notes) can reuse the other's weights block by block.
DEPTH_FIELDS = ("encoder_blocks", "decoder_blocks", "refinement_blocks")
_DESCRIPTIVE = ("name", "notes")


@dataclass(frozen=True)
class Reuse:
    """How much of the trained network a reshaped one took over."""

    reused: int  # tensors copied
    fresh: int  # tensors of blocks the trained network did not have
    dropped: int  # tensors of the trained network's blocks beyond the new depth

    def words(self) -> str:
        words = f"reused {self.reused} tensors"
        if self.dropped:
            words += f", dropped {self.dropped} of the blocks cut"
        if self.fresh:
            words += f", {self.fresh} of new blocks start fresh"
        return words


def differs_only_in_depth(a: ModelConfig, b: ModelConfig) -> bool:
    """Whether two configurations have the same widths, experts and prompt, whatever their
    block counts."""
    ignored = (*DEPTH_FIELDS, *_DESCRIPTIVE)
    return all(
        getattr(a, f.name) == getattr(b, f.name)
        for f in dataclasses.fields(ModelConfig)
        if f.name not in ignored
    )


def with_depth_of(config: ModelConfig, target: ModelConfig) -> ModelConfig:
    """`config` with `target`'s name and block counts (its prompt and widths kept)."""
    depth = {name: getattr(target, name) for name in DEPTH_FIELDS}
    return dataclasses.replace(config, name=target.name, notes=target.notes, **depth)


def check_reshapable(trained: ModelConfig, target: ModelConfig) -> None:
    """Refuse a target that is not the trained network's named configuration at another depth
    (compared with the named configuration, since trained weights may carry measr's later
    prompt additions that the names' defaults lack)."""
    named = CONFIGS.get(trained.name, trained)
    if not differs_only_in_depth(named, target):
        raise MeasrError(
            f"weights for '{trained.name}' cannot start a '{target.name}' network",
            "their widths differ; only a configuration that differs in block counts alone "
            "reuses them (train it from random weights instead: leave out --init)",
        )


def reshaped(model: MEASNet, target: ModelConfig) -> tuple[MEASNet, Reuse]:
    """A network of `target`'s depth with `model`'s widths and prompt, holding every tensor of
    `model` that it has a place for (each stage's first blocks)."""
    check_reshapable(model.config, target)
    network = MEASNet(with_depth_of(model.config, target))
    trained = model.state_dict()
    state = network.state_dict()
    taken = {name: trained[name] for name in state if name in trained}
    network.load_state_dict(taken, strict=False)  # same widths: every shape matches
    reuse = Reuse(len(taken), len(state) - len(taken), len(set(trained) - set(state)))
    return network, reuse
