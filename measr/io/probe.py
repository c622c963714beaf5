"""Reading an image file's header (size, mode, frames, orientation) without decoding pixels."""

from __future__ import annotations

import struct
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image as PILImage

from measr.io.orientation import EXIF_ORIENTATION_TAG

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_GRAY_COLOR_TYPES = (0, 4)  # gray, gray + alpha (IHDR colour type)
# Animation formats: their extra frames are a sequence, not a variant of the first picture.
# (Multi-page TIFFs and MPO camera JPEGs, whose extra frames are pages or previews, read their
# first image instead.)
_ANIMATION_FORMATS = frozenset({"GIF", "PNG", "WEBP"})
# Pillow names some containers differently from the format a user would call them.
_FORMAT_NAMES = {"MPO": "jpeg"}

# Pillow's own decompression-bomb guard is a process-wide setting that is lower than measr's
# pixel limit; it is switched off only while a header is parsed, one thread at a time.
_PILLOW_LIMIT_LOCK = threading.Lock()


@dataclass(frozen=True)
class Header:
    """What the header of an image file says, as far as Pillow can tell."""

    format: str  # lower-case container name: "png", "jpeg", "tiff", ...
    width: int
    height: int
    mode: str  # Pillow's mode: "L", "RGB", "RGBA", "LA", "P", "CMYK", "I;16", ...
    frames: int
    animated: bool
    orientation: int | None  # EXIF orientation 1..8 when the file has one
    gray: bool  # the file stores one gray channel (possibly plus alpha)

    @property
    def is_cmyk(self) -> bool:
        """CMYK files, whose fourth decoded channel is not transparency."""
        return self.mode == "CMYK"


@contextmanager
def _pillow_size_limit_off() -> Iterator[None]:
    """Disable Pillow's bomb check for the duration; measr checks the size itself."""
    with _PILLOW_LIMIT_LOCK:
        saved = PILImage.MAX_IMAGE_PIXELS
        PILImage.MAX_IMAGE_PIXELS = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        finally:
            PILImage.MAX_IMAGE_PIXELS = saved


def read_header(stream: BinaryIO) -> Header | None:
    """The header of the image in stream, or None when Pillow does not recognise it."""
    try:
        with _pillow_size_limit_off(), PILImage.open(stream) as im:
            return _header_of(im, stream)
    except Exception:
        # Pillow is only a header probe here: any failure on hostile bytes (and it raises many
        # kinds) just means "unknown", and OpenCV's decoder gets the final say.
        return None


def _header_of(im: PILImage.Image, stream: BinaryIO) -> Header:
    """Collect the fields of Header from an opened, not yet decoded, Pillow image."""
    width, height = im.size
    pil_format = im.format or ""
    animated = pil_format in _ANIMATION_FORMATS and bool(getattr(im, "is_animated", False))
    frames = int(getattr(im, "n_frames", 1)) if animated else 1
    return Header(
        format=_FORMAT_NAMES.get(pil_format, pil_format.lower()),
        width=int(width),
        height=int(height),
        mode=im.mode,
        frames=frames,
        animated=animated,
        orientation=_exif_orientation(im),
        gray=_is_gray(im, stream),
    )


def _exif_orientation(im: PILImage.Image) -> int | None:
    """The EXIF orientation tag if the header already holds EXIF data, else None."""
    # getexif() on a PNG without EXIF before the pixels would decode the whole image to look
    # further; EXIF found in the header is enough (cameras put it there).
    if "exif" not in im.info:
        return None
    value = im.getexif().get(EXIF_ORIENTATION_TAG)
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _is_gray(im: PILImage.Image, stream: BinaryIO) -> bool:
    """Whether the file stores gray samples (Pillow widens 16-bit gray+alpha PNGs to RGBA)."""
    if im.format == "PNG":
        color_type = _png_color_type(stream)
        if color_type is not None:
            return color_type in _PNG_GRAY_COLOR_TYPES
    return PILImage.getmodebase(im.mode) == "L"


def _png_color_type(stream: BinaryIO) -> int | None:
    """The colour type byte of a PNG's IHDR chunk, which always comes first."""
    stream.seek(0)
    head = stream.read(26)
    if len(head) < 26 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return int(struct.unpack_from(">B", head, 25)[0])
