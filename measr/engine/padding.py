"""Padding to what the network needs, and back: the output always has the input's size. A photo
is also framed by a mirrored margin, so its outer rows are restored like its interior."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from measr.errors import ExitCode, MeasrError
from measr.model import InputRequirements

T = TypeVar("T", np.ndarray, Tensor)


@dataclass(frozen=True)
class PadInfo:
    """How much was added below and to the right of an image, so `unpad` can remove it."""

    height: int
    width: int
    bottom: int
    right: int


def padded_length(length: int, requirements: InputRequirements) -> int:
    """The smallest side >= `length` that is a size multiple and at least the minimum size."""
    multiple = requirements.size_multiple
    rounded = -(-length // multiple) * multiple
    return max(rounded, -(-requirements.min_size // multiple) * multiple)


# An image thinner than the network's smallest input is padded up to it. Past this many times
# its own pixels, and a megapixel of work, the padding is nearly all the cost: a 65535 x 1 strip
# computed 4.5 MP, 69 times its size, and ran for over ten minutes (issue 36, case 18).
MAX_PADDING_FACTOR = 16
PADDING_FREE_PIXELS = 2**20


def check_not_too_thin(height: int, width: int, requirements: InputRequirements) -> None:
    """Refuse an image whose padding to the network's needs would be nearly all of its cost."""
    padded_h, padded_w = padded_length(height, requirements), padded_length(width, requirements)
    padded = padded_h * padded_w
    if padded <= PADDING_FREE_PIXELS or padded <= MAX_PADDING_FACTOR * height * width:
        return
    raise MeasrError(
        f"the image is {width} x {height} px: too thin to restore (padded to the network's "
        f"{requirements.min_size} px it would cost {padded / (height * width):.0f} times its "
        "pixels)",
        f"restore images at least {-(-requirements.min_size // MAX_PADDING_FACTOR)} px on each "
        "side",
        ExitCode.INPUT,
    )


def pad_to_size(x: Tensor, height: int, width: int) -> Tensor:
    """Extend (B, C, h, w) to (B, C, height, width) at the bottom and right: reflect where the
    image is large enough, replicate where it is not (reflect needs pad < side)."""
    bottom, right = height - x.shape[-2], width - x.shape[-1]
    if bottom == 0 and right == 0:
        return x
    # Reflect beyond a small side in steps, each reflecting at most side - 1 pixels, until the
    # image is too small to reflect at all (a side of 1 px); replicate covers the rest.
    while bottom or right:
        step_bottom = min(bottom, x.shape[-2] - 1)
        step_right = min(right, x.shape[-1] - 1)
        if step_bottom == 0 and step_right == 0:
            return F.pad(x, (0, right, 0, bottom), mode="replicate")
        x = F.pad(x, (0, step_right, 0, step_bottom), mode="reflect")
        bottom, right = bottom - step_bottom, right - step_right
    return x


def pad_to_requirements(x: Tensor, requirements: InputRequirements) -> tuple[Tensor, PadInfo]:
    """Pad (B, C, H, W) at the bottom and right to the network's size multiple and minimum.

    Padding only at the far sides keeps pixel (0, 0) at the origin, so the network's
    down-sampling grid is the same for a whole image and for tiles cut from it."""
    height, width = x.shape[-2:]
    padded = pad_to_size(x, padded_length(height, requirements), padded_length(width, requirements))
    info = PadInfo(height, width, padded.shape[-2] - height, padded.shape[-1] - width)
    return padded, info


def unpad(x: Tensor, info: PadInfo) -> Tensor:
    """Crop a padded (B, C, H', W') result back to the original (B, C, H, W)."""
    return x[..., : info.height, : info.width]


def with_edge_margin(pixels: np.ndarray, margin: int) -> np.ndarray:
    """The (H, W, C) image mirrored `margin` pixels beyond each of its four edges,
    (H + 2m, W + 2m, C): the network then sees image-like content, not zeros, around the
    photo's outer rows (`InputRequirements.edge_margin`). Sides shorter than the margin are
    mirrored back and forth."""
    if margin <= 0:
        return pixels
    return np.pad(pixels, ((margin, margin), (margin, margin), (0, 0)), mode="reflect")


def without_edge_margin(pixels: T, margin: int) -> T:
    """Crop what `with_edge_margin` added from an (H + 2m, W + 2m, ...) array or tensor."""
    if margin <= 0:
        return pixels
    return pixels[margin:-margin, margin:-margin]
