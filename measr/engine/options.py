"""What a caller asks of the engine, as data: `RuntimeOptions` say how to build a `Restorer`
(weights, device, threads, precision, compiler, backend), `RestoreOptions` how to restore one
image with it (tiles, shared context, strength, memory cap). The CLI fills them from its flags,
a batch passes one `RestoreOptions` to every file."""

from __future__ import annotations

from dataclasses import dataclass

from measr.engine.strength import FULL_STRENGTH, check_strength
from measr.errors import MeasrError

DEFAULT_TILE_OVERLAP = 32
# The most passes a photo is restored in (`RestoreOptions.passes`; `measr.engine.passes`).
MAX_PASSES = 3


@dataclass(frozen=True)
class RuntimeOptions:
    """How to build a Restorer (`Restorer.from_options`)."""

    weights: str | None = None  # a weights.txt name or a .safetensors path; None: the default
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    threads: int | None = None  # PyTorch's CPU threads; None: PyTorch's choice
    half: bool = False  # float16 (CUDA only)
    compile: bool = False  # torch.compile the network's steps
    backend: str | None = None  # auto, torch, onnx or openvino; None: $MEASR_BACKEND or auto
    float32: bool = False  # OpenVINO's passes in float32 even where the CPU has bfloat16


@dataclass(frozen=True)
class RestoreOptions:
    """How `Restorer.restore` restores one image."""

    tile: int | None = None  # tile side in pixels; None: from free memory (whole if it fits)
    tile_overlap: int = DEFAULT_TILE_OVERLAP  # minimum overlap of neighbouring tiles
    shared_context: bool = True  # tiles share the whole image's global statistics
    strength: float = FULL_STRENGTH  # 0..1: how much of the restoration to keep (blend)
    max_memory: int | None = None  # bytes the memory plan may use at most
    # Restore even a kind of damage these weights do not improve (`measr.engine.harm`).
    force: bool = False
    # Passes of restoration, 1 to MAX_PASSES; None: auto, one pass unless the prompt names
    # several kinds of damage, then again while it still names damage in the output and the
    # pass made it no worse by its reading (`measr.engine.passes`).
    passes: int | None = None

    def __post_init__(self) -> None:
        """Refuse a strength outside [0, 1], or passes outside 1..MAX_PASSES, before any photo
        is restored."""
        check_strength(self.strength)
        if self.passes is not None and not 1 <= self.passes <= MAX_PASSES:
            raise MeasrError(
                f"passes must be 1 to {MAX_PASSES} or auto, not {self.passes}",
                "auto restores again while the prompt names several kinds of damage",
                option="passes",
            )
