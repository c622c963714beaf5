"""What a photo carries besides its pixels, kept through a restoration: the colour profile (ICC),
EXIF, PNG text chunks and the resolution (DPI).

Read from the header Pillow has already parsed (no second pass over the file), bounded in size
and dropped, never fatal, when damaged: metadata is worth keeping, not worth failing a photo for.
The EXIF orientation tag is reset to 1 once measr has turned the pixels upright, or viewers
would turn them a second time."""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from measr.io.orientation import EXIF_PREFIX, exif_byte_order, orientation_field

# Bounds on what is kept from an untrusted file (Pillow reads more): real profiles are a few
# KiB to a few hundred, camera EXIF a few KiB, text chunks a few lines.
MAX_ICC_BYTES = 4 << 20
MAX_EXIF_BYTES = 1 << 20
MAX_TEXT_BYTES = 1 << 20
_MAX_DPI = 65535  # JPEG's JFIF density is 16 bits; no print resolution comes near it
# Orientations 5-8 swap rows and columns, so the horizontal and vertical resolutions swap too.
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})
# Bytes 16-19 of an ICC profile name the colour space it describes.
_ICC_COLOR_SPACE = slice(16, 20)
_ICC_SPACE_FOR_CHANNELS = {1: b"GRAY", 3: b"RGB "}


@dataclass(frozen=True)
class Metadata:
    """A photo's metadata as measr keeps it; empty fields are absent from the file."""

    icc_profile: bytes | None = None
    exif: bytes | None = None  # a TIFF structure ("II*\0..."), without JPEG's "Exif\0\0"
    text: tuple[tuple[str, str], ...] = ()  # PNG text chunks (keyword, text), in file order
    dpi: tuple[float, float] | None = None  # horizontal, vertical

    def profile_for(self, channels: int) -> bytes | None:
        """The ICC profile when it describes `channels` (1 gray, 3 RGB): a CMYK photo's profile
        must not be written into the RGB file measr makes of it."""
        profile = self.icc_profile
        wanted = _ICC_SPACE_FOR_CHANNELS.get(channels)
        if profile is None or wanted is None or profile[_ICC_COLOR_SPACE] != wanted:
            return None
        return profile


NO_METADATA = Metadata()


def metadata_of(info: Mapping[Any, Any], pil_format: str, orientation: int | None) -> Metadata:
    """The metadata in a Pillow image's `info` (header only: nothing is decoded), as it must be
    written for the upright pixels; anything damaged or oversized is left out."""
    try:
        return Metadata(
            icc_profile=_bounded_bytes(info.get("icc_profile"), MAX_ICC_BYTES),
            exif=_upright_exif(info.get("exif")),
            text=_png_text(info) if pil_format == "PNG" else (),
            dpi=_upright_dpi(info.get("dpi"), orientation),
        )
    except Exception:  # hostile headers can hold anything; the pixels still count
        return NO_METADATA


def _bounded_bytes(value: Any, limit: int) -> bytes | None:
    """`value` when it is non-empty bytes within `limit`, else None."""
    if isinstance(value, bytes) and 0 < len(value) <= limit:
        return value
    return None


def _upright_exif(value: Any) -> bytes | None:
    """EXIF as a bare TIFF structure with its orientation set to 1 (None if unusable)."""
    exif = _bounded_bytes(value, MAX_EXIF_BYTES)
    if exif is None:
        return None
    exif = exif.removeprefix(EXIF_PREFIX)
    return reset_orientation(exif) if exif_byte_order(exif) is not None else None


def reset_orientation(exif: bytes) -> bytes:
    """A copy of EXIF (bare, or with JPEG's "Exif\\0\\0" before it) whose orientation tag says
    1 (upright), if it has one (stored as a SHORT or a LONG); other tags, thumbnails and maker
    notes are untouched."""
    data = exif.removeprefix(EXIF_PREFIX)
    field = orientation_field(data)
    if field is None:
        return exif
    offset, layout = field
    patched = bytearray(data)
    struct.pack_into(layout, patched, offset, 1)
    return exif[: len(exif) - len(data)] + bytes(patched)


def _png_text(info: Mapping[Any, Any]) -> tuple[tuple[str, str], ...]:
    """The text chunks Pillow found before the image data (its `info` holds them as str)."""
    kept: list[tuple[str, str]] = []
    size = 0
    for key, value in info.items():
        if isinstance(key, str) and isinstance(value, str) and key:
            size += len(key) + len(value)
            if size > MAX_TEXT_BYTES:
                break
            kept.append((key, str(value)))
    return tuple(kept)


def _upright_dpi(value: Any, orientation: int | None) -> tuple[float, float] | None:
    """A plausible (x, y) resolution, swapped when the orientation turned the picture."""
    if not isinstance(value, tuple) or len(value) != 2:
        return None
    x, y = (float(v) for v in value)
    if not all(math.isfinite(v) and 1 <= v <= _MAX_DPI for v in (x, y)):
        return None
    return (y, x) if orientation in _TRANSPOSING_ORIENTATIONS else (x, y)
