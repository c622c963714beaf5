"""Task prompt (MEASNet Sec. III-B): a 'what degradation is this' vector learned from the
degraded image itself, with no user hint.

measr departs from the paper here, on purpose: learned only through the restoration loss, the
prompt of measr's first weights collapsed (its softmax over atoms uniform on every input), so the
routers that read it learned nothing from it. With `kinds` configured, the atoms are divided
among kinds of damage (atom a belongs to kind a mod K) and the probability of a kind is the
total weight of its atoms: training supervises that with each synthetic sample's known damage,
and a linear head on the same pooled features estimates the Gaussian noise level. Inference
stays blind: the image is all the prompt sees.

The paper pools the conv features by their mean over the image. A mean of local (9 px)
features cannot tell a low-contrast photo (haze) from one whose edges are soft (blur), nor
a texture that is everywhere (rain streaks) from one that varies with the content: with
`pooling="mean+std"` the features' standard deviation over the image joins their mean. Both
are sums over cells, so they still accumulate exactly over strips of a large photo.

The paper's conv net reads each cell through disjoint 3x3 patches (stride 3), which alias the
one-pixel streaks of light rain. With `fine=True` a stride-1 3x3 convolution reads every
pixel of a cell first (zero-padded at the cell's border, so that each cell is still read on its
own and the features still accumulate exactly over strips).

A rain streak is longer than a cell, and light rain and fine texture look alike inside one. With
`context=True` each cell's features also see its eight neighbours (a 3x3 convolution over the
grid of cells, added to the cell's own features; it starts at zero, so weights without it read
the same). The outermost ring of cells has no full neighbourhood and is not pooled; strips of a
large photo then overlap by one cell above and below (`context_cells`), and still add up
exactly.

The atoms' softmax names one kind, but damage often comes together (a night photo is dark and
noisy). With `presence=True` a head on the same pooled features (linear, or with
`presence_hidden` units one hidden layer) gives each kind its own logit, read through a
sigmoid: the probability that the kind is present, independent of the others ('clean': none
is). It feeds nothing the network restores with, so it can be fitted alone on frozen features
(`measr.training.presence`) without changing a restored pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from measr.model.context import ForwardContext, global_stat

# The conv net reads non-overlapping cells of this many pixels a side (two 3x3 convolutions of
# stride 3, then 1x1 convolutions), so the mean of its features over an image is a mean over
# cells, and can be accumulated over strips of the image whose heights are multiples of it.
PROMPT_CELL = 9
# The noise-level head predicts sigma / NOISE_SCALE (sigma on the 0-255 scale).
NOISE_SCALE = 50.0
FEATURES = 32
# Channels of the fine (stride-1) layer: few, since it runs at every pixel.
FINE_CHANNELS = 16


POOLINGS = ("mean", "mean+std")


@dataclass
class FeatureMoments:
    """Sums over cells of the prompt's conv features (B, 32) and of their squares, and the
    number of cells; moments of strips of an image add up to the image's."""

    total: Tensor
    squares: Tensor
    cells: int

    def __add__(self, other: FeatureMoments) -> FeatureMoments:
        return FeatureMoments(
            self.total + other.total, self.squares + other.squares, self.cells + other.cells
        )


@dataclass
class PromptReading:
    """What the prompt read off each image of a batch."""

    atom_weights: Tensor  # (B, atoms): the softmax over the dictionary's atoms
    kind_log_probabilities: Tensor | None  # (B, kinds), when the prompt names kinds of damage
    noise_sigma: Tensor | None  # (B,): estimated Gaussian noise sigma, 0-255 scale
    kinds: tuple[str, ...] = ()  # the names of the kinds, in the order of their probabilities
    # (B, kinds) logits of each kind's presence, independent of the others, with a presence head
    presence_logits: Tensor | None = None

    @property
    def presence_probabilities(self) -> Tensor | None:
        """(B, kinds) probability that each kind of damage is present, or None."""
        logits = self.presence_logits
        return None if logits is None else torch.sigmoid(logits)

    @property
    def kind_probabilities(self) -> Tensor | None:
        """(B, kinds) probabilities of each kind of damage, or None."""
        logp = self.kind_log_probabilities
        return None if logp is None else logp.exp()


