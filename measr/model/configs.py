"""Named MEASNet configurations: frozen data, built by one factory (`measr.model.build_model`)."""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from typing import Any

from measr.errors import MeasrError, WeightsError


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
    # A stride-1 convolution reads every pixel of the prompt's cells first (measr's addition:
    # the paper's stride-3 patches alias thin rain streaks; see task_prompt.py).
    prompt_fine_layer: bool = False
    # Each prompt cell's features also see its neighbours' (measr's addition, task_prompt.py).
    prompt_context: bool = False
    # An independent presence probability per kind of damage (a sigmoid head on the prompt's
    # pooled features; measr's addition, task_prompt.py): names every kind a photo holds, where
    # the atoms' softmax names one. Weights without it read with the softmax alone.
    presence_head: bool = False
    # Hidden units of the presence head: 0 a linear map of the pooled features, else one hidden
    # layer (GELU) of this many units (the pooled features of frozen weights separate the kinds
    # that come together better so, docs/prompt.md).
    presence_hidden: int = 0
    # A gain and offset per colour channel chosen by the damage the prompt names (measr's
    # addition, see colour.py; needs degradation_kinds).
    colour_correction: bool = False
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
        if self.colour_correction and not self.degradation_kinds:
            raise ValueError("colour_correction needs degradation_kinds (the prompt names them)")
        if self.presence_head and not self.degradation_kinds:
            raise ValueError("presence_head needs degradation_kinds (one probability per kind)")

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
        """Inverse of `to_json`, for text from a file (weights metadata, checkpoints): every
        field is checked for its type and bounds (FIELD_LIMITS) before anything is built, and
        anything wrong is a WeightsError saying what."""
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):
            raise _invalid("it is not JSON") from None
        if not isinstance(raw, dict):
            raise _invalid(f"it is a JSON {type(raw).__name__}, not an object")
        hints = typing.get_type_hints(cls)
        unknown = set(raw) - set(hints)
        if unknown:
            raise WeightsError(
                f"unknown model configuration fields {sorted(unknown)[:8]}",
                "they were made by a newer measr: upgrade measr",
            )
        values = {name: _checked_field(name, hints[name], value) for name, value in raw.items()}
        try:
            config = cls(**values)
        except (TypeError, ValueError) as error:  # a missing name, or __post_init__'s checks
            raise _invalid(str(error)) from None
        config.check_shapes()
        return config

    def check_shapes(self) -> None:
        """Refuse sizes that build a network whose forward pass cannot run: attention heads
        must divide the channels of their level, frequency groups the decoder's channels, and
        depthwise kernels must be odd to keep the map's size."""
        for level, heads in enumerate(self.heads):
            if (self.dim * 2**level) % heads:
                raise _invalid(f"heads[{level}]={heads} does not divide {self.dim * 2**level}")
        for name in ("cross_attention_heads", "fd_groups"):
            if (2 * self.dim) % getattr(self, name):
                raise _invalid(f"{name}={getattr(self, name)} does not divide {2 * self.dim}")
        for name in ("fd_kernel", "mee_striped_kernel"):
            if getattr(self, name) % 2 == 0:
                raise _invalid(f"{name}={getattr(self, name)} is even")

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


