"""The output formats measr writes, keyed by file extension: one source of truth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class OutputFormat:
    """What one output format can store, as OpenCV encodes it."""

    name: str  # the name used in Image.source_format ("png", "jpeg", ...)
    cv2_extension: str  # the extension cv2.imencode is given to pick the encoder
    max_bit_depth: int  # 16 where the format stores 16-bit samples, else 8
    keeps_alpha: bool
    keeps_gray: bool  # whether a 1-channel image stays 1-channel in the file


_PNG = OutputFormat("png", ".png", 16, keeps_alpha=True, keeps_gray=True)
_JPEG = OutputFormat("jpeg", ".jpg", 8, keeps_alpha=False, keeps_gray=True)
_TIFF = OutputFormat("tiff", ".tif", 16, keeps_alpha=True, keeps_gray=True)
# WebP has no grayscale mode: gray is stored as three equal channels.
_WEBP = OutputFormat("webp", ".webp", 8, keeps_alpha=True, keeps_gray=False)
_BMP = OutputFormat("bmp", ".bmp", 8, keeps_alpha=True, keeps_gray=True)

OUTPUT_FORMATS: dict[str, OutputFormat] = {
    ".png": _PNG,
    ".jpg": _JPEG,
    ".jpeg": _JPEG,
    ".tif": _TIFF,
    ".tiff": _TIFF,
    ".webp": _WEBP,
    ".bmp": _BMP,
}

# Lower-case extensions (with the dot) that measr reads and writes. Reading goes by content,
# not by extension.
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(sorted(OUTPUT_FORMATS))
# What the batch command looks for in a folder: also GIF, which measr reads (still images) but
# does not write, so that GIFs are reported (animated, or needing --ext) rather than ignored.
INPUT_EXTENSIONS: tuple[str, ...] = (*SUPPORTED_EXTENSIONS, ".gif")


def format_for_path(path: Path) -> OutputFormat | None:
    """The output format a file name asks for, or None for an unsupported extension."""
    return OUTPUT_FORMATS.get(path.suffix.lower())


def is_supported_path(path: str | Path) -> bool:
    """Whether a file name has one of the SUPPORTED_EXTENSIONS (case-insensitive)."""
    return Path(path).suffix.lower() in OUTPUT_FORMATS


def is_input_path(path: str | Path) -> bool:
    """Whether a file name has one of the INPUT_EXTENSIONS (case-insensitive)."""
    return Path(path).suffix.lower() in INPUT_EXTENSIONS
