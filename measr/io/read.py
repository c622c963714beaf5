"""read_image: any file a user points at becomes an Image or a clear ImageReadError."""

from __future__ import annotations

import contextlib
import io
import os
import stat
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage

from measr.errors import ImageReadError, quoted
from measr.io.headers import (
    DECODED_FORMATS,
    HEAD_BYTES,
    Header,
    RefusedImageError,
    sniff,
    unsupported_samples,
)
from measr.io.image import Image, from_uint
from measr.io.opencv import quiet_opencv
from measr.io.orientation import apply_orientation
from measr.io.oserrors import explain
from measr.io.probe import read_headers

# Default pixel limit: a 400-megapixel RGB image already takes 4.8 GB as float32.
MAX_PIXELS = 400_000_000
# No image within the pixel limit needs more than 8 bytes a pixel (16-bit RGBA, uncompressed)
# plus some metadata; a larger file is refused before it is read into memory.
_MAX_BYTES_PER_PIXEL = 8
_METADATA_ALLOWANCE = 64 * 1024 * 1024
# OpenCV's TIFF decoder applies the orientation tag itself, even with IMREAD_UNCHANGED.
_ORIENTED_BY_OPENCV = frozenset({"tiff"})
_DISPLAY_NAMES = {"webp": "WebP", "jpeg2000": "JPEG 2000", "sun": "Sun raster", "ppm": "PNM"}
_GRAY_ALPHA_MODES = frozenset({"LA", "La"})
# Bytes looked at to tell text, HTML or a known signature from junk, in a file never decoded.
_SNIFFED_BYTES = 1024
_GET_A_FRESH_COPY = "the file is damaged or incomplete; get a fresh copy"
_READABLE_FORMATS = "pass a PNG, JPEG, TIFF, WebP or BMP image"


def read_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS) -> Image:
    """Decode an image file (EXIF orientation applied) or raise ImageReadError saying why not."""
    file = Path(path)
    _check_is_regular_file(file, max_pixels)
    data, own, header = _read_bytes_and_header(file, max_pixels)
    decoded = _full_range(_decode(file, data, header), own.max_sample)
    bit_depth = _bit_depth(file, decoded)
    _check_pixel_count(file, decoded.shape[1], decoded.shape[0], max_pixels)
    try:
        return _to_image(file, decoded, bit_depth, header, data)
    except MemoryError as exc:
        raise _read_error(
            file, "not enough memory to hold it", "close other programs or lower the pixel limit"
        ) from exc


def _to_image(
    file: Path, decoded: np.ndarray, bit_depth: int, header: Header, data: bytes
) -> Image:
    """Upright, RGB-or-gray float pixels and alpha from OpenCV's decoded array."""
    if header.format not in _ORIENTED_BY_OPENCV:
        decoded = apply_orientation(decoded, header.orientation)
    color, alpha = _split_channels(file, decoded, header, data)
    return Image(
        pixels=from_uint(color),
        alpha=None if alpha is None else np.ascontiguousarray(alpha),
        bit_depth=bit_depth,
        source_format=header.format,
        metadata=header.metadata,
    )


def _read_error(file: Path, cause: str, hint: str) -> ImageReadError:
    """The standard 'cannot read' error naming the file."""
    return ImageReadError(f"cannot read {quoted(file)}: {cause}", hint)


def _os_read_error(file: Path, exc: OSError) -> ImageReadError:
    """An ImageReadError for an operating-system failure to reach or read the file."""
    cause, hint = explain(exc)
    return _read_error(file, cause, hint)


def _check_is_regular_file(file: Path, max_pixels: int) -> None:
    """Refuse missing files, broken links, folders, devices, empty and oversized files."""
    try:
        info = file.stat()  # follows symbolic links
    except FileNotFoundError as exc:
        if file.is_symlink():
            raise _read_error(
                file,
                f"it is a broken symbolic link (to {quoted(_link_target(file))})",
                "fix the link or pass the file it should point to",
            ) from exc
        raise _read_error(file, "no such file", "check the path") from exc
    except OSError as exc:
        raise _os_read_error(file, exc) from exc
    except ValueError as exc:  # a NUL byte in the name
        raise _read_error(file, "the path is not valid", "check the path") from exc
    if stat.S_ISDIR(info.st_mode):
        raise _read_error(
            file,
            "it is a folder, not an image file",
            "pass an image file; to restore a whole folder use the batch command",
        )
    if not stat.S_ISREG(info.st_mode):
        # Reading a pipe or device could block forever or never end.
        raise _read_error(
            file, "it is not a regular file (a device, pipe or socket)", _READABLE_FORMATS
        )
    if info.st_size == 0:
        raise _read_error(file, "the file is empty (0 bytes)", _GET_A_FRESH_COPY)
    limit = max_pixels * _MAX_BYTES_PER_PIXEL + _METADATA_ALLOWANCE
    if info.st_size > limit:
        raise _read_error(
            file,
            f"the file is {info.st_size / 1e6:.0f} MB, more than any image within the "
            f"limit of {_pixel_count(max_pixels)} needs",
            "if it really is one image, raise the pixel limit",
        )


