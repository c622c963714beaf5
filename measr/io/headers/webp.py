"""WebP: the size from the first chunk (lossy VP8, lossless VP8L, or the extended VP8X
canvas), and for an animation the number of its frames (ANMF chunks)."""

from __future__ import annotations

import struct

from measr.io.headers.base import ByteSource, Header

_RIFF = struct.Struct("<4sI4s")  # "RIFF", size, "WEBP"
_CHUNK = struct.Struct("<4sI")  # FourCC, payload size
_FIRST_CHUNK = _RIFF.size
_VP8_START = b"\x9d\x01\x2a"  # after the 3-byte frame tag of a key frame
_VP8_SIZE = struct.Struct("<3x3sHH")
_VP8L_SIGNATURE = 0x2F
_VP8L_SIZE = struct.Struct("<BI")
_VP8X = struct.Struct("<B3x3s3s")  # flags, reserved, canvas width - 1, canvas height - 1
_FOURTEEN_BITS = 0x3FFF
_ANIMATION, _ALPHA = 0x02, 0x10  # VP8X flags
_VP8L_ALPHA = 1 << 28
_MAX_CHUNKS = 1 << 16  # chunks counted for an animation's frames


def read_webp(source: ByteSource) -> Header | None:
    """The Header of the WebP in `source`, None when its first chunk is damaged or cut."""
    riff = source.unpack(_RIFF, 0)
    chunk = source.unpack(_CHUNK, _FIRST_CHUNK)
    if riff is None or chunk is None or riff[0] != b"RIFF" or riff[2] != b"WEBP":
        return None
    payload = _FIRST_CHUNK + _CHUNK.size
    size = _first_chunk_size(source, chunk[0], payload)
    if size is None:
        return None
    width, height, alpha, animated = size
    frames = _frame_count(source) if animated else 1
    return Header(
        format="webp",
        width=width,
        height=height,
        mode="RGBA" if alpha else "RGB",
        frames=frames,
        animated=frames > 1,
        orientation=None,
        gray=False,
    )


def _first_chunk_size(
    source: ByteSource, kind: bytes, payload: int
) -> tuple[int, int, bool, bool] | None:
    """Width, height, alpha and animation flags from the first chunk."""
    if kind == b"VP8 ":
        fields = source.unpack(_VP8_SIZE, payload)
        if fields is None or fields[0] != _VP8_START:
            return None
        return fields[1] & _FOURTEEN_BITS, fields[2] & _FOURTEEN_BITS, False, False
    if kind == b"VP8L":
        fields = source.unpack(_VP8L_SIZE, payload)
        if fields is None or fields[0] != _VP8L_SIGNATURE:
            return None
        bits = fields[1]
        width, height = (bits & _FOURTEEN_BITS) + 1, ((bits >> 14) & _FOURTEEN_BITS) + 1
        return width, height, bool(bits & _VP8L_ALPHA), False
    if kind == b"VP8X":
        fields = source.unpack(_VP8X, payload)
        if fields is None:
            return None
        flags, width, height = fields
        return (
            int.from_bytes(width, "little") + 1,
            int.from_bytes(height, "little") + 1,
            bool(flags & _ALPHA),
            bool(flags & _ANIMATION),
        )
    return None


def _frame_count(source: ByteSource) -> int:
    """The ANMF chunks of an animated WebP (each is one frame)."""
    frames, offset = 0, _FIRST_CHUNK
    for _ in range(_MAX_CHUNKS):
        chunk = source.unpack(_CHUNK, offset)
        if chunk is None:
            break
        kind, size = chunk
        frames += kind == b"ANMF"
        offset += _CHUNK.size + size + (size & 1)  # payloads are padded to an even size
    return frames
