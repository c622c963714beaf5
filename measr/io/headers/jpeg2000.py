"""JPEG 2000: the size from the image and tile size marker (SIZ) of the codestream, bare (J2K)
or in the contiguous codestream box of a JP2 file."""

from __future__ import annotations

import struct

from measr.io.headers.base import ByteSource, Header, still_header
from measr.io.headers.boxes import boxes

CODESTREAM_SIGNATURE = b"\xff\x4f\xff\x51"  # start of codestream, then SIZ
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
# Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz, XTsiz, YTsiz, XTOsiz, YTOsiz, Csiz
_SIZ = struct.Struct(">HHIIIIIIIIH")
_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def read_jpeg2000(source: ByteSource) -> Header | None:
    """The Header of the JPEG 2000 image in `source`, None when its SIZ marker is not found."""
    start = 0
    if source.read(0, len(JP2_SIGNATURE)) == JP2_SIGNATURE:
        codestream = next((box for box in boxes(source) if box.kind == b"jp2c"), None)
        if codestream is None:
            return None
        start = codestream.start
    if source.read(start, len(CODESTREAM_SIGNATURE)) != CODESTREAM_SIGNATURE:
        return None
    siz = source.unpack(_SIZ, start + len(CODESTREAM_SIGNATURE))
    if siz is None:
        return None
    width, height = siz[2] - siz[4], siz[3] - siz[5]  # the image area beyond its offset
    if width <= 0 or height <= 0:
        return None
    return still_header("jpeg2000", width, height, _MODES.get(siz[10], "RGB"))
