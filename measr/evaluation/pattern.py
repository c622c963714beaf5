"""A pattern of the network's own: the amplitude of periodic components at fixed periods (2 and 8
pixels, both axes) in the flat regions of an image, measured the same way on a restoration and
on its clean target, so that a grid the restoration adds stands out (docs/protocol.md).

Definition, all on the grey level (Rec. 709 luma of the 8-bit image, 0-255):
- flat blocks: the image is cut into BLOCK x BLOCK blocks at multiples of BLOCK (so every block
  has the same phase against any 2- or 8-pixel grid); a block is flat where the clean image,
  smoothed by a Gaussian of sigma SMOOTHING (its own grain aside), has a gradient below
  FLAT_GRADIENT grey levels per pixel everywhere in it;
- residual: the block minus its least-squares plane (slow shading is not a pattern);
- amplitude at a frequency: that of the sinusoid the residual's 2-D DFT holds there,
  c * |F(ky, kx)| / BLOCK^2 with c = 1 on a bin that is its own mirror (Nyquist) and 2 elsewhere;
- amplitude at period P: the root sum of squares over the frequencies (0, 1/P) (along x),
  (1/P, 0) (along y) and (1/P, +-1/P) (diagonals; one bin for P = 2), so a stripe or checker of
  amplitude a reads a; averaged over the flat blocks of the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from measr.evaluation.metrics import as_rgb, quantise

PERIODS = (2, 8)
BLOCK = 32  # a multiple of every period, so each falls on an exact DFT bin
SMOOTHING = 1.0  # Gaussian sigma (pixels) of the clean image before its gradient
FLAT_GRADIENT = 2.0  # grey levels per pixel: a smooth sky, a wall, not texture
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float64)


@dataclass(frozen=True)
class PeriodicPattern:
    """Amplitudes (grey levels) of the 2- and 8-pixel periodic components over `blocks` flat
    blocks of one image, or their mean over several images."""

    period2: float
    period8: float
    blocks: int

    def words(self) -> str:
        return f"{self.period2:.2f} / {self.period8:.2f}"

    @staticmethod
    def mean(patterns: Sequence[PeriodicPattern | None]) -> PeriodicPattern | None:
        """The mean over the images that have flat blocks (None if none has)."""
        found = [p for p in patterns if p is not None]
        if not found:
            return None
        return PeriodicPattern(
            float(np.mean([p.period2 for p in found])),
            float(np.mean([p.period8 for p in found])),
            sum(p.blocks for p in found),
        )


def grey_levels(image: np.ndarray) -> np.ndarray:
    """(H, W) float64 grey level, 0-255, of a float RGB (or gray) image in [0, 1], as saved."""
    return quantise(as_rgb(image)).astype(np.float64) @ _LUMA


def flat_blocks(clean: np.ndarray) -> list[tuple[int, int]]:
    """(top, left) of every BLOCK x BLOCK block that is flat in the clean image (module text)."""
    grey = grey_levels(clean)
    smooth = cv2.GaussianBlur(grey, (0, 0), SMOOTHING)
    gy, gx = np.gradient(smooth)
    steep = np.hypot(gx, gy)
    height, width = grey.shape
    return [
        (top, left)
        for top in range(0, height - BLOCK + 1, BLOCK)
        for left in range(0, width - BLOCK + 1, BLOCK)
        if steep[top : top + BLOCK, left : left + BLOCK].max() < FLAT_GRADIENT
    ]


def _plane_basis() -> np.ndarray:
    y, x = np.mgrid[0:BLOCK, 0:BLOCK].astype(np.float64)
    return np.stack([np.ones(BLOCK * BLOCK), x.ravel(), y.ravel()], axis=1)


_PLANE = _plane_basis()
_PLANE_PROJECTION = _PLANE @ np.linalg.pinv(_PLANE)


def _bins(period: int) -> list[tuple[int, int]]:
    """(ky, kx) DFT bins of period `period` along x, y and both diagonals, each once."""
    k = BLOCK // period
    return list(dict.fromkeys([(0, k), (k, 0), (k, k), (k, -k % BLOCK)]))


def block_amplitudes(block: np.ndarray) -> tuple[float, ...]:
    """Amplitude at each of PERIODS of one (BLOCK, BLOCK) grey block, its plane removed."""
    values = block.reshape(-1)
    residual = (values - _PLANE_PROJECTION @ values).reshape(BLOCK, BLOCK)
    spectrum = np.abs(np.fft.fft2(residual)) / BLOCK**2
    nyquist = BLOCK // 2
    amplitudes = []
    for period in PERIODS:
        squares = 0.0
        for ky, kx in _bins(period):
            own_mirror = ky in (0, nyquist) and kx in (0, nyquist)
            squares += ((1.0 if own_mirror else 2.0) * spectrum[ky, kx]) ** 2
        amplitudes.append(float(np.sqrt(squares)))
    return tuple(amplitudes)


def periodic_pattern(
    image: np.ndarray, clean: np.ndarray, blocks: Sequence[tuple[int, int]] | None = None
) -> PeriodicPattern | None:
    """Amplitudes at periods 2 and 8 in `image` over the blocks flat in `clean` (pass `blocks`
    from `flat_blocks(clean)` to reuse them); None when the clean image has no flat block."""
    if blocks is None:
        blocks = flat_blocks(clean)
    if not blocks:
        return None
    grey = grey_levels(image)
    per_block = np.array(
        [block_amplitudes(grey[top : top + BLOCK, left : left + BLOCK]) for top, left in blocks]
    )
    period2, period8 = per_block.mean(axis=0)
    return PeriodicPattern(float(period2), float(period8), len(blocks))
