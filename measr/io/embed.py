"""Putting a photo's metadata (measr.io.metadata) back into the file OpenCV encoded, without
touching the encoded pixels: segments for JPEG, chunks for PNG.

JPEG takes EXIF (APP1), the ICC profile (APP2, split into numbered segments) and the density
of its JFIF header; PNG takes iCCP, eXIf, pHYs and text chunks; WebP takes ICCP and EXIF
chunks (in its extended, VP8X, layout); TIFF takes the profile as its ICC tag, and its
resolution through OpenCV's own parameters (measr.io.write). TIFF EXIF, TIFF and WebP text, and
BMP metadata are not written yet."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

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
_RIFF_HEAD = struct.Struct("<4sI4s")  # "RIFF", size of what follows, "WEBP"
_RIFF_CHUNK = struct.Struct("<4sI")  # fourcc, payload size (payloads are padded to even)
# VP8X flags (WebP container specification): ICC profile, alpha, EXIF.
_WEBP_ICC, _WEBP_ALPHA, _WEBP_EXIF = 0x20, 0x10, 0x08
_TIFF_ICC_TAG = 34675  # InterColorProfile (TIFF/EP, ICC.1 annex B.4)
_TIFF_UNDEFINED = 7  # the field type of opaque bytes
_TIFF_ENTRY = 12
_TIFF_ORDERS = {b"II*\x00": "<", b"MM\x00*": ">"}


@dataclass(frozen=True)
class Stored:
    """What the encoded file holds: its size, its colour channels (1 or 3, so that a profile
    for other channels is left out) and whether it has alpha."""

    width: int
    height: int
    channels: int
    alpha: bool


def embed_metadata(data: bytes, format_name: str, metadata: Metadata, stored: Stored) -> bytes:
    """Encoded image bytes with `metadata` added where the format has a place for it."""
    if format_name == "jpeg":
        return _jpeg_with(data, metadata, stored.channels)
    if format_name == "png":
        return _png_with(data, metadata, stored.channels)
    if format_name == "webp":
        return _webp_with(data, metadata, stored)
    if format_name == "tiff":
        return _tiff_with(data, metadata.profile_for(stored.channels))
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


def _webp_with(data: bytes, metadata: Metadata, stored: Stored) -> bytes:
    """WebP bytes in the extended layout (VP8X first, then ICCP, the image, EXIF) when there is
    a profile or EXIF to carry; the image chunks are kept as OpenCV wrote them."""
    profile = metadata.profile_for(stored.channels)
    if (profile is None and metadata.exif is None) or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return data
    chunks = _riff_chunks(data[_RIFF_HEAD.size :])
    flags = _WEBP_ALPHA if stored.alpha else 0
    if chunks and chunks[0][0] == b"VP8X":
        flags = chunks[0][1][0]
        chunks = chunks[1:]
    flags |= (_WEBP_ICC if profile else 0) | (_WEBP_EXIF if metadata.exif else 0)
    canvas = (stored.width - 1).to_bytes(3, "little") + (stored.height - 1).to_bytes(3, "little")
    parts = [_riff_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + canvas)]
    if profile is not None:
        parts.append(_riff_chunk(b"ICCP", profile))
    parts += [_riff_chunk(kind, payload) for kind, payload in chunks]
    if metadata.exif is not None:
        parts.append(_riff_chunk(b"EXIF", metadata.exif))
    body = b"".join(parts)
    return _RIFF_HEAD.pack(b"RIFF", len(body) + 4, b"WEBP") + body


def _riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(fourcc, payload) of each chunk of a RIFF body (as OpenCV wrote it: well formed)."""
    chunks, position = [], 0
    while position + _RIFF_CHUNK.size <= len(data):
        kind, size = _RIFF_CHUNK.unpack_from(data, position)
        start = position + _RIFF_CHUNK.size
        chunks.append((kind, data[start : start + size]))
        position = start + size + (size & 1)
    return chunks


def _riff_chunk(kind: bytes, payload: bytes) -> bytes:
    """One RIFF chunk, padded to an even length."""
    return _RIFF_CHUNK.pack(kind, len(payload)) + payload + bytes(len(payload) & 1)


def _tiff_with(data: bytes, profile: bytes | None) -> bytes:
    """TIFF bytes whose first directory also lists the ICC profile. The directory is rewritten
    at the end of the file with the new entry in tag order, and the header points to it; every
    other value stays where OpenCV put it, so its offsets hold."""
    order = _TIFF_ORDERS.get(data[:4])
    if profile is None or order is None:
        return data
    (directory,) = struct.unpack_from(f"{order}I", data, 4)
    (count,) = struct.unpack_from(f"{order}H", data, directory)
    end = directory + 2 + count * _TIFF_ENTRY
    entries = [
        data[directory + 2 + i * _TIFF_ENTRY : directory + 2 + (i + 1) * _TIFF_ENTRY]
        for i in range(count)
    ]
    (following,) = struct.unpack_from(f"{order}I", data, end)
    body = data + bytes(len(data) & 1)  # TIFF values and directories start on even offsets
    profile_at = len(body)
    body += profile + bytes(len(profile) & 1)
    icc = struct.pack(f"{order}HHII", _TIFF_ICC_TAG, _TIFF_UNDEFINED, len(profile), profile_at)
    kept = [e for e in entries if struct.unpack_from(f"{order}H", e)[0] != _TIFF_ICC_TAG]
    ordered = sorted([*kept, icc], key=lambda e: struct.unpack_from(f"{order}H", e)[0])
    new_directory = len(body)
    body += struct.pack(f"{order}H", len(ordered)) + b"".join(ordered)
    body += struct.pack(f"{order}I", following)
    return body[:4] + struct.pack(f"{order}I", new_directory) + body[8:]
