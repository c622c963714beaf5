"""A guarded reader of the chunks a PNG has before its image data (IHDR, acTL, fcTL, eXIf).

Pillow refuses some PNG headers measr must still check: a text chunk that inflates past its
text limit makes it raise. Without a header there would be no pixel limit, animation or
orientation check before OpenCV decodes, so measr reads these few chunks itself. Other chunks
(text, colour profiles) are skipped unread, however large they are."""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

from measr.io.orientation import orientation_from_exif

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHUNK_HEAD = struct.Struct(">I4s")  # length, type
_IHDR = struct.Struct(">IIBB")  # width, height, bit depth, colour type (then three method bytes)
_IHDR_LENGTH = 13
_ACTL_LENGTH = 8  # frame count, play count
_CRC_BYTES = 4
_MAX_CHUNK_LENGTH = 2**31 - 1  # the PNG specification's limit (also for width and height)
# acTL frame counts above this are invalid (Pillow ignores them too).
_MAX_FRAMES = 2**31
# Chunks walked before the image data: real files have a handful; a walk this long means a file
# built to be slow, and what was found so far (the IHDR above all) is used.
_MAX_CHUNKS = 4096
# eXIf payloads read; cameras write a few KiB (JPEG cannot hold more than 64 KiB of EXIF).
_MAX_EXIF_BYTES = 1 << 20
_CHUNKS_READ = frozenset({b"IHDR", b"acTL", b"eXIf"})
# The bit depths the PNG specification allows for each colour type; libpng refuses the rest.
_BIT_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


class Ihdr(NamedTuple):
    """The fields of a PNG's IHDR chunk that measr uses."""

    width: int
    height: int
    bit_depth: int
    color_type: int  # 0 gray, 2 RGB, 3 palette, 4 gray + alpha, 6 RGBA


@dataclass(frozen=True)
class PngFacts:
    """What a PNG says about itself before its image data."""

    ihdr: Ihdr
    frames: int  # 1 for a still image
    orientation: int | None  # EXIF orientation 1..8 from an eXIf chunk


@dataclass(frozen=True)
class _Chunk:
    """A chunk's type, and its payload when measr read it."""

    kind: bytes
    payload: bytes | None  # None for chunks that were skipped unread


def read_ihdr(stream: BinaryIO) -> Ihdr | None:
    """The IHDR chunk of the PNG in `stream` (it must come first); None when the stream is not
    a PNG or its IHDR is damaged (a size of 0, a bit depth its colour type does not allow)."""
    stream.seek(0)
    if stream.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
        return None
    first = _next_chunk(stream)
    if first is None or first.kind != b"IHDR" or first.payload is None:
        return None
    if len(first.payload) != _IHDR_LENGTH:
        return None
    ihdr = Ihdr(*_IHDR.unpack_from(first.payload))
    if not (0 < ihdr.width <= _MAX_CHUNK_LENGTH and 0 < ihdr.height <= _MAX_CHUNK_LENGTH):
        return None
    if ihdr.bit_depth not in _BIT_DEPTHS.get(ihdr.color_type, ()):
        return None
    return ihdr


def read_png_facts(stream: BinaryIO) -> PngFacts | None:
    """Size, colour type, frame count and orientation of the PNG in `stream`, from its chunks
    up to the first IDAT; None when it is not a PNG or its IHDR is damaged (libpng refuses
    such a file too)."""
    ihdr = read_ihdr(stream)
    if ihdr is None:
        return None
    declared_frames: int | None = None
    frame_before_image = False
    orientation = None
    for _ in range(_MAX_CHUNKS):
        chunk = _next_chunk(stream)
        if chunk is None or chunk.kind in (b"IDAT", b"IEND"):
            break
        if chunk.kind == b"fcTL":
            frame_before_image = True  # the default image is the animation's first frame
        elif chunk.kind == b"acTL" and chunk.payload is not None:
            declared_frames = _frame_count(chunk.payload)
        elif chunk.kind == b"eXIf" and chunk.payload is not None:
            orientation = orientation_from_exif(chunk.payload)
    return PngFacts(ihdr, _frames(declared_frames, frame_before_image), orientation)


def _frame_count(payload: bytes) -> int | None:
    """The frame count of an acTL chunk, None when invalid."""
    if len(payload) != _ACTL_LENGTH:
        return None
    (frames,) = struct.unpack_from(">I", payload)
    return frames if 0 < frames <= _MAX_FRAMES else None


def _frames(declared: int | None, frame_before_image: bool) -> int:
    """Images in the file, counted as Pillow counts them: an APNG whose default image precedes
    its first frame control shows that image besides its declared frames."""
    if declared is None:
        return 1
    return declared if frame_before_image else declared + 1


def _next_chunk(stream: BinaryIO) -> _Chunk | None:
    """The next chunk: read whole (CRC checked) when measr needs its payload, else skipped
    with a seek; None at the end of the data or at a damaged chunk."""
    head = stream.read(_CHUNK_HEAD.size)
    if len(head) < _CHUNK_HEAD.size:
        return None
    length, kind = _CHUNK_HEAD.unpack(head)
    if length > _MAX_CHUNK_LENGTH:
        return None
    wanted = kind in _CHUNKS_READ and (kind != b"eXIf" or length <= _MAX_EXIF_BYTES)
    if not wanted:
        stream.seek(length + _CRC_BYTES, os.SEEK_CUR)
        return _Chunk(kind, None)
    body = stream.read(length + _CRC_BYTES)
    if len(body) < length + _CRC_BYTES:
        return None
    payload, crc = body[:length], body[length:]
    if zlib.crc32(kind + payload) & 0xFFFFFFFF != int.from_bytes(crc, "big"):
        return _Chunk(kind, None)  # libpng ignores a damaged ancillary chunk, and so does measr
    return _Chunk(kind, payload)
