"""Reading an image file's header (size, mode, frames, orientation) without decoding pixels:
measr's own reading (the first fence, measr/io/headers) and Pillow's (which knows more metadata)."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image as PILImage

from measr.io.headers import Header, read_own_header
from measr.io.headers.png import GRAY_COLOR_TYPES
from measr.io.metadata import metadata_of
from measr.io.orientation import EXIF_ORIENTATION_TAG
from measr.io.png_chunks import read_ihdr

# Animation formats: their extra frames are a sequence, not a variant of the first picture.
# (Multi-page TIFFs and MPO camera JPEGs, whose extra frames are pages or previews, read their
# first image instead.)
_ANIMATION_FORMATS = frozenset({"AVIF", "GIF", "PNG", "WEBP"})
# Pillow names some containers differently from the format a user would call them.
_FORMAT_NAMES = {"MPO": "jpeg"}

# Pillow's own decompression-bomb guard is a process-wide setting that is lower than measr's
# pixel limit; it is switched off only while a header is parsed, one thread at a time.
_PILLOW_LIMIT_LOCK = threading.Lock()


@dataclass(frozen=True)
class Headers:
    """What measr's own reader and Pillow each make of an image file's header."""

    own: Header | None  # None: in no format OpenCV decodes, or damaged; never to be decoded
    pillow: Header | None  # None where Pillow cannot parse it

    @property
    def described(self) -> Header | None:
        """Pillow's reading, which carries more metadata, else measr's own."""
        return self.pillow or self.own


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


def read_headers(stream: BinaryIO) -> Headers:
    """The header of the image in stream as measr reads it (see measr/io/headers) and as Pillow
    does; raises RefusedImageError when it alone shows that measr cannot read the file."""
    own = read_own_header(stream)
    stream.seek(0)
    return Headers(own, _pillow_header(stream))


def _pillow_header(stream: BinaryIO) -> Header | None:
    """Pillow's reading of the header, or None when it cannot parse it."""
    try:
        with _pillow_size_limit_off(), PILImage.open(stream) as im:
            return _header_of(im, stream)
    except Exception:
        # Pillow raises many kinds of errors on hostile bytes, some on files OpenCV decodes (a
        # PNG text chunk past Pillow's text limit, a 5-byte Adobe segment in a JPEG): measr's
        # own reading then describes the file.
        return None


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
            return ihdr.color_type in GRAY_COLOR_TYPES
    return PILImage.getmodebase(im.mode) == "L"
