"""TIFF: the size, samples and colour model of the first directory (IFD0, the page OpenCV
decodes), in classic TIFF and BigTIFF. Pillow cannot parse some TIFFs libtiff decodes (12-bit
or 32-bit RGB), so measr reads these few tags itself."""

from __future__ import annotations

import struct
from typing import NamedTuple

from measr.io.headers.base import (
    ByteSource,
    Header,
    RefusedImageError,
    still_header,
    unsupported_samples,
)

_BYTE_ORDERS = {b"II": "<", b"MM": ">"}


class _Layout(NamedTuple):
    """How a TIFF variant lays out its directory."""

    first_directory: str  # struct format of the offset of IFD0 (after byte order and magic)
    entry_count: str  # struct format of a directory's entry count
    entry: str  # struct format of an entry: tag, type, count, then the value field
    value_bytes: int  # values that fit in this many bytes sit in the entry itself


_LAYOUTS = {
    42: _Layout("4xI", "H", "HHI4s", 4),  # classic TIFF
    43: _Layout("4xHHQ", "Q", "HHQ8s", 8),  # BigTIFF: offset size 8, reserved 0, then IFD0
}
_BIG_TIFF_OFFSET_BYTES = 8
# Unsigned integer types and their struct formats: BYTE, SHORT, LONG, LONG8.
_INTEGER_TYPES = {1: "B", 3: "H", 4: "I", 16: "Q"}
_WIDTH, _HEIGHT, _BITS, _PHOTOMETRIC, _SAMPLES, _SAMPLE_FORMAT = 256, 257, 258, 262, 277, 339
_TAGS_READ = frozenset({_WIDTH, _HEIGHT, _BITS, _PHOTOMETRIC, _SAMPLES, _SAMPLE_FORMAT})
_MAX_VALUES = 16  # per tag: bits per sample has one value per sample
# Entries read from IFD0: real files have a few dozen, sorted by tag, so the tags measr needs
# (all below 340) come first.
_MAX_ENTRIES = 4096
_IEEE_FLOAT = 3  # SampleFormat
_GRAY, _RGB, _PALETTE, _CMYK = (0, 1), 2, 3, 5  # PhotometricInterpretation


def read_tiff(source: ByteSource) -> Header | None:
    """The Header of IFD0 of the TIFF in `source`, None when it cannot be read; raises
    RefusedImageError for samples measr does not read (floating-point, more than 16 bits) and
    for CMYK of other than 8 bits, which OpenCV cannot decode."""
    tags = _first_directory(source)
    if tags is None or _WIDTH not in tags or _HEIGHT not in tags:
        return None
    samples = tags.get(_SAMPLES, (1,))[0]
    bits = max(tags.get(_BITS, (1,)))
    photometric = tags.get(_PHOTOMETRIC, (_RGB,))[0]
    floating = _IEEE_FLOAT in tags.get(_SAMPLE_FORMAT, ())
    if floating or bits > 16:
        raise unsupported_samples(bits, floating)
    if photometric == _CMYK and bits != 8:
        raise RefusedImageError(
            f"it is a {bits}-bit CMYK TIFF, which measr cannot decode",
            "convert it to RGB (or to 8-bit CMYK) first",
        )
    return still_header(
        "tiff", tags[_WIDTH][0], tags[_HEIGHT][0], _mode(photometric, samples, bits)
    )


def _mode(photometric: int, samples: int, bits: int) -> str:
    """Pillow's name for the colour model."""
    if photometric in _GRAY:
        return "LA" if samples >= 2 else ("I;16" if bits == 16 else "L")
    if photometric == _PALETTE:
        return "P"
    if photometric == _CMYK:
        return "CMYK"
    return "RGBA" if samples >= 4 else "RGB"


def _first_directory(source: ByteSource) -> dict[int, tuple[int, ...]] | None:
    """The integer values of the tags measr reads from IFD0, None when the file is not a TIFF
    or its directory lies outside the file."""
    order = _BYTE_ORDERS.get(source.read(0, 2))
    magic = source.unpack(struct.Struct(f"{order}H"), 2) if order else None
    layout = _LAYOUTS.get(magic[0]) if magic else None
    if order is None or layout is None:
        return None
    start = source.unpack(struct.Struct(order + layout.first_directory), 0)
    if start is None or (len(start) == 3 and start[:2] != (_BIG_TIFF_OFFSET_BYTES, 0)):
        return None
    count_format = struct.Struct(order + layout.entry_count)
    count = source.unpack(count_format, start[-1])
    if count is None:
        return None
    entry = struct.Struct(order + layout.entry)
    first = start[-1] + count_format.size
    entries = source.read(first, min(count[0], _MAX_ENTRIES) * entry.size)
    tags: dict[int, tuple[int, ...]] = {}
    for tag, kind, values, field in entry.iter_unpack(
        entries[: len(entries) // entry.size * entry.size]
    ):
        if tag in _TAGS_READ and kind in _INTEGER_TYPES and 0 < values <= _MAX_VALUES:
            read = _values(source, order, layout, _INTEGER_TYPES[kind] * values, field)
            if read is None:
                return None
            tags[tag] = read
    return tags


def _values(
    source: ByteSource, order: str, layout: _Layout, formats: str, field: bytes
) -> tuple[int, ...] | None:
    """An entry's values: in its value field when they fit, else at the offset it holds."""
    values = struct.Struct(order + formats)
    if values.size <= layout.value_bytes:
        return values.unpack_from(field)
    (offset,) = struct.unpack_from(order + ("Q" if layout.value_bytes == 8 else "I"), field)
    return source.unpack(values, offset)
