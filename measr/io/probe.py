"""Reading an image file's header (size, mode, frames, orientation) without decoding pixels."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image as PILImage

from measr.io.metadata import NO_METADATA, Metadata, metadata_of
from measr.io.orientation import EXIF_ORIENTATION_TAG
from measr.io.png_chunks import read_ihdr, read_png_facts

_PNG_GRAY_COLOR_TYPES = (0, 4)  # gray, gray + alpha (IHDR colour type)
# Pillow's mode for each PNG colour type, for headers measr reads itself (16-bit gray: "I;16").
_PNG_MODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}
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
    metadata: Metadata = NO_METADATA  # ICC profile, EXIF, text, DPI, as kept for the output

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
    """The header of the image in stream, or None when neither Pillow nor, for a PNG, measr's
    own chunk reader can make sense of it."""
    try:
        with _pillow_size_limit_off(), PILImage.open(stream) as im:
            return _header_of(im, stream)
    except Exception:
        # Pillow raises many kinds of errors on hostile bytes, some on files OpenCV decodes (a
        # PNG text chunk past Pillow's text limit): "unreadable" must not mean "no limits", so
        # a PNG's own chunks are read instead. Other formats get OpenCV's final say.
        return _png_header(stream)


def _png_header(stream: BinaryIO) -> Header | None:
    """The Header of a PNG from measr's guarded chunk reader (None when it is not a PNG)."""
    facts = read_png_facts(stream)
    if facts is None:
        return None
    ihdr = facts.ihdr
    sixteen_bit_gray = ihdr.color_type == 0 and ihdr.bit_depth == 16
    return Header(
        format="png",
        width=ihdr.width,
        height=ihdr.height,
        mode="I;16" if sixteen_bit_gray else _PNG_MODES.get(ihdr.color_type, "RGB"),
        frames=facts.frames,
        animated=facts.frames > 1,
        orientation=facts.orientation,
        gray=ihdr.color_type in _PNG_GRAY_COLOR_TYPES,
    )


def _header_of(im: PILImage.Image, stream: BinaryIO) -> Header:
    """Collect the fields of Header from an opened, not yet decoded, Pillow image."""
    width, height = im.size
    pil_format = im.format or ""
    animated = pil_format in _ANIMATION_FORMATS and bool(getattr(im, "is_animated", False))
    frames = int(getattr(im, "n_frames", 1)) if animated else 1
    orientation = _exif_orientation(im)
    return Header(
        format=_FORMAT_NAMES.get(pil_format, pil_format.lower()),
        width=int(width),
        height=int(height),
        mode=im.mode,
        frames=frames,
        animated=animated,
        orientation=orientation,
        gray=_is_gray(im, stream),
        metadata=metadata_of(im.info, pil_format, orientation),
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
        ihdr = read_ihdr(stream)
        if ihdr is not None:
            return ihdr.color_type in _PNG_GRAY_COLOR_TYPES
    return PILImage.getmodebase(im.mode) == "L"