def _link_target(file: Path) -> str:
    """Where a symbolic link points, or '?' if that cannot be read."""
    try:
        return os.readlink(file)
    except OSError:
        return "?"


def _read_bytes_and_header(file: Path, max_pixels: int) -> tuple[bytes, Header, Header]:
    """The file's bytes, measr's own reading of its header and the fuller one (Pillow's where
    it can parse it), refusing bad headers before reading the rest. Nothing reaches the
    decoder without measr's own reading: the first fence does not depend on Pillow."""
    try:
        with open(file, "rb") as stream:
            try:
                headers = read_headers(stream)
            except RefusedImageError as refusal:
                raise _read_error(file, refusal.cause, refusal.hint) from None
            for header in (headers.own, headers.pillow):
                if header is not None:
                    _check_header(file, header, max_pixels)
            stream.seek(0)
            if headers.own is None or headers.described is None:
                raise _undecodable(file, stream.read(_SNIFFED_BYTES), headers.pillow)
            return stream.read(), headers.own, headers.described
    except OSError as exc:
        raise _os_read_error(file, exc) from exc


def _check_header(file: Path, header: Header, max_pixels: int) -> None:
    """Refuse animations and oversized images using only the header."""
    _check_pixel_count(file, header.width, header.height, max_pixels)
    if header.animated:
        raise _read_error(
            file,
            f"it is an animated {_display_name(header.format)} ({header.frames} frames); "
            "measr restores still images only",
            "extract the frames, e.g. with ffmpeg, and restore them as a folder",
        )


def _check_pixel_count(file: Path, width: int, height: int, max_pixels: int) -> None:
    """Refuse empty images and images above the pixel limit."""
    if width < 1 or height < 1:
        raise _read_error(file, f"the image has no pixels ({width} x {height})", _GET_A_FRESH_COPY)
    if width * height > max_pixels:
        raise _read_error(
            file,
            f"the image is {width} x {height} pixels ({_pixel_count(width * height)}), "
            f"above the limit of {_pixel_count(max_pixels)}",
            "downscale or crop it first, or raise the pixel limit if you have the memory",
        )


def _pixel_count(pixels: int) -> str:
    """A pixel count in words: '12.3 megapixels', or '640 pixels' for small ones."""
    return f"{round(pixels / 1e6, 1):g} megapixels" if pixels >= 1_000_000 else f"{pixels} pixels"


def _display_name(format_name: str) -> str:
    """How a format is usually written: PNG, JPEG, WebP, ..."""
    return _DISPLAY_NAMES.get(format_name, format_name.upper())


def _decode(file: Path, data: bytes, header: Header | None) -> np.ndarray:
    """OpenCV's decoding of the bytes, keeping 16-bit samples and alpha."""
    try:
        with quiet_opencv():
            decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        decoded = None  # some corrupt inputs make OpenCV raise rather than return None
    except MemoryError as exc:
        raise _read_error(file, "not enough memory to decode it", "close other programs") from exc
    if decoded is None or decoded.size == 0:
        raise _undecodable(file, data, header)
    return decoded


