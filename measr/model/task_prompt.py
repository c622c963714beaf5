"""Task prompt (MEASNet Sec. III-B): a 'what degradation is this' vector learned from the
degraded image itself, with no user hint."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from measr.model.context import ForwardContext, global_stat


class TaskPrompt(nn.Module):
    """Conv net -> global average pool -> logits over a learned dictionary of atoms -> softmax ->
    weighted sum of atoms -> GELU. One prompt per image; the atom weights are inspectable."""

    def __init__(self, in_channels: int, atoms: int, prompt_dim: int, hidden: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, stride=3),
            nn.LeakyReLU(0.1),
            nn.Conv2d(hidden, hidden, 3, stride=3),
            nn.LeakyReLU(0.1),
            nn.Conv2d(hidden, hidden, 1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(hidden, hidden, 1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(hidden, 32, 1),
        )
        self.to_logits = nn.Linear(32, atoms)
        self.dictionary = nn.Parameter(torch.randn(atoms, prompt_dim))
        self.context_key = ""

    def pooled_features(self, image: Tensor) -> Tensor:
        """Mean of the conv features over the image, (B, 32). The conv net is local (stride 9
        overall), so this mean can also be accumulated over tiles aligned to 9 pixels."""
        return self.features(image).mean(dim=(2, 3))

    def atom_weights(self, pooled: Tensor) -> Tensor:
        """Softmax over the dictionary's atoms, (B, atoms)."""
        return torch.softmax(self.to_logits(pooled), dim=-1)

    def forward(self, image: Tensor, ctx: ForwardContext | None = None) -> tuple[Tensor, Tensor]:
        """The prompt (B, prompt_dim) and the atom weights (B, atoms) of each image."""
        batch = image.shape[0]
        weights = global_stat(
            ctx, self.context_key, batch, lambda: self.atom_weights(self.pooled_features(image))
        )
        return F.gelu(weights @ self.dictionary), weights
