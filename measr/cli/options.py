"""Options every model-running command takes, in one place (weights, device, precision, tiling),
and the checks commands share before they start."""

from __future__ import annotations

from typing import Annotated

import typer

from measr.cli.render import note_backend, warn_if_unverified
from measr.engine import Restorer
from measr.engine.backends import BACKEND_ENV
from measr.engine.options import (
    DEFAULT_TILE_OVERLAP,
    MAX_PASSES,
    RestoreOptions,
    RuntimeOptions,
)
from measr.engine.restorer import MAX_THREADS
from measr.engine.strength import FULL_STRENGTH
from measr.errors import ExitCode, MeasrError, quoted
from measr.model import NAMED_REQUIREMENTS

# The panels of `--help` these options are shown in (measr.cli.help).
DEVICE_PANEL = "Weights and device"
SPEED_PANEL = "Speed"
TILES_PANEL = "Tiles and memory"

WeightsOption = Annotated[
    str | None,
    typer.Option(
        "--weights",
        "-w",
        metavar="NAME|PATH",
        rich_help_panel=DEVICE_PANEL,
        help="A name from weights.txt (see `measr models`) or a .safetensors file "
        "(convert .pth/.ckpt checkpoints once with `measr import-weights`); "
        "default: the default entry.",
    ),
]
DeviceOption = Annotated[
    str,
    typer.Option(
        "--device",
        rich_help_panel=DEVICE_PANEL,
        help="auto (CUDA if available), cpu, cuda or cuda:N.",
    ),
]
ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads", rich_help_panel=DEVICE_PANEL, help=f"CPU threads for PyTorch, 1-{MAX_THREADS}."
    ),
]
HalfOption = Annotated[
    bool, typer.Option("--half", rich_help_panel=DEVICE_PANEL, help="Run in float16 (CUDA only).")
]
CompileOption = Annotated[
    bool,
    typer.Option(
        "--compile/--no-compile",
        rich_help_panel=SPEED_PANEL,
        help="torch.compile the network's steps: 1.2-1.8x faster once inductor's cache is warm "
        "(whole images and tiles); the first image of each size or tile size compiles for "
        "minutes (docs/performance.md).",
    ),
]
BackendOption = Annotated[
    str,
    typer.Option(
        "--backend",
        envvar=BACKEND_ENV,
        rich_help_panel=SPEED_PANEL,
        help="Where the passes run: auto (OpenVINO for photos in tiles on the CPU, without "
        "--half or --compile: a 12 MP photo 2.5x faster on a Xeon with AMX, 1.8x on an AVX2 "
        "AMD EPYC; PyTorch for whole photos, and where OpenVINO is not installed), torch, "
        "openvino, or onnx (ONNX Runtime, measr\\[onnx]: slower). The first tiled photo "
        "converts the network, once (1-3 minutes, said as it starts; ONNX: minutes), kept in "
        "the cache. docs/performance.md compares them.",
        show_envvar=True,
    ),
]
Float32Option = Annotated[
    bool,
    typer.Option(
        "--float32",
        rich_help_panel=SPEED_PANEL,
        help="Keep OpenVINO's passes in float32: on CPUs with bfloat16 (AMX, AVX512-BF16) a "
        "photo's tiles run in bfloat16 otherwise, about 1.5x faster on a 12 MP photo and within "
        "0.06 dB on every validation set (docs/performance.md).",
    ),
]
TileOption = Annotated[
    int | None,
    typer.Option(
        "--tile",
        min=1,
        rich_help_panel=TILES_PANEL,
        help="Tile side in pixels (rounded down to the network's tile grid: a multiple of "
        f"{NAMED_REQUIREMENTS.tile_alignment}, at least {2 * NAMED_REQUIREMENTS.tile_alignment}, "
        "for the named configurations); "
        "default: chosen from free memory, and images that fit run whole.",
    ),
]
TileOverlapOption = Annotated[
    int,
    typer.Option(
        "--tile-overlap",
        min=0,
        rich_help_panel=TILES_PANEL,
        help="Minimum overlap of neighbouring tiles.",
    ),
]
NoSharedContextOption = Annotated[
    bool,
    typer.Option(
        "--no-shared-context",
        rich_help_panel=TILES_PANEL,
        help="Let each tile compute its own global statistics instead of sharing those of the "
        "whole image (for comparison: tiles then disagree).",
    ),
]


def open_restorer(options: RuntimeOptions) -> Restorer:
    """The Restorer the --weights, --device, --threads, --half, --compile, --backend and
    --float32 options ask for (with a warning on stderr when no checksum verified its weights,
    and a note when another backend than the one asked for runs)."""
    restorer = Restorer.from_options(options)
    warn_if_unverified(restorer)
    note_backend(restorer)
    return restorer


StrengthOption = Annotated[
    float,
    typer.Option(
        "--strength",
        help="How much of the restoration to keep: 1 the restored photo, 0 the input, "
        "between them a blend of the two.",
    ),
]


ForceOption = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Restore even a photo whose damage these weights do not improve yet (by their "
        "validation scores against the damaged input); without it such a photo is written "
        "unchanged, and the line says why. --routing-map implies it.",
    ),
]


PassesOption = Annotated[
    str,
    typer.Option(
        "--passes",
        metavar="N|auto",
        help=f"Restore in 1 to {MAX_PASSES} passes, or auto (the default): one pass, unless "
        "the prompt finds several kinds of damage; then again while it still names damage in "
        f"the output, at most {MAX_PASSES}, keeping a pass only when the prompt reads its "
        "output as no more damaged (docs/prompt.md).",
    ),
]


def parse_passes(text: str) -> int | None:
    """'1' to 'MAX_PASSES' -> that many passes; 'auto' -> None."""
    if text.strip().lower() == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise MeasrError(
            f"--passes must be 1 to {MAX_PASSES} or auto, not {quoted(text)}",
            "auto restores again while the prompt names several kinds of damage",
            ExitCode.USAGE,
            option="passes",
        ) from None


MaxMemoryOption = Annotated[
    str | None,
    typer.Option(
        "--max-memory",
        metavar="SIZE",
        rich_help_panel=TILES_PANEL,
        help="Most memory the network's activations may take, e.g. 4G or 800M (the tiles "
        "shrink to fit); default: 40 % of the free memory.",
    ),
]
_SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(text: str | None) -> int | None:
    """'4G', '4GB', '4GiB', '800M' or a number of bytes -> bytes (binary units); None stays."""
    if text is None:
        return None
    number = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = number[-1:] if number[-1:] in _SIZE_UNITS else ""
    try:
        size = float(number.removesuffix(unit)) * _SIZE_UNITS[unit] if unit else float(number)
    except ValueError:
        size = -1
    if size <= 0:
        raise MeasrError(
            f"--max-memory must be a size such as 4G or 800M, not {quoted(text)}",
            "give a number with K, M, G or T (binary units), e.g. --max-memory 4G",
            ExitCode.USAGE,
        )
    return int(size)


def restore_options(
    tile: int | None,
    tile_overlap: int = DEFAULT_TILE_OVERLAP,
    no_shared_context: bool = False,
    strength: float = FULL_STRENGTH,
    max_memory: str | None = None,
    force: bool = False,
    passes: str = "1",
) -> RestoreOptions:
    """The tiling, strength, memory, do-no-harm and passes options as the engine's."""
    return RestoreOptions(
        tile,
        tile_overlap,
        shared_context=not no_shared_context,
        strength=strength,
        max_memory=parse_size(max_memory),
        force=force,
        passes=parse_passes(passes),
    )