def _undecodable(file: Path, data: bytes, header: Header | None) -> ImageReadError:
    """Explain why bytes did not decode: damaged image, other format, text or HTML, junk."""
    if header is not None:
        name = _display_name(header.format)
        if header.format in DECODED_FORMATS:
            return _read_error(
                file, f"it is a {name} file but is truncated or corrupt", _GET_A_FRESH_COPY
            )
        return _read_error(
            file, f"{name} files are not supported", f"convert it first; {_READABLE_FORMATS}"
        )
    signature_format = sniff(data[:HEAD_BYTES])
    # BMP's 2-byte signature starts too many other files to name the format from it.
    if signature_format is not None and signature_format != "bmp":
        # Pillow could not even parse the header: the file was cut or damaged near its start.
        return _read_error(
            file,
            f"it is a {_display_name(signature_format)} file but is truncated or corrupt",
            _GET_A_FRESH_COPY,
        )
    kind = _sniff_text(data)
    if kind == "html":
        return _read_error(
            file,
            "it is an HTML page, not an image",
            "a download probably saved an error page; download the image again",
        )
    if kind == "text":
        return _read_error(file, "it is a text file, not an image", _READABLE_FORMATS)
    return _read_error(
        file, "it is not an image measr recognises (unknown format)", _READABLE_FORMATS
    )


def _sniff_text(data: bytes) -> str | None:
    """'html' or 'text' when the start of the file reads as such, else None."""
    head = data[:1024]
    if any(byte < 32 and byte not in b"\t\n\r\f" for byte in head) or b"\x7f" in head:
        return None
    lowered = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if lowered.startswith((b"<!doctype html", b"<html")) or b"<html" in lowered:
        return "html"
    return "text"


def _bit_depth(file: Path, decoded: np.ndarray) -> int:
    """8 or 16 from the decoded sample type; other sample types are refused."""
    if decoded.dtype == np.uint8:
        return 8
    if decoded.dtype == np.uint16:
        return 16
    refusal = unsupported_samples(decoded.dtype.itemsize * 8, floating=decoded.dtype.kind == "f")
    raise _read_error(file, refusal.cause, refusal.hint)


def _full_range(decoded: np.ndarray, max_sample: int | None) -> np.ndarray:
    """Samples stretched to the full 8- or 16-bit range from a largest value of `max_sample`
    (a PNM's maxval other than 255 or 65535: OpenCV returns the numbers as stored)."""
    if max_sample is None or decoded.dtype not in (np.uint8, np.uint16):
        return decoded
    full = np.iinfo(decoded.dtype).max
    if max_sample > full:
        return decoded
    table = np.round(np.arange(max_sample + 1) * (full / max_sample)).astype(decoded.dtype)
    return table[np.minimum(decoded, max_sample)]


def _split_channels(
    file: Path, decoded: np.ndarray, header: Header | None, data: bytes
) -> tuple[np.ndarray, np.ndarray | None]:
    """OpenCV's gray/BGR/BGRA layout as (H, W, 1|3) gray-or-RGB samples and an optional alpha."""
    if decoded.ndim == 2:
        decoded = decoded[:, :, np.newaxis]
    channels = decoded.shape[2]
    if channels == 1 and header is not None and header.mode in _GRAY_ALPHA_MODES:
        # OpenCV drops the alpha of gray+alpha TIFFs; Pillow can decode those (8-bit ones).
        decoded = _gray_alpha_from_pillow(data, decoded)
        channels = decoded.shape[2]
    if channels == 1:
        return decoded, None
    if channels == 2:
        return decoded[:, :, :1], decoded[:, :, 1]
    if channels not in (3, 4):
        raise _read_error(
            file, f"it has {channels} channels; measr reads 1 to 4", _READABLE_FORMATS
        )
    color = decoded[:, :, 2::-1]  # BGR(A) -> RGB
    # A CMYK file's fourth decoded channel is OpenCV's filler, not transparency.
    alpha = decoded[:, :, 3] if channels == 4 and not (header and header.is_cmyk) else None
    if header is not None and header.gray and _channels_equal(color):
        # OpenCV widens some gray files (gray+alpha PNG, gray BMP) to BGR(A).
        color = color[:, :, :1]
    return color, alpha


def _gray_alpha_from_pillow(data: bytes, decoded: np.ndarray) -> np.ndarray:
    """Pillow's (H, W, 2) decoding of a gray+alpha file, or OpenCV's gray if that fails."""
    with contextlib.suppress(Exception), PILImage.open(io.BytesIO(data)) as im:
        # Pillow must agree with OpenCV on size and depth, or its answer is not used.
        pair = np.asarray(im)
        if pair.shape == (*decoded.shape[:2], 2) and pair.dtype == decoded.dtype:
            return pair
    return decoded


def _channels_equal(color: np.ndarray) -> bool:
    """Whether the three color channels hold identical samples."""
    return bool(
        np.array_equal(color[:, :, 0], color[:, :, 1])
        and np.array_equal(color[:, :, 1], color[:, :, 2])
    )
