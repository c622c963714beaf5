"""BMP: the size from the bitmap header after the 14-byte file header."""

from __future__ import annotations

import struct

from measr.io.headers.base import ByteSource, Header, still_header

_FILE_HEADER_BYTES = 14
_HEADER_SIZE = struct.Struct("<I")  # the bitmap header's size says which one it is
_CORE_HEADER = 12  # OS/2 1.x: 16-bit width and height
_CORE = struct.Struct("<HHHH")  # width, height, planes, bits per pixel
# OpenCV reads the signed 32-bit width and height of every longer header (Windows 3.x and
# later, OS/2 2.x); a negative height means rows stored top-down.
_MIN_INFO_HEADER = 36
_INFO = struct.Struct("<iiHH")


def read_bmp(source: ByteSource) -> Header | None:
    """The Header of the BMP in `source`, None when its bitmap header is not one OpenCV reads
    (files that merely start with "BM" are common)."""
    size = source.unpack(_HEADER_SIZE, _FILE_HEADER_BYTES)
    if source.read(0, 2) != b"BM" or size is None:
        return None
    after_size = _FILE_HEADER_BYTES + _HEADER_SIZE.size
    if size[0] == _CORE_HEADER:
        fields = source.unpack(_CORE, after_size)
    elif size[0] >= _MIN_INFO_HEADER:
        fields = source.unpack(_INFO, after_size)
    else:
        return None
    if fields is None:
        return None
    width, height, _, bits = fields
    if width <= 0 or height == 0:
        return None
    return still_header("bmp", width, abs(height), "RGBA" if bits == 32 else "RGB")
