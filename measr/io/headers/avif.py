"""AVIF: the size from the image spatial extents ('ispe') of its items, and for an image
sequence (an animation) its frame count and track size."""

from __future__ import annotations

import struct

from measr.io.headers.base import ByteSource, Header
from measr.io.headers.boxes import FULL_BOX_BYTES, Box, boxes, child, descend

_BRANDS = (b"avif", b"avis")
_FTYP_HEAD = 16  # size, "ftyp", major brand, minor version; compatible brands follow
_EXTENT = struct.Struct(">II")  # width, height, after the full box's version and flags
_SAMPLE_COUNT = struct.Struct(">4xI")  # stsz: default sample size, then the count
_TRACK_SIZE = struct.Struct(">II")  # tkhd: 16.16 fixed-point width and height
_TRACK_SIZE_AT = {0: 76, 1: 88}  # tkhd version -> where the size starts in the payload
_SAMPLE_TABLE = (b"mdia", b"minf", b"stbl")


def is_avif(head: bytes) -> bool:
    """Whether the file starting with `head` declares an AVIF brand in its 'ftyp' box."""
    if head[4:8] != b"ftyp" or len(head) < _FTYP_HEAD:
        return False
    size = int.from_bytes(head[:4], "big")
    brands = [head[8:12]] + [head[i : i + 4] for i in range(_FTYP_HEAD, min(size, len(head)), 4)]
    return any(brand in _BRANDS for brand in brands)


def read_avif(source: ByteSource) -> Header | None:
    """The Header of the AVIF in `source` (the largest item, or the sequence's track), None
    when it has neither an item extent nor a track."""
    top = {box.kind: box for box in reversed(list(boxes(source)))}  # the first of each type
    extents = _item_extents(source, top.get(b"meta"))
    track = descend(source, top[b"moov"], b"trak") if b"moov" in top else None
    frames = _sample_count(source, track) if track else 1
    if track and not extents:
        extents = [_track_size(source, track)]
    if not extents:
        return None
    width, height = max(extents, key=lambda size: size[0] * size[1])
    return Header(
        format="avif",
        width=width,
        height=height,
        mode="RGB",
        frames=frames,
        animated=frames > 1,
        orientation=None,
        gray=False,
    )


def _item_extents(source: ByteSource, meta: Box | None) -> list[tuple[int, int]]:
    """(width, height) of every 'ispe' property (the image, its grid, its alpha...)."""
    properties = descend(source, meta, b"iprp", b"ipco") if meta else None
    if properties is None:
        return []
    extents = []
    for box in boxes(source, properties.start, properties.end):
        fields = source.unpack(_EXTENT, box.start + FULL_BOX_BYTES) if box.kind == b"ispe" else None
        if fields is not None:
            extents.append((fields[0], fields[1]))
    return extents


def _sample_count(source: ByteSource, track: Box) -> int:
    """The frames of the first track (2 when its sample table cannot be read: a sequence)."""
    table = descend(source, track, *_SAMPLE_TABLE, b"stsz")
    fields = source.unpack(_SAMPLE_COUNT, table.start + FULL_BOX_BYTES) if table else None
    return fields[0] if fields else 2


def _track_size(source: ByteSource, track: Box) -> tuple[int, int]:
    """The track header's width and height (0 x 0 when unreadable)."""
    header = child(source, track, b"tkhd")
    version = source.read(header.start, 1) if header else b""
    at = _TRACK_SIZE_AT.get(version[0]) if version else None
    fields = source.unpack(_TRACK_SIZE, header.start + at) if header and at else None
    return (fields[0] >> 16, fields[1] >> 16) if fields else (0, 0)
