"""Colour correction by damage (measr's addition; not in the paper).

measr's weights shift colours in a way that depends on the damage: dehazed photos turn green
(Lab a* -4.9 on the validation haze), brightened low-light photos lose red (R -13.5 of 255),
the same on every photo of a task (docs/results/colour-shift.md). The prompt names the damage,
so the correction is chosen by it: each kind of damage has a gain and an offset per colour
channel, and an image's are the kinds' weighted by their probabilities,

    restored' = restored * (1 + sum_k p_k gain_k) + sum_k p_k offset_k.

It is one gain and one offset per channel for the whole image, read off the whole photo's
prompt, so the tiles of a large photo get the same correction. Both start at zero (the
identity); `measr.training.colour` fits them by least squares on degraded training photos.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ColourCorrection(nn.Module):
    """A per-image gain and offset per channel, weighted by the probabilities of the kinds of
    damage the prompt names."""

    def __init__(self, kinds: int, channels: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.zeros(kinds, channels))
        self.offset = nn.Parameter(torch.zeros(kinds, channels))

    def forward(self, restored: Tensor, kind_probabilities: Tensor) -> Tensor:
        """`restored` (B, C, H, W) corrected by the kinds' probabilities (B, kinds)."""
        p = kind_probabilities.to(self.gain.dtype)
        gain = (p @ self.gain).to(restored.dtype)[:, :, None, None]
        offset = (p @ self.offset).to(restored.dtype)[:, :, None, None]
        return restored * (1 + gain) + offset