# Bounds of every numeric field (each element, for tuples) of a configuration read from a file:
# generous around the named configurations below, tight enough that nothing absurd is built
# (`measr.weights` then estimates the parameter count against the memory there is).
FIELD_LIMITS: dict[str, tuple[float, float]] = {
    "in_channels": (3, 3),  # the engine feeds RGB (gray images are widened)
    "dim": (4, 256),
    "encoder_blocks": (1, 32),
    "decoder_blocks": (1, 32),
    "refinement_blocks": (0, 32),
    "heads": (1, 64),
    "ffn_expansion": (0.25, 8.0),
    "prompt_atoms": (1, 1024),
    "prompt_dim": (1, 4096),
    "prompt_hidden": (1, 4096),
    "presence_hidden": (0, 4096),
    "pixel_experts": (1, 64),
    "pixel_top_k": (1, 64),
    "pixel_expert_expansion": (0.25, 8.0),
    "mee_ranks": (1, 256),
    "mee_top_k": (1, 64),
    "fd_groups": (1, 64),
    "fd_kernel": (1, 15),
    "mee_striped_kernel": (1, 15),
    "mee_calibration_steps": (0, 4),  # the smallest input side grows 4x a step
    "cross_attention_heads": (1, 64),
    "max_cutoff": (0.01, 0.5),  # cycles per pixel; Nyquist is 0.5
    "cutoff_softness": (0.0001, 1.0),
}
MAX_TUPLE_LENGTH = 64  # elements of variable-length tuples (mee_ranks, degradation_kinds)
MAX_TEXT_CHARS = 1000  # characters of a text field (name, notes, a kind of damage)
# What JSON value each field type accepts (an int is a valid float).
_JSON_TYPES: dict[type, tuple[type, ...]] = {
    bool: (bool,),
    int: (int,),
    float: (int, float),
    str: (str,),
}


def _invalid(reason: str) -> WeightsError:
    """The error for a configuration that cannot be built."""
    return WeightsError(
        f"invalid model configuration: {reason}",
        "the file is damaged or was not written by measr; use weights exported by measr",
    )


def _checked_field(name: str, hint: Any, value: Any) -> Any:
    """`value` (parsed JSON) as field `name` of type `hint` holds it, within FIELD_LIMITS; JSON
    lists become tuples."""
    if typing.get_origin(hint) is not tuple:
        return _checked_scalar(name, hint, value)
    element, *rest = typing.get_args(hint)
    length = None if rest == [Ellipsis] else 1 + len(rest)
    if not isinstance(value, list):
        raise _invalid(f"{name} is not a list")
    if (length is not None and len(value) != length) or len(value) > MAX_TUPLE_LENGTH:
        expected = length if length is not None else f"at most {MAX_TUPLE_LENGTH}"
        raise _invalid(f"{name} has {len(value)} values (expected {expected})")
    return tuple(_checked_scalar(name, element, item) for item in value)


def _checked_scalar(name: str, kind: Any, value: Any) -> Any:
    """One bool, int, float or str of field `name`, of the right JSON type and within bounds."""
    if not _has_json_type(value, kind):
        expected = getattr(kind, "__name__", str(kind))
        raise _invalid(f"{name} is {type(value).__name__}, not {expected}")
    if kind is bool:
        return value
    if kind is str:
        if len(value) > MAX_TEXT_CHARS:
            raise _invalid(f"{name} is {len(value)} characters long")
        return value
    low, high = FIELD_LIMITS[name]  # every numeric field has bounds (a test checks)
    finite = not isinstance(value, float) or math.isfinite(value)  # huge ints stay exact
    if not (finite and low <= value <= high):
        raise _invalid(f"{name}={str(value)[:24]} is outside {low:g}..{high:g}")
    return float(value) if kind is float else value


def _has_json_type(value: object, kind: Any) -> bool:
    """Whether a parsed JSON value is of the field type `kind` (true and false are not
    numbers here, though Python counts them as ints)."""
    if isinstance(value, bool) and kind is not bool:
        return False
    return isinstance(value, _JSON_TYPES.get(kind, ()))


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


CONFIGS["lean"] = dataclasses.replace(
    CONFIGS["small"],
    name="lean",
    encoder_blocks=(1, 3, 4, 6),
    decoder_blocks=(4, 3, 1),
    refinement_blocks=0,
    notes="small with one block at full resolution a stage and no refinement: 17 % fewer FLOPs, "
    "every part of the paper kept; starts from small's weights (measr/model/depth.py)",
)


def get_config(name: str) -> ModelConfig:
    """The named configuration, or a MeasrError listing the valid names."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise MeasrError(
            f"unknown model configuration '{name}'", f"choose one of {', '.join(CONFIGS)}"
        ) from None
