"""The EXIF orientation tag (0x0112): reading it from raw EXIF bytes, and applying it to decoded
pixels with numpy only."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

import numpy as np

EXIF_ORIENTATION_TAG = 0x0112
EXIF_PREFIX = b"Exif\x00\x00"  # starts JPEG APP1 segments; PNG's eXIf chunk goes without it
_BYTE_ORDERS = {b"II": "<", b"MM": ">"}  # TIFF's little- and big-endian markers
_TIFF_MAGIC = 42
_IFD_ENTRY_BYTES = 12
_VALUE_OFFSET = 8  # where an entry's value (or the offset of a longer one) starts
# The standard stores the orientation as a SHORT; some writers use a LONG, which Pillow reads
# (and so measr turns the pixels) just the same, so both are read and reset.
_ORIENTATION_TYPES = {3: "H", 4: "I"}  # TIFF type code -> struct format: SHORT, LONG


def _transpose(a: np.ndarray) -> np.ndarray:
    """Swap rows and columns, keeping any channel axis last."""
    return a.swapaxes(0, 1)


# What each tag value asks a viewer to do so that the picture appears upright.
# np.rot90 with k=1 turns counter-clockwise, k=-1 clockwise.
_UPRIGHT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirrored left-right
    3: lambda a: a[::-1, ::-1],  # upside down
    4: lambda a: a[::-1, :],  # mirrored top-bottom
    5: _transpose,  # mirrored along the main diagonal
    6: lambda a: np.rot90(a, k=-1),  # camera held rotated: turn 90° clockwise
    7: lambda a: _transpose(a)[::-1, ::-1],  # mirrored along the anti-diagonal
    8: lambda a: np.rot90(a, k=1),  # turn 90° counter-clockwise
}


def apply_orientation(pixels: np.ndarray, orientation: int | None) -> np.ndarray:
    """Rotate/flip (H, W[, C]) pixels as the EXIF orientation says; unknown values do nothing."""
    upright = _UPRIGHT.get(orientation or 1, _UPRIGHT[1])
    # OpenCV wants contiguous memory; the flips above are strided views.
    return np.ascontiguousarray(upright(pixels))


def orientation_from_exif(exif: bytes) -> int | None:
    """The orientation tag of raw EXIF data (a TIFF structure), 1..8, or None when the data has
    none or is damaged."""
    data = exif.removeprefix(EXIF_PREFIX)
    field = orientation_field(data)
    if field is None:
        return None
    offset, layout = field
    (value,) = struct.unpack_from(layout, data, offset)
    return value if 1 <= value <= 8 else None


def orientation_field(data: bytes) -> tuple[int, str] | None:
    """Where the orientation value of a bare TIFF structure lies and its struct format (byte
    order included), or None when it has no single SHORT or LONG orientation."""
    order = exif_byte_order(data)
    if order is None:
        return None
    for offset, tag, kind, count in first_directory_entries(data):
        if tag == EXIF_ORIENTATION_TAG:
            code = _ORIENTATION_TYPES.get(kind)
            return (offset + _VALUE_OFFSET, order + code) if code and count == 1 else None
    return None


def exif_byte_order(data: bytes) -> str | None:
    """struct's byte-order character of a bare TIFF structure ("<" or ">"), None if it is not
    one."""
    order = _BYTE_ORDERS.get(data[:2])
    if order is None or len(data) < 8:
        return None
    (magic,) = struct.unpack_from(f"{order}H", data, 2)
    return order if magic == _TIFF_MAGIC else None


def first_directory_entries(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """(offset, tag, type, count) of each entry of the first directory of a bare TIFF
    structure. Only that directory is read, bounds-checked at every step, since the bytes come
    from an untrusted file; a damaged directory ends the walk."""
    order = exif_byte_order(data)
    if order is None:
        return
    (directory,) = struct.unpack_from(f"{order}I", data, 4)
    if directory + 2 > len(data):
        return
    (entries,) = struct.unpack_from(f"{order}H", data, directory)
    for index in range(entries):
        start = directory + 2 + index * _IFD_ENTRY_BYTES
        if start + _IFD_ENTRY_BYTES > len(data):
            return
        tag, kind, count = struct.unpack_from(f"{order}HHI", data, start)
        yield start, tag, kind, count
