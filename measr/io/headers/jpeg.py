"""JPEG: the size from the frame header (SOF), EXIF, ICC profile and resolution from the APP
segments, found by walking the markers; and the number of scans, which sets the decoding time.

Pillow refuses some headers libjpeg decodes (a 5-byte Adobe APP14 segment, say), so the walk is
measr's own. It follows the segment lengths as libjpeg does; a file it cannot follow is refused
rather than handed to the decoder unchecked."""

from __future__ import annotations

import re
import struct

from measr.io.headers.base import ByteSource, Header, RefusedImageError, still_header
from measr.io.metadata import metadata_of
from measr.io.orientation import EXIF_PREFIX, orientation_from_exif

# Every progressive scan makes libjpeg walk all the image's blocks again: a file of 100 000
# tiny scans decodes for minutes. libjpeg's own progressions use 6 (gray) to 10 (colour) scans
# and scan optimisers stay well below 100, so 500 leaves room for any real photo.
MAX_SCANS = 500
# Markers walked before the end of the image: real files have a few dozen (one at the scan
# limit, with a table before each scan, about 1500); the cap keeps a
# file of millions of tiny segments from costing minutes here.
_MAX_MARKERS = 8192
_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_APP0, _APP1, _APP2 = 0xE0, 0xE1, 0xE2
# SOF0-3, 5-7, 9-11, 13-15 (0xC4 is DHT, 0xC8 reserved, 0xCC DAC: not frame headers).
_FRAME_MARKERS = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length follows
_LENGTH = struct.Struct(">H")
_FRAME = struct.Struct(">BHHB")  # precision, height, width, components
_JFIF = struct.Struct(">5sHBHH")  # "JFIF\0", version, density units, x density, y density
_ICC_PREFIX = b"ICC_PROFILE\x00"
# Where the next marker may start in entropy-coded data: 0xFF not followed by a stuffed zero
# or a restart marker (0xFF fill bytes run on to the marker itself).
_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_SCAN_WINDOW = 256  # bytes searched for the end of a scan at first; doubled up to the cap
_SCAN_WINDOW_CAP = 1 << 20
_MODES = {1: "L", 3: "RGB", 4: "CMYK"}
_CENTIMETRES_PER_INCH = 2.54


class _Segments:
    """What the walk collects from the segments before the first scan."""

    def __init__(self) -> None:
        self.frame: tuple[int, int, int] | None = None  # width, height, components
        self.exif: bytes | None = None
        self.icc_parts: dict[int, bytes] = {}
        self.icc_count = 0
        self.dpi: tuple[float, float] | None = None

    def add(self, marker: int, payload: bytes) -> None:
        """Take what measr keeps from one segment."""
        if marker in _FRAME_MARKERS and len(payload) >= _FRAME.size:
            _, height, width, components = _FRAME.unpack_from(payload)
            if self.frame is None:  # libjpeg refuses a second frame header
                self.frame = (width, height, components)
        elif marker == _APP1 and payload.startswith(EXIF_PREFIX) and self.exif is None:
            self.exif = payload
        elif marker == _APP2 and payload.startswith(_ICC_PREFIX) and len(payload) > 14:
            sequence, count = payload[12], payload[13]
            self.icc_parts.setdefault(sequence, payload[14:])
            self.icc_count = count
        elif marker == _APP0 and len(payload) >= _JFIF.size and payload.startswith(b"JFIF\0"):
            _, _, units, x, y = _JFIF.unpack_from(payload)
            scale = {1: 1.0, 2: _CENTIMETRES_PER_INCH}.get(units)
            self.dpi = (x * scale, y * scale) if scale else None

    def icc_profile(self) -> bytes | None:
        """The profile when all its parts (numbered 1..count) are there."""
        if not self.icc_count or sorted(self.icc_parts) != list(range(1, self.icc_count + 1)):
            return None
        return b"".join(self.icc_parts[index] for index in range(1, self.icc_count + 1))


def read_jpeg(source: ByteSource) -> Header | None:
    """The Header of the JPEG in `source`, None when its markers cannot be followed to a frame
    header; raises RefusedImageError for a file with more than MAX_SCANS scans."""
    segments = _Segments()
    if not _walk(source, segments) or segments.frame is None:
        return None
    width, height, components = segments.frame
    orientation = orientation_from_exif(segments.exif) if segments.exif else None
    info = {"exif": segments.exif, "icc_profile": segments.icc_profile(), "dpi": segments.dpi}
    return still_header(
        "jpeg",
        width,
        height,
        _MODES.get(components, "RGB"),
        orientation=orientation,
        metadata=metadata_of(info, "JPEG", orientation),
    )


def _walk(source: ByteSource, segments: _Segments) -> bool:
    """Follow the markers from the start of the image to its end (or the end of the file),
    counting scans; False when the structure breaks before the first scan."""
    if source.read(0, 2) != bytes((0xFF, _SOI)):
        return False
    offset, scans = 2, 0
    for _ in range(_MAX_MARKERS):
        found = _marker_at(source, offset)
        if found is None:
            return scans > 0  # a file cut inside its scans still has its frame header
        marker, offset = found
        if marker == _EOI:
            return True
        if marker in _STANDALONE:
            continue
        payload = _segment_payload(source, offset)
        if payload is None:
            return scans > 0
        offset += 2 + len(payload)
        if marker != _SOS:
            segments.add(marker, payload)
            continue
        scans += 1
        if scans > MAX_SCANS:
            raise RefusedImageError(
                f"it is a JPEG of more than {MAX_SCANS} scans (real photos have at most a few "
                "dozen), which would take very long to decode",
                "re-save it as an ordinary JPEG or a PNG first",
            )
        end = _end_of_scan(source, offset)
        if end is None:
            return True  # the data runs to the end of the file: libjpeg decodes what is there
        offset = end
    raise RefusedImageError(
        f"it is a JPEG of more than {_MAX_MARKERS} segments, far more than any photo has",
        "re-save it as an ordinary JPEG or a PNG first",
    )


def _marker_at(source: ByteSource, offset: int) -> tuple[int, int] | None:
    """The marker at `offset` after any 0xFF fill bytes, and the offset just past it."""
    while True:
        pair = source.read(offset, 2)
        if len(pair) < 2 or pair[0] != 0xFF:
            return None
        if pair[1] != 0xFF:
            return pair[1], offset + 2
        offset += 1


def _segment_payload(source: ByteSource, offset: int) -> bytes | None:
    """The payload of the segment whose length field is at `offset`."""
    fields = source.unpack(_LENGTH, offset)
    if fields is None or fields[0] < _LENGTH.size:
        return None
    size = fields[0] - _LENGTH.size
    payload = source.read(offset + _LENGTH.size, size)
    return payload if len(payload) == size else None


def _end_of_scan(source: ByteSource, offset: int) -> int | None:
    """Where the marker after the entropy-coded data starting at `offset` begins, or None at
    the end of the file. The search window grows, so a file of many tiny scans reads little
    and a large scan is read in a few large pieces."""
    window = _SCAN_WINDOW
    while True:
        chunk = source.read(offset, window)
        found = _MARKER_IN_SCAN.search(chunk)
        if found is not None:
            return offset + found.start()
        if len(chunk) < window:
            return None
        offset += len(chunk) - 1  # a 0xFF at the end may start a marker
        window = min(2 * window, _SCAN_WINDOW_CAP)
