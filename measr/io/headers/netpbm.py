"""Netpbm: PBM, PGM and PPM (P1-P6) and PAM (P7), whose text headers give the size and the
largest sample value (maxval), which the decoder does not scale by."""

from __future__ import annotations

import re

from measr.io.headers.base import ByteSource, Header, still_header

# Headers are a few dozen bytes; comments may make them longer, not this long.
_HEADER_BYTES = 1 << 16
_TOKEN = re.compile(rb"#[^\r\n]*|[^\s#]+")  # a comment to the end of its line, or a field
_BITMAPS = (b"1", b"4")  # PBM: no maxval, one bit a pixel
_GRAYS = (b"2", b"5")
_FULL_RANGES = (255, 65535)
_MAX_MAXVAL = 65535
_PAM_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def read_netpbm(source: ByteSource) -> Header | None:
    """The Header of the Netpbm image in `source` (max_sample set when maxval is neither 255
    nor 65535), None when its header is damaged or cut."""
    head = source.read(0, _HEADER_BYTES)
    kind = head[1:2]
    fields = _pam_fields(head) if kind == b"7" else _fields(head, 2 if kind in _BITMAPS else 3)
    if fields is None:
        return None
    width, height, maxval, depth = fields
    if not 0 < maxval <= _MAX_MAXVAL:
        return None
    if kind in _BITMAPS:
        mode = "1"
    elif kind == b"7":
        mode = _PAM_MODES.get(depth, "RGB")
    elif kind in _GRAYS:
        mode = "L" if maxval <= 255 else "I;16"
    else:
        mode = "RGB"
    max_sample = None if maxval in _FULL_RANGES or kind in _BITMAPS else maxval
    return still_header("ppm", width, height, mode, max_sample=max_sample)


def _fields(head: bytes, count: int) -> tuple[int, int, int, int] | None:
    """Width, height and maxval (1 for bitmaps) of a P1-P6 header, and a depth of 0."""
    numbers: list[int] = []
    for token in _TOKEN.finditer(head, 2):
        text = token.group()
        if text.startswith(b"#"):
            continue
        if not text.isdigit():
            return None
        numbers.append(int(text))
        if len(numbers) == count:
            width, height, *maxval = numbers
            return width, height, maxval[0] if maxval else 1, 0
    return None


def _pam_fields(head: bytes) -> tuple[int, int, int, int] | None:
    """Width, height, maxval and depth of a PAM header (lines of "NAME value" up to ENDHDR)."""
    values: dict[bytes, int] = {}
    for line in head[2:].splitlines():
        words = line.split(b"#", 1)[0].split()
        if words == [b"ENDHDR"]:
            break
        if len(words) == 2 and words[1].isdigit():
            values[words[0]] = int(words[1])
    else:
        return None
    names = (b"WIDTH", b"HEIGHT", b"MAXVAL", b"DEPTH")
    if not all(name in values for name in names):
        return None
    width, height, maxval, depth = (values[name] for name in names)
    return width, height, maxval, depth
