"""The in-memory image measr works on, and exact conversions between file integers and floats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from measr.io.metadata import NO_METADATA, Metadata

_MAX_VALUE = {8: 255, 16: 65535}
_DTYPE_FOR_DEPTH: dict[int, np.dtype[Any]] = {8: np.dtype(np.uint8), 16: np.dtype(np.uint16)}


def dtype_for_bit_depth(bit_depth: int) -> np.dtype[Any]:
    """The unsigned integer dtype that stores samples of this bit depth (8 or 16)."""
    if bit_depth not in _DTYPE_FOR_DEPTH:
        raise ValueError(f"bit depth must be 8 or 16, not {bit_depth}")
    return _DTYPE_FOR_DEPTH[bit_depth]


def from_uint(array: np.ndarray) -> np.ndarray:
    """uint8 or uint16 samples as float32 in [0, 1] (x / 255 or x / 65535)."""
    if array.dtype == np.uint8:
        scale = np.float32(255)
    elif array.dtype == np.uint16:
        scale = np.float32(65535)
    else:
        raise ValueError(f"expected uint8 or uint16 samples, got {array.dtype}")
    return array.astype(np.float32) / scale


def to_uint(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float samples in [0, 1] as uint8/uint16: scaled, rounded, clipped; NaN becomes 0."""
    dtype = dtype_for_bit_depth(bit_depth)
    scaled = np.asarray(pixels, dtype=np.float32) * np.float32(_MAX_VALUE[bit_depth])
    # A network can emit NaN or values slightly outside [0, 1]; neither may wrap around.
    np.nan_to_num(scaled, copy=False, nan=0.0)
    np.clip(scaled, 0, _MAX_VALUE[bit_depth], out=scaled)
    return np.rint(scaled).astype(dtype)


def convert_bit_depth(samples: np.ndarray, bit_depth: int) -> np.ndarray:
    """Integer samples rescaled exactly to another bit depth (x * 257 up, round(x / 257) down)."""
    dtype = dtype_for_bit_depth(bit_depth)
    if samples.dtype not in _DTYPE_FOR_DEPTH.values():
        raise ValueError(f"expected uint8 or uint16 samples, got {samples.dtype}")
    if samples.dtype == dtype:
        return samples
    if dtype == np.uint16:
        return samples.astype(np.uint16) * np.uint16(257)
    return ((samples.astype(np.uint32) + 128) // 257).astype(np.uint8)


@dataclass(frozen=True, eq=False)
class Image:
    """Decoded pixels as float32 RGB or gray in [0, 1], plus what is needed to write them back."""

    pixels: np.ndarray  # float32 (H, W, 3) RGB or (H, W, 1) gray, in [0, 1]
    alpha: np.ndarray | None  # (H, W) in the file's dtype, never altered
    bit_depth: int  # 8 or 16: the sample depth of the file
    source_format: str  # "png", "jpeg", "tiff", "webp", "bmp", ...
    metadata: Metadata = NO_METADATA  # written back where the output format holds it

    def __post_init__(self) -> None:
        """Reject shapes and dtypes the rest of measr cannot handle."""
        pixels = self.pixels
        if not isinstance(pixels, np.ndarray) or pixels.dtype != np.float32:
            raise ValueError("Image.pixels must be a float32 numpy array")
        if pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
            raise ValueError(f"Image.pixels must have shape (H, W, 1|3), not {pixels.shape}")
        if pixels.shape[0] < 1 or pixels.shape[1] < 1:
            raise ValueError(f"Image.pixels must not be empty, got {pixels.shape}")
        dtype = dtype_for_bit_depth(self.bit_depth)
        if self.alpha is not None:
            if self.alpha.shape != pixels.shape[:2]:
                raise ValueError(f"alpha shape {self.alpha.shape} != pixels {pixels.shape[:2]}")
            if self.alpha.dtype != dtype:
                raise ValueError(f"alpha must be {dtype} for {self.bit_depth}-bit images")

    @property
    def height(self) -> int:
        """Rows of pixels."""
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        """Columns of pixels."""
        return int(self.pixels.shape[1])

    @property
    def is_gray(self) -> bool:
        """True for one-channel (grayscale) images."""
        return self.pixels.shape[2] == 1

    @property
    def has_alpha(self) -> bool:
        """True when the image carries a transparency channel."""
        return self.alpha is not None

    def with_pixels(self, new_pixels: np.ndarray) -> Image:
        """A copy with restored pixels, keeping alpha, bit depth, gray-ness, source format and
        metadata."""
        pixels = _as_pixel_array(new_pixels)
        if pixels.shape[:2] != self.pixels.shape[:2]:
            raise ValueError(f"new pixels {pixels.shape[:2]} != image {self.pixels.shape[:2]}")
        if self.is_gray and pixels.shape[2] == 3:
            pixels = gray_from_rgb(pixels)  # a gray image stays gray
        return Image(pixels, self.alpha, self.bit_depth, self.source_format, self.metadata)


# ITU-R BT.601 luma weights of R, G and B.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def gray_from_rgb(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 1) BT.601 luma of (H, W, 3) RGB pixels: how measr turns RGB back into gray."""
    return (np.asarray(pixels, dtype=np.float32) @ LUMA_WEIGHTS)[:, :, np.newaxis]


def _as_pixel_array(array: np.ndarray) -> np.ndarray:
    """A float32 (H, W, C) view or copy of an (H, W) or (H, W, C) array."""
    pixels = np.asarray(array, dtype=np.float32)
    return pixels[:, :, np.newaxis] if pixels.ndim == 2 else pixels


def image_from_array(
    array: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    bit_depth: int | None = None,
    source_format: str = "png",
) -> Image:
    """An Image from RGB or gray samples: uint8/uint16 (depth from dtype) or float in [0, 1].

    Float input defaults to 8 bits; alpha may be given in any integer depth and is rescaled
    exactly to the image's depth.
    """
    if array.dtype in (np.uint8, np.uint16):
        depth = bit_depth or (8 if array.dtype == np.uint8 else 16)
        pixels = _as_pixel_array(from_uint(array))
    else:
        depth = bit_depth or 8
        pixels = np.clip(_as_pixel_array(array), 0.0, 1.0)
    if alpha is not None:
        alpha = convert_bit_depth(np.asarray(alpha), depth)
    return Image(np.ascontiguousarray(pixels), alpha, depth, source_format)
