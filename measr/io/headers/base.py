"""What every header reader shares: the Header it returns, the refusal it raises, and bounded
random access to an untrusted file's bytes."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from PIL import Image as PILImage

from measr.io.metadata import NO_METADATA, Metadata


@dataclass(frozen=True)
class Header:
    """What the header of an image file says, read without decoding any pixels."""

    format: str  # lower-case container name as Pillow spells it: "png", "jpeg", "tiff", ...
    width: int
    height: int
    mode: str  # Pillow's mode: "L", "RGB", "RGBA", "LA", "P", "CMYK", "I;16", ...
    frames: int
    animated: bool
    orientation: int | None  # EXIF orientation 1..8 when the file has one
    gray: bool  # the file stores one gray channel (possibly plus alpha)
    metadata: Metadata = NO_METADATA  # ICC profile, EXIF, text, DPI, as kept for the output
    # The largest sample value (a PNM file's maxval) when it is neither 255 nor 65535: the
    # decoder returns the stored numbers, which must be scaled to the full 8- or 16-bit range.
    max_sample: int | None = None

    @property
    def is_cmyk(self) -> bool:
        """CMYK files, whose fourth decoded channel is not transparency."""
        return self.mode == "CMYK"


def still_header(
    format_name: str,
    width: int,
    height: int,
    mode: str,
    *,
    orientation: int | None = None,
    metadata: Metadata = NO_METADATA,
    max_sample: int | None = None,
) -> Header:
    """The Header of a file holding one still image."""
    return Header(
        format=format_name,
        width=width,
        height=height,
        mode=mode,
        frames=1,
        animated=False,
        orientation=orientation,
        gray=PILImage.getmodebase(mode) == "L",
        metadata=metadata,
        max_sample=max_sample,
    )


class RefusedImageError(Exception):
    """The header alone shows that measr cannot read the file: `cause` and `hint` become the
    ImageReadError that names it."""

    def __init__(self, cause: str, hint: str) -> None:
        super().__init__(cause)
        self.cause = cause
        self.hint = hint


class ByteSource:
    """Reads at any offset of a file opened for reading, never past its end, so a reader can
    follow the offsets a header gives without trusting them."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream  # for readers that walk the file in order (PNG chunks)
        self.size = stream.seek(0, os.SEEK_END)

    def read(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes from `offset` (fewer at the end of the file, none outside it)."""
        if offset < 0 or size <= 0 or offset >= self.size:
            return b""
        self.stream.seek(offset)
        return self.stream.read(min(size, self.size - offset))

    def unpack(self, layout: struct.Struct, offset: int) -> tuple[Any, ...] | None:
        """The fields of `layout` at `offset`, or None when the file ends before them."""
        data = self.read(offset, layout.size)
        return layout.unpack(data) if len(data) == layout.size else None


def unsupported_samples(bits: int, floating: bool) -> RefusedImageError:
    """The refusal of samples that are neither 8- nor 16-bit integers (from a header, or from
    what the decoder returned)."""
    kind = "floating-point (HDR or scientific data)" if floating else "integer"
    return RefusedImageError(
        f"it stores {bits}-bit {kind} samples; measr reads 8- and 16-bit images",
        "convert it to a 16-bit PNG or TIFF first",
    )
