"""The box structure of ISO base media files (AVIF) and JPEG 2000 (JP2): a length, a type,
and a payload that may hold more boxes."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

from measr.io.headers.base import ByteSource

_HEAD = struct.Struct(">I4s")  # size (header included), type
_LARGE_SIZE = struct.Struct(">Q")  # follows the head when its size field is 1
_TO_THE_END = 0  # a size of 0: the box runs to the end of its parent
FULL_BOX_BYTES = 4  # version and flags, before a "full box"'s own fields
# Boxes walked at one level: real files have a handful; a file of millions of tiny boxes would
# only cost time.
_MAX_BOXES = 4096


class Box(NamedTuple):
    """A box's type and where its payload starts and ends."""

    kind: bytes
    start: int
    end: int


def boxes(source: ByteSource, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """The boxes between `start` and `end` (the end of the file by default), in order; the walk
    ends at the first box that does not fit."""
    end = source.size if end is None else end
    offset = start
    for _ in range(_MAX_BOXES):
        head = source.unpack(_HEAD, offset)
        if head is None or offset + _HEAD.size > end:
            return
        size, kind = head
        payload = offset + _HEAD.size
        if size == 1:
            large = source.unpack(_LARGE_SIZE, payload)
            if large is None:
                return
            size, payload = large[0], payload + _LARGE_SIZE.size
        elif size == _TO_THE_END:
            size = end - offset
        if offset + size < payload or offset + size > end:
            return
        yield Box(kind, payload, offset + size)
        offset += size


def child(source: ByteSource, parent: Box, kind: bytes, skip: int = 0) -> Box | None:
    """The first box of `kind` in `parent`'s payload, after `skip` bytes of its own fields."""
    return next(
        (box for box in boxes(source, parent.start + skip, parent.end) if box.kind == kind), None
    )


def descend(source: ByteSource, parent: Box, *path: bytes) -> Box | None:
    """The box reached by following `path` down from `parent` (full boxes' fields skipped)."""
    box: Box | None = parent
    for kind in path:
        if box is None:
            return None
        box = child(source, box, kind, FULL_BOX_BYTES if box.kind in _FULL_BOXES else 0)
    return box


_FULL_BOXES = frozenset({b"meta"})  # containers that start with version and flags
