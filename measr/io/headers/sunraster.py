"""Sun raster: the size from its 32-byte big-endian header."""

from __future__ import annotations

import struct

from measr.io.headers.base import ByteSource, Header, still_header

SIGNATURE = b"\x59\xa6\x6a\x95"
_HEADER = struct.Struct(">4sIII")  # signature, width, height, bits per pixel
_COLOUR_BITS = 24


def read_sun_raster(source: ByteSource) -> Header | None:
    """The Header of the Sun raster image in `source`, None when its header is cut."""
    fields = source.unpack(_HEADER, 0)
    if fields is None or fields[0] != SIGNATURE:
        return None
    _, width, height, bits = fields
    return still_header("sun", width, height, "RGB" if bits >= _COLOUR_BITS else "P")
