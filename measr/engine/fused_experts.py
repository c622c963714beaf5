"""Inference-only forms of MEASNet's expert layers: the same arithmetic as the paper's modules
in `measr.model.fd_mee` and `measr.model.stp_g_mese`, arranged for speed. `fuse_experts(model)`
swaps them in, in place.

They hold the very same parameters under the same names, so the state dict (and the weights
files) do not change; outputs agree with the plain modules to float rounding
(tests/test_acceleration.py). They are for `eval()` only: training keeps the plain modules.
Measured effects are in docs/performance.md.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from measr.model.fd_mee import LowRankExpert, MixtureOfLowRankExperts
from measr.model.stp_g_mese import PixelExperts


class FusedLowRankMixture(MixtureOfLowRankExperts):
    """MEE's mixture of low-rank experts as three 1x1 convolutions, for every image at once.

    The plain module loops over the experts and gathers the images that chose each one: a
    data-dependent shape (`nonzero`, a host sync) per expert, and a full-size copy of the map per
    chosen expert. Here the experts' down-projections are stacked into one conv (ranks
    2+3+4+5+6 = 20 output channels), a (B, 20) mask of router weights zeroes each image's
    unchosen experts, and one conv projects back up: sum over chosen i of
    g_i * W3_i((W1_i x) * (W2_i k)), exactly. The unchosen experts' channels are computed and
    multiplied by zero, about 2.5x the experts' own work, which is small next to a block's; the
    shapes are static, so `torch.compile` fuses it with the rest of the MEE block.
    """

    owner: Tensor

    def __init__(self, mixture: MixtureOfLowRankExperts) -> None:
        nn.Module.__init__(self)
        self.experts = mixture.experts
        self.router = mixture.router
        self.top_k = mixture.top_k
        self.context_key = mixture.context_key
        self.routing_name = mixture.routing_name
        ranks = torch.tensor([expert.down_x.out_channels for expert in self.low_rank_experts()])
        # The expert each stacked rank channel belongs to: (R,) indices into the experts.
        owner = torch.repeat_interleave(torch.arange(len(ranks)), ranks)
        self.register_buffer("owner", owner, persistent=False)

    def low_rank_experts(self) -> list[LowRankExpert]:
        """The experts, typed."""
        return [cast(LowRankExpert, expert) for expert in self.experts]

    def stacked(self, part: str) -> tuple[Tensor, Tensor]:
        """The experts' `part` convs (down_x or down_key) as one: (R, C, 1, 1), (R,)."""
        convs: list[nn.Conv2d] = [getattr(expert, part) for expert in self.low_rank_experts()]
        return torch.cat([c.weight for c in convs]), torch.cat([conv_bias(c) for c in convs])

    def forward(self, x: Tensor, key: Tensor, probs: Tensor) -> Tensor:
        weights, chosen = self.choose(probs)
        gates = torch.zeros_like(probs).scatter(1, chosen, weights).to(x.dtype)  # (B, E)
        down_x, bias_x = self.stacked("down_x")
        down_key, bias_key = self.stacked("down_key")
        experts = self.low_rank_experts()
        up = torch.cat([expert.up.weight for expert in experts], dim=1)  # (C, R, 1, 1)
        up_bias = torch.stack([conv_bias(expert.up) for expert in experts])  # (E, C)
        mask = gates[:, self.owner, None, None]  # (B, R, 1, 1)
        low_rank = F.conv2d(x, down_x, bias_x) * F.conv2d(key, down_key, bias_key) * mask
        return x + F.conv2d(low_rank, up) + (gates @ up_bias)[:, :, None, None]


def conv_bias(conv: nn.Conv2d) -> Tensor:
    """A convolution's bias (every expert conv has one)."""
    assert conv.bias is not None
    return conv.bias


class DenseGatedPixelExperts(PixelExperts):
    """STP-G-MESE's pixel experts without a host synchronisation, for GPUs.

    The plain module computes only each pixel's k chosen experts, which needs the group sizes on
    the host (`.tolist()`): the GPU queue drains at every encoder level. Here all experts run on
    all pixels as two wide matmuls, and the hidden units of unchosen experts are multiplied by a
    zero gate: n/k = 3x the experts' work, no sync, static shapes. On CPU the sparse form is
    3-4x faster (measured), so `fuse_experts` uses this one only where asked (CUDA).
    """

    def __init__(self, experts: PixelExperts) -> None:
        nn.Module.__init__(self)
        self.w1, self.b1, self.w2, self.b2 = experts.w1, experts.b1, experts.w2, experts.b2

    def forward(self, tokens: Tensor, experts: Tensor, gates: Tensor) -> Tensor:
        count, dim, hidden = self.w1.shape
        dense = torch.zeros(tokens.shape[0], count, dtype=tokens.dtype, device=tokens.device)
        dense.scatter_(1, experts, gates.to(tokens.dtype))  # (N, E): 0 for unchosen experts
        w1 = self.w1.permute(1, 0, 2).reshape(dim, count * hidden)
        w2 = self.w2.reshape(count * hidden, dim)
        hidden_units = F.gelu(torch.addmm(self.b1.reshape(-1), tokens, w1))
        gated = hidden_units.view(-1, count, hidden) * dense[:, :, None]
        return torch.addmm(dense @ self.b2, gated.view(-1, count * hidden), w2)


def fuse_experts(model: nn.Module, *, sync_free: bool = False) -> nn.Module:
    """Swap the inference forms in, in place: the fused low-rank mixture always, the dense-gated
    pixel experts when `sync_free` (GPUs). Returns the model."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is MixtureOfLowRankExperts:
                setattr(parent, name, FusedLowRankMixture(child))
            elif sync_free and type(child) is PixelExperts:
                setattr(parent, name, DenseGatedPixelExperts(child))
    return model


__all__ = ["DenseGatedPixelExperts", "FusedLowRankMixture", "fuse_experts"]
