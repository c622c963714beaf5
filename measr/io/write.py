"""write_image: encode in memory, then publish the file atomically, or raise ImageWriteError."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from measr.atomic import create, replacing
from measr.errors import ImageWriteError, MeasrError, quoted
from measr.io.embed import Stored, embed_metadata
from measr.io.formats import SUPPORTED_EXTENSIONS, OutputFormat, format_for_path
from measr.io.image import Image, convert_bit_depth, to_uint
from measr.io.opencv import quiet_opencv
from measr.io.oserrors import explain
from measr.io.png import encode_gray_alpha_png

_TIFF_INCHES = 2  # TIFF's ResolutionUnit for dots per inch
_PNG_COMPRESSION = 6  # zlib's usual trade-off; OpenCV's default (1) makes much larger files
QUALITY_RANGE = range(1, 101)  # JPEG and WebP quality


def write_image(
    path: str | os.PathLike[str],
    image: Image,
    *,
    quality: int = 95,
    overwrite: bool = False,
) -> None:
    """Write image in the format its extension names; never leaves a partial file behind."""
    target = Path(path)
    check_quality(quality)
    output_format = check_output(target, overwrite=overwrite)
    try:
        data = _encode(target, image, output_format, quality)
    except MemoryError as exc:
        raise _write_error(
            target, "not enough memory to encode it", "close other programs"
        ) from exc
    _create_folder(target)
    _write_atomically(target, data, overwrite)


def _write_error(target: Path, cause: str, hint: str) -> ImageWriteError:
    """The standard 'cannot write' error naming the file."""
    return ImageWriteError(f"cannot write {quoted(target)}: {cause}", hint)


def _os_write_error(target: Path, exc: OSError) -> ImageWriteError:
    """An ImageWriteError for an operating-system failure while writing."""
    cause, hint = explain(exc)
    return _write_error(target, cause, hint)


def check_output(path: str | os.PathLike[str], *, overwrite: bool = False) -> OutputFormat:
    """The format an image written to `path` will have, once it is sure the path can take one:
    an extension measr writes, not a folder, not an existing file unless `overwrite`.
    `write_image` checks this itself; callers check first to refuse before long work."""
    target = Path(path)
    output_format = _output_format(target)
    _check_target(target, overwrite)
    return output_format


def check_quality(quality: int) -> None:
    """JPEG/WebP quality must be 1..100 (checked for every format, so typos surface early)."""
    if isinstance(quality, bool) or not isinstance(quality, int) or quality not in QUALITY_RANGE:
        raise MeasrError(
            f"quality must be 1 to 100, not {quality!r}",
            "the JPEG and WebP quality, 95 by default",
            option="quality",
        )


def _output_format(target: Path) -> OutputFormat:
    """The format the extension asks for; others are refused."""
    output_format = format_for_path(target)
    if output_format is None:
        kind = f"{target.suffix} files" if target.suffix else "files without an extension"
        raise _write_error(
            target,
            f"measr does not write {kind}",
            f"end the name with one of {' '.join(SUPPORTED_EXTENSIONS)}",
        )
    return output_format


def _check_target(target: Path, overwrite: bool) -> None:
    """Refuse invalid names, folders, and existing files unless overwriting was asked for."""
    if "\x00" in str(target):  # the OS would reject it with a bare ValueError
        raise _write_error(
            target, "the path is not valid (it contains a NUL byte)", "check the path"
        )
    if target.is_dir():
        raise _write_error(target, "it is a folder", "give a file name, not a folder")
    # lexists: a symbolic link counts as existing even if broken; it is replaced, and the file
    # it points to is never written through.
    if os.path.lexists(target) and not overwrite:
        raise _exists_error(target)


def _exists_error(target: Path) -> ImageWriteError:
    """The error for an output that is already there."""
    return ImageWriteError(
        f"cannot write {quoted(target)}: the file already exists",
        "allow replacing it, or choose another name",
        option="overwrite",
    )


def _encode(target: Path, image: Image, output_format: OutputFormat, quality: int) -> bytes:
    """The encoded file contents, with depth, alpha and gray adapted to what the format holds."""
    depth = min(image.bit_depth, output_format.max_bit_depth)
    samples = to_uint(image.pixels, depth)
    alpha = None
    if image.alpha is not None and output_format.keeps_alpha:
        alpha = convert_bit_depth(image.alpha, depth)
    if image.is_gray and alpha is not None and output_format.name == "png":
        encoded = encode_gray_alpha_png(samples[:, :, 0], alpha)
        stored = Stored(image.width, image.height, channels=1, alpha=True)
    else:
        array = _opencv_layout(samples, alpha, keep_gray=output_format.keeps_gray)
        encoded = _opencv_encode(target, image, array, output_format, quality)
        channels = 1 if array.ndim == 2 else 3
        stored = Stored(image.width, image.height, channels, alpha=alpha is not None)
    return embed_metadata(encoded, output_format.name, image.metadata, stored)


def _opencv_encode(
    target: Path, image: Image, array: np.ndarray, output_format: OutputFormat, quality: int
) -> bytes:
    """cv2.imencode of the array in the output format, or the reason it failed."""
    failure = _write_error(
        target,
        f"OpenCV could not encode a {image.width} x {image.height} image as "
        f"{output_format.name.upper()}",
        "JPEG allows at most 65535 and WebP 16383 pixels a side; try PNG or TIFF",
    )
    try:
        with quiet_opencv():
            ok, encoded = cv2.imencode(
                output_format.cv2_extension,
                array,
                _encode_params(output_format, quality, image.metadata.dpi),
            )
    except cv2.error as exc:
        raise failure from exc
    if not ok:
        raise failure
    return encoded.tobytes()


def _opencv_layout(samples: np.ndarray, alpha: np.ndarray | None, *, keep_gray: bool) -> np.ndarray:
    """(H, W, 1|3) RGB-or-gray samples plus alpha in the layout cv2.imencode takes."""
    if samples.shape[2] == 1:
        if alpha is None and keep_gray:
            return np.ascontiguousarray(samples[:, :, 0])
        # OpenCV encodes 1, 3 or 4 channels only: gray+alpha and gray WebP become BGR(A).
        samples = np.repeat(samples, 3, axis=2)
    bgr = samples[:, :, ::-1]
    if alpha is None:
        return np.ascontiguousarray(bgr)
    return np.dstack([bgr, alpha])


def _encode_params(
    output_format: OutputFormat, quality: int, dpi: tuple[float, float] | None = None
) -> list[int]:
    """cv2.imencode parameters for the format (with the resolution, for TIFF)."""
    if output_format.name == "jpeg":
        return [cv2.IMWRITE_JPEG_QUALITY, quality]
    if output_format.name == "webp":
        return [cv2.IMWRITE_WEBP_QUALITY, quality]
    if output_format.name == "png":
        return [cv2.IMWRITE_PNG_COMPRESSION, _PNG_COMPRESSION]
    if output_format.name == "tiff" and dpi is not None:
        x, y = (round(v) for v in dpi)
        return [
            *(cv2.IMWRITE_TIFF_RESUNIT, _TIFF_INCHES),
            *(cv2.IMWRITE_TIFF_XDPI, x, cv2.IMWRITE_TIFF_YDPI, y),
        ]
    return []


def _create_folder(target: Path) -> None:
    """Create the output folder and its parents if missing."""
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        cause, hint = explain(exc)
        raise _write_error(target, f"cannot create folder {quoted(folder)}: {cause}", hint) from exc


def _write_atomically(target: Path, data: bytes, overwrite: bool) -> None:
    """Publish `data` as the target in one step (`measr.atomic`), unless the target appeared
    meanwhile and may not be overwritten."""
    try:
        with replacing(target) as temporary:
            with create(temporary) as stream:
                stream.write(data)
            if not overwrite and os.path.lexists(target):
                raise _exists_error(target)  # created by someone else while we encoded
    except OSError as exc:
        raise _os_write_error(target, exc) from exc
