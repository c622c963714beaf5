"""Small helpers shared by the degradations: input checks, clipping, 8-bit quantisation."""

from __future__ import annotations

import cv2
import numpy as np


def as_image(img: np.ndarray) -> np.ndarray:
    """Check an (H, W, 3) image and return it as float32 (a view when it already is)."""
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
        shape = getattr(img, "shape", None)
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {shape}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"empty image of shape {img.shape}")
    return np.asarray(img, dtype=np.float32)


def clip_unit(img: np.ndarray) -> np.ndarray:
    """A new float32 array with values clipped to [0, 1]."""
    return np.clip(img, 0.0, 1.0).astype(np.float32, copy=False)


def quantize_8bit(img: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and round to the 256 levels of an 8-bit file: round(x * 255) / 255."""
    levels = np.rint(np.clip(img, 0.0, 1.0) * 255.0)
    return (levels / 255.0).astype(np.float32)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] to uint8 with rounding."""
    return np.rint(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def convolve(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve every channel with a 2-D kernel (true convolution), reflecting at the borders."""
    flipped = np.ascontiguousarray(kernel[::-1, ::-1], dtype=np.float32)
    src = np.ascontiguousarray(img, dtype=np.float32)
    out = cv2.filter2D(src, cv2.CV_32F, flipped, borderType=cv2.BORDER_REFLECT)
    return out.reshape(img.shape)