class TaskPrompt(nn.Module):
    """Conv net -> global average pool -> logits over a learned dictionary of atoms -> softmax ->
    weighted sum of atoms -> GELU. One prompt per image; the atom weights are inspectable, and,
    with `kinds`, they name the damage (see the module's docstring)."""

    def __init__(
        self,
        in_channels: int,
        atoms: int,
        prompt_dim: int,
        hidden: int,
        kinds: tuple[str, ...] = (),
        pooling: str = "mean",
        fine: bool = False,
        context: bool = False,
        presence: bool = False,
        presence_hidden: int = 0,
    ) -> None:
        super().__init__()
        if kinds and len(kinds) > atoms:
            raise ValueError(f"{len(kinds)} kinds of damage need at least as many atoms")
        if pooling not in POOLINGS:
            raise ValueError(f"prompt pooling must be one of {POOLINGS}, not '{pooling}'")
        self.pooling = pooling
        pooled = FEATURES * (2 if pooling == "mean+std" else 1)
        self.fine = (
            nn.Sequential(nn.Conv2d(in_channels, FINE_CHANNELS, 3, padding=1), nn.LeakyReLU(0.1))
            if fine
            else None
        )
        self.features = nn.Sequential(
            nn.Conv2d(FINE_CHANNELS if fine else in_channels, hidden, 3, stride=3),
            nn.LeakyReLU(0.1),
            nn.Conv2d(hidden, hidden, 3, stride=3),
            nn.LeakyReLU(0.1),
            nn.Conv2d(hidden, hidden, 1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(hidden, hidden, 1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(hidden, FEATURES, 1),
        )
        self.context: nn.Sequential | None = None
        if context:
            added = nn.Conv2d(hidden, FEATURES, 1)
            nn.init.zeros_(added.weight)  # the identity until trained
            assert added.bias is not None
            nn.init.zeros_(added.bias)
            self.context = nn.Sequential(nn.Conv2d(FEATURES, hidden, 3), nn.LeakyReLU(0.1), added)
        # Cells of context a strip needs above and below the cells it pools.
        self.context_cells = 1 if context else 0
        self.to_logits = nn.Linear(pooled, atoms)
        self.dictionary = nn.Parameter(torch.randn(atoms, prompt_dim))
        self.kinds = kinds
        self.noise_level = nn.Linear(pooled, 1) if "noise" in kinds else None
        if presence and not kinds:
            raise ValueError("a presence head needs kinds of damage")
        self.presence: nn.Module | None = None
        if presence:
            self.presence = (
                nn.Sequential(
                    nn.Linear(pooled, presence_hidden),
                    nn.GELU(),
                    nn.Linear(presence_hidden, len(kinds)),
                )
                if presence_hidden
                else nn.Linear(pooled, len(kinds))
            )
        # (kinds, atoms): 0 where the atom belongs to the kind, -inf elsewhere.
        membership = torch.full((len(kinds), atoms), float("-inf"))
        for atom in range(atoms if kinds else 0):
            membership[atom % len(kinds), atom] = 0.0
        self.register_buffer("kind_mask", membership, persistent=False)
        self.context_key = ""

    def cell_grid(self, image: Tensor) -> Tensor:
        """The conv features of each whole cell of the image, (B, 32, rows, cols)."""
        if self.fine is None:
            return self.features(image)
        batch, channels, height, width = image.shape
        rows, cols = height // PROMPT_CELL, width // PROMPT_CELL
        cells = (
            image[:, :, : rows * PROMPT_CELL, : cols * PROMPT_CELL]
            .reshape(batch, channels, rows, PROMPT_CELL, cols, PROMPT_CELL)
            .permute(0, 2, 4, 1, 3, 5)
            .reshape(batch * rows * cols, channels, PROMPT_CELL, PROMPT_CELL)
        )
        features = self.features(self.fine(cells)).reshape(batch, rows, cols, FEATURES)
        return features.permute(0, 3, 1, 2)

    def cell_features(self, image: Tensor) -> Tensor:
        """The features of each pooled cell, (B, cells, 32): every whole cell, or with context
        every cell with all eight neighbours, its features plus what the neighbourhood adds."""
        grid = self.cell_grid(image)
        if self.context is not None:
            if min(grid.shape[-2:]) < 3:  # no cell has all its neighbours
                return grid.new_zeros(grid.shape[0], 0, FEATURES)
            grid = grid[:, :, 1:-1, 1:-1] + self.context(grid)
        return grid.flatten(2).transpose(1, 2)

    def feature_moments(self, image: Tensor) -> FeatureMoments:
        """Sums of the conv features and of their squares over the image's cells (in float64:
        the standard deviation subtracts two large sums, and strips must add up exactly)."""
        features = self.cell_features(image).double()
        return FeatureMoments(features.sum(dim=1), features.square().sum(dim=1), features.shape[1])

    def pool(self, moments: FeatureMoments) -> Tensor:
        """The pooled features (B, 32), or (B, 64) with their standard deviation."""
        mean = moments.total / moments.cells
        if self.pooling == "mean":
            return mean
        variance = (moments.squares / moments.cells - mean.square()).clamp_min(0)
        return torch.cat([mean, (variance + 1e-8).sqrt()], dim=1)

    def pooled_features(self, image: Tensor) -> Tensor:
        """The image's pooled features. The conv net is local (cells of PROMPT_CELL pixels), so
        they can also be accumulated over strips of the image (`feature_moments`, `pool`)."""
        return self.pool(self.feature_moments(image)).to(image.dtype)

    def read(self, pooled: Tensor) -> PromptReading:
        """The atom weights, kind probabilities, noise level and presence logits of pooled
        features (B, 32)."""
        logits = self.to_logits(pooled).float()
        kind_logp = None
        if self.kinds:
            grouped = torch.logsumexp(logits[:, None, :] + self.kind_mask, dim=-1)
            kind_logp = grouped - torch.logsumexp(logits, dim=-1, keepdim=True)
        sigma = None
        if self.noise_level is not None:
            sigma = self.noise_level(pooled).float()[:, 0] * NOISE_SCALE
        presence = None if self.presence is None else self.presence(pooled).float()
        return PromptReading(torch.softmax(logits, dim=-1), kind_logp, sigma, self.kinds, presence)

    def forward(
        self, image: Tensor, ctx: ForwardContext | None = None
    ) -> tuple[Tensor, PromptReading]:
        """The prompt (B, prompt_dim) and what it read off each image. In a shared context the
        pooled features are the global statistic: the whole image's, accumulated at full
        resolution, so every tile's prompt is the whole photo's."""
        batch = image.shape[0]
        pooled = global_stat(ctx, self.context_key, batch, lambda: self.pooled_features(image))
        reading = self.read(pooled)
        weights = reading.atom_weights.to(self.dictionary.dtype)
        return F.gelu(weights @ self.dictionary), reading
