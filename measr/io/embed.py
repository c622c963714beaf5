"""Putting a photo's metadata (measr.io.metadata) back into the file OpenCV encoded, without
touching the encoded pixels: segments for JPEG, chunks for PNG.

JPEG takes EXIF (APP1), the ICC profile (APP2, split into numbered segments) and the density
of its JFIF header; PNG takes iCCP, eXIf, pHYs and text chunks. TIFF's resolution goes through
OpenCV's own parameters (measr.io.write); TIFF profiles and EXIF, and WebP and BMP metadata,
are not written yet."""

from __future__ import annotations

import struct
import zlib

from measr.io.metadata import Metadata
from measr.io.orientation import EXIF_PREFIX
from measr.io.png import png_chunk
from measr.io.png_chunks import PNG_SIGNATURE

_JPEG_SOI = b"\xff\xd8"
_JPEG_APP0, _JPEG_APP1, _JPEG_APP2 = 0xE0, 0xE1, 0xE2
_JPEG_MAX_SEGMENT = 65535 - 2  # a segment's payload: its 16-bit length counts itself
_ICC_MARKER = b"ICC_PROFILE\x00"
# The ICC profile spreads over at most 255 numbered APP2 segments.
_ICC_CHUNK = _JPEG_MAX_SEGMENT - len(_ICC_MARKER) - 2
_MAX_ICC_SEGMENTS = 255
_JFIF = b"JFIF\x00"
_JFIF_UNITS_OFFSET = 7  # in the APP0 payload: "JFIF\0", version (2), units, x, y density
_DOTS_PER_INCH = 1
_PNG_IHDR_END = len(PNG_SIGNATURE) + 8 + 13 + 4  # signature, IHDR head, IHDR data, CRC
_PNG_PROFILE_NAME = b"ICC profile"
_METRES_PER_INCH = 0.0254
_PNG_UNIT_METRE = 1
_PNG_MAX_KEYWORD = 79


def embed_metadata(data: bytes, format_name: str, metadata: Metadata, channels: int) -> bytes:
    """Encoded image bytes with `metadata` added where the format has a place for it;
    `channels` (1 or 3) is what the file stores, so a profile for other channels is left out."""
    if format_name == "jpeg":
        return _jpeg_with(data, metadata, channels)
    if format_name == "png":
        return _png_with(data, metadata, channels)
    return data


def _jpeg_with(data: bytes, metadata: Metadata, channels: int) -> bytes:
    """JPEG bytes with EXIF and ICC segments after the JFIF header, and its density set."""
    if not data.startswith(_JPEG_SOI):
        return data
    position = len(_JPEG_SOI)
    head = data[:position]
    if data[position + 1 : position + 2] == bytes([_JPEG_APP0]):
        (length,) = struct.unpack_from(">H", data, position + 2)
        app0 = data[position : position + 2 + length]
        head += _jfif_with_dpi(app0, metadata.dpi)
        position += 2 + length
    segments = b""
    if metadata.exif is not None:
        segments += _jpeg_segment(_JPEG_APP1, EXIF_PREFIX + metadata.exif)
    profile = metadata.profile_for(channels)
    if profile is not None:
        segments += _icc_segments(profile)
    return head + segments + data[position:]


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    """One marker segment, or nothing when the payload does not fit one (64 KiB)."""
    if len(payload) > _JPEG_MAX_SEGMENT:
        return b""
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _icc_segments(profile: bytes) -> bytes:
    """The profile as numbered APP2 segments (ICC.1, annex B.4); none if it needs over 255."""
    chunks = [profile[i : i + _ICC_CHUNK] for i in range(0, len(profile), _ICC_CHUNK)]
    if len(chunks) > _MAX_ICC_SEGMENTS:
        return b""
    return b"".join(
        _jpeg_segment(_JPEG_APP2, _ICC_MARKER + bytes([number, len(chunks)]) + chunk)
        for number, chunk in enumerate(chunks, start=1)
    )


def _jfif_with_dpi(app0: bytes, dpi: tuple[float, float] | None) -> bytes:
    """The JFIF APP0 segment with its density in dots per inch (unchanged without a DPI)."""
    payload_start = 4
    if dpi is None or app0[payload_start : payload_start + len(_JFIF)] != _JFIF:
        return app0
    patched = bytearray(app0)
    x, y = (max(1, min(65535, round(v))) for v in dpi)
    struct.pack_into(">BHH", patched, payload_start + _JFIF_UNITS_OFFSET, _DOTS_PER_INCH, x, y)
    return bytes(patched)


def _png_with(data: bytes, metadata: Metadata, channels: int) -> bytes:
    """PNG bytes with iCCP, pHYs, eXIf and text chunks right after IHDR (all must precede the
    image data; measr's own chunk reader and Pillow read them there)."""
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return data
    chunks = []
    profile = metadata.profile_for(channels)
    if profile is not None:
        payload = _PNG_PROFILE_NAME + b"\x00\x00" + zlib.compress(profile)
        chunks.append(png_chunk(b"iCCP", payload))
    if metadata.dpi is not None:
        x, y = (round(v / _METRES_PER_INCH) for v in metadata.dpi)
        chunks.append(png_chunk(b"pHYs", struct.pack(">IIB", x, y, _PNG_UNIT_METRE)))
    if metadata.exif is not None:
        chunks.append(png_chunk(b"eXIf", metadata.exif))
    chunks.extend(_text_chunk(key, value) for key, value in metadata.text)
    return data[:_PNG_IHDR_END] + b"".join(chunks) + data[_PNG_IHDR_END:]


def _text_chunk(key: str, value: str) -> bytes:
    """tEXt for Latin-1 text, iTXt (UTF-8) otherwise; nothing for a keyword PNG forbids."""
    try:
        keyword = key.encode("latin-1")
    except UnicodeEncodeError:
        return b""
    if not 1 <= len(keyword) <= _PNG_MAX_KEYWORD or b"\x00" in keyword:
        return b""
    try:
        return png_chunk(b"tEXt", keyword + b"\x00" + value.encode("latin-1"))
    except UnicodeEncodeError:
        # keyword, no compression (flag, method), empty language tag and translated keyword
        header = keyword + b"\x00\x00\x00\x00\x00"
        return png_chunk(b"iTXt", header + value.encode("utf-8"))
