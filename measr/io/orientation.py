"""Applying the EXIF orientation tag (0x0112) to decoded pixels, with numpy only."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

EXIF_ORIENTATION_TAG = 0x0112


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
