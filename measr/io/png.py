"""A minimal PNG encoder for gray + alpha images, which OpenCV cannot encode (2 channels)."""

from __future__ import annotations

import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPE_GRAY_ALPHA = 4
_FILTER_UP = 2  # each byte minus the byte above it: cheap, and helps zlib on photos
_IDAT_CHUNK_BYTES = 1 << 20  # PNG chunks are limited to 2**31 - 1 bytes; split the data
_COMPRESSION_LEVEL = 6


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, payload, CRC-32 of type and payload."""
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def encode_gray_alpha_png(gray: np.ndarray, alpha: np.ndarray) -> bytes:
    """PNG bytes (colour type 4) for (H, W) gray and alpha samples, both uint8 or both uint16."""
    if gray.shape != alpha.shape or gray.dtype != alpha.dtype or gray.ndim != 2:
        raise ValueError("gray and alpha must be 2-D arrays of the same shape and dtype")
    if gray.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8 or uint16 samples, got {gray.dtype}")
    height, width = gray.shape
    bit_depth = gray.dtype.itemsize * 8
    # PNG stores samples big-endian, gray and alpha interleaved per pixel.
    pairs = np.stack([gray, alpha], axis=-1).astype(f">u{gray.dtype.itemsize}")
    rows = pairs.reshape(height, -1).view(np.uint8)
    filtered = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = _FILTER_UP
    filtered[:, 1:] = rows
    filtered[1:, 1:] -= rows[:-1]  # uint8 arithmetic wraps modulo 256, as the filter requires
    compressed = zlib.compress(filtered.tobytes(), _COMPRESSION_LEVEL)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, _COLOR_TYPE_GRAY_ALPHA, 0, 0, 0)
    parts = [_SIGNATURE, png_chunk(b"IHDR", header)]
    for start in range(0, len(compressed), _IDAT_CHUNK_BYTES):
        parts.append(png_chunk(b"IDAT", compressed[start : start + _IDAT_CHUNK_BYTES]))
    parts.append(png_chunk(b"IEND", b""))
    return b"".join(parts)
