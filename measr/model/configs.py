"""Named MEASNet configurations: frozen data, built by one factory (`measr.model.build_model`)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from measr.errors import MeasrError


@dataclass(frozen=True)
class ModelConfig:
    """Every size and count of the network; no shape of MEASNet is hard-coded elsewhere."""

    name: str
    in_channels: int = 3
    dim: int = 48
    # Transformer blocks per encoder level 1..3 and the latent (level 4).
    encoder_blocks: tuple[int, int, int, int] = (4, 4, 6, 8)
    # Transformer blocks per decoder level 3, 2, 1 (the paper reuses the encoder's 6, 4, 4).
    decoder_blocks: tuple[int, int, int] = (6, 4, 4)
    refinement_blocks: int = 4
    heads: tuple[int, int, int, int] = (1, 2, 4, 8)
    ffn_expansion: float = 2.66
    bias: bool = False
    # Task prompt: a softmax over a dictionary of atoms.
    prompt_atoms: int = 32
    prompt_dim: int = 256
    prompt_hidden: int = 64
    # Kinds of damage the prompt's atoms are divided among and trained to name (measr's
    # addition, see task_prompt.py); empty: the paper's unsupervised prompt (measr's first
    # weights were trained so, and load so).
    degradation_kinds: tuple[str, ...] = ()
    # How the prompt pools its features over the image: "mean" (the paper) or "mean+std".
    prompt_pooling: str = "mean"
    # STP-G-MESE: per-pixel top-k of n MLP experts at encoder levels 1..3.
    pixel_experts: int = 6
    pixel_top_k: int = 2
    pixel_expert_expansion: float = 2.66
    # FD-MEE: per-image top-k of low-rank experts, one mixture per frequency band.
    mee_ranks: tuple[int, ...] = (2, 3, 4, 5, 6)
    mee_top_k: int = 2
    fd_groups: int = 8
    fd_kernel: int = 3
    mee_striped_kernel: int = 3
    mee_calibration_steps: int = 2
    # Frequency-aware cross-attention blocks (latent, decoder 3, decoder 2).
    cross_attention_heads: int = 4
    # Largest low-pass cut-off of the soft FFT mask, in cycles per pixel (Nyquist is 0.5).
    max_cutoff: float = 0.25
    cutoff_softness: float = 0.02
    notes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.pixel_top_k > self.pixel_experts:
            raise ValueError("pixel_top_k cannot exceed pixel_experts")
        if self.mee_top_k > len(self.mee_ranks):
            raise ValueError("mee_top_k cannot exceed the number of MEE experts")
        if self.prompt_pooling not in ("mean", "mean+std"):
            raise ValueError("prompt_pooling must be 'mean' or 'mean+std'")
        if len(self.degradation_kinds) > self.prompt_atoms:
            raise ValueError("degradation_kinds cannot outnumber prompt_atoms")

    @property
    def mee_experts(self) -> int:
        """Number of low-rank experts in each MEE mixture."""
        return len(self.mee_ranks)

    @property
    def size_multiple(self) -> int:
        """Inputs must be a multiple of this: three 2x pixel-unshuffle downsamplings."""
        return 8

    @property
    def min_size(self) -> int:
        """Smallest input side: the level-3 MEE calibration downsamples 1/4-resolution maps by
        4 per step, and needs at least one pixel after the last step."""
        return 4 * 4**self.mee_calibration_steps

    def to_json(self) -> str:
        """Serialise for safetensors metadata."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        """Inverse of `to_json`; tuples are restored from JSON lists."""
        raw: dict[str, Any] = json.loads(text)
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(raw) - set(known)
        if unknown:
            raise MeasrError(
                f"weights carry unknown configuration fields {sorted(unknown)}",
                "they were made by a newer measr: upgrade measr",
            )
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        return cls(**values)

    def differences(self, other: ModelConfig) -> list[str]:
        """Fields that differ between two configurations, as 'field: a != b'."""
        out = []
        for f in dataclasses.fields(self):
            if not f.compare:
                continue
            a, b = getattr(self, f.name), getattr(other, f.name)
            if a != b:
                out.append(f"{f.name}: {a} != {b}")
        return out


# The kinds of damage new networks learn to name; "clean" is the absence of damage.
DEGRADATION_KINDS = ("clean", "noise", "rain", "haze", "blur", "lowlight")

CONFIGS: dict[str, ModelConfig] = {
    "full": ModelConfig(
        name="full",
        degradation_kinds=DEGRADATION_KINDS,
        prompt_pooling="mean+std",
        notes="the paper's configuration (about 31.7 M parameters)",
    ),
    "small": ModelConfig(
        name="small",
        dim=24,
        encoder_blocks=(2, 3, 4, 6),
        decoder_blocks=(4, 3, 2),
        refinement_blocks=1,
        degradation_kinds=DEGRADATION_KINDS,
        prompt_pooling="mean+std",
        notes="CPU configuration: about a sixth of full's FLOPs at 256x256",
    ),
    "tiny": ModelConfig(
        name="tiny",
        dim=8,
        encoder_blocks=(1, 1, 1, 1),
        decoder_blocks=(1, 1, 1),
        refinement_blocks=1,
        heads=(1, 1, 2, 2),
        prompt_atoms=8,
        prompt_dim=32,
        prompt_hidden=16,
        cross_attention_heads=2,
        degradation_kinds=DEGRADATION_KINDS,
        prompt_pooling="mean+std",
        notes="for tests only",
    ),
}


def get_config(name: str) -> ModelConfig:
    """The named configuration, or a MeasrError listing the valid names."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise MeasrError(
            f"unknown model configuration '{name}'", f"choose one of {', '.join(CONFIGS)}"
        ) from None
