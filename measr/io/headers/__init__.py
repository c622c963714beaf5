"""measr's own readers of image headers, one per format OpenCV decodes: the first fence before
any decoding. The size, and whatever else decides that measr cannot read a file, comes from the
file's own bytes, whatever Pillow makes of its header; a file no reader here understands is
never handed to the decoder.

    sniff(head) -> the format OpenCV would decode a file starting with `head` as, or None
    read_own_header(stream) -> Header | None (None: no such format, or a damaged header);
        raises RefusedImageError when the header alone shows measr cannot read the file
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

from measr.io.headers.avif import is_avif, read_avif
from measr.io.headers.base import (
    ByteSource,
    Header,
    RefusedImageError,
    unsupported_samples,
)
from measr.io.headers.bmp import read_bmp
from measr.io.headers.gif import read_gif
from measr.io.headers.jpeg import read_jpeg
from measr.io.headers.jpeg2000 import CODESTREAM_SIGNATURE, JP2_SIGNATURE, read_jpeg2000
from measr.io.headers.netpbm import read_netpbm
from measr.io.headers.png import read_png
from measr.io.headers.sunraster import SIGNATURE as SUN_RASTER_SIGNATURE
from measr.io.headers.sunraster import read_sun_raster
from measr.io.headers.tiff import read_tiff
from measr.io.headers.webp import read_webp
from measr.io.png_chunks import PNG_SIGNATURE

__all__ = [
    "DECODED_FORMATS",
    "HEAD_BYTES",
    "Header",
    "RefusedImageError",
    "read_own_header",
    "sniff",
    "unsupported_samples",
]

HEAD_BYTES = 64  # enough for every signature below and the first AVIF brands
# Magic bytes, as OpenCV's decoders check them, and the format each starts.
_SIGNATURES = (
    (PNG_SIGNATURE, "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (JP2_SIGNATURE, "jpeg2000"),
    (CODESTREAM_SIGNATURE, "jpeg2000"),
    (SUN_RASTER_SIGNATURE, "sun"),
    (b"#?RADIANCE", "hdr"),
    (b"#?RGBE", "hdr"),
    (b"v/1\x01", "exr"),
    (b"BM", "bmp"),
)
_NETPBM_KINDS = b"1234567"  # P1-P6 (PBM, PGM, PPM), P7 (PAM)
_PFM_KINDS = b"Ff"  # PF colour, Pf gray: floating-point samples


def _floating_point(source: ByteSource) -> Header | None:
    """Radiance HDR, PFM and OpenEXR hold floating-point samples only: refused, any size."""
    raise unsupported_samples(32, floating=True)


_READERS: dict[str, Callable[[ByteSource], Header | None]] = {
    "png": read_png,
    "jpeg": read_jpeg,
    "tiff": read_tiff,
    "webp": read_webp,
    "bmp": read_bmp,
    "gif": read_gif,
    "jpeg2000": read_jpeg2000,
    "avif": read_avif,
    "ppm": read_netpbm,
    "sun": read_sun_raster,
    "hdr": _floating_point,
    "pfm": _floating_point,
    "exr": _floating_point,
}

# The formats measr reads (those of _READERS that are not refused whatever their size).
DECODED_FORMATS = frozenset(_READERS) - {"hdr", "pfm", "exr"}


def sniff(head: bytes) -> str | None:
    """The format OpenCV would decode a file starting with `head` as (its first HEAD_BYTES
    bytes), by the signatures its decoders check; None for any other file."""
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if is_avif(head):
        return "avif"
    if len(head) >= 3 and head[:1] == b"P" and head[2:3].isspace():
        if head[1] in _NETPBM_KINDS:
            return "ppm"
        if head[1] in _PFM_KINDS:
            return "pfm"
    return None


def read_own_header(stream: BinaryIO) -> Header | None:
    """The Header measr reads itself from the image file open in `stream`; None when the file
    is in no format OpenCV decodes, or its header is damaged or cut."""
    source = ByteSource(stream)
    name = sniff(source.read(0, HEAD_BYTES))
    return None if name is None else _READERS[name](source)
