"""FD-MEE: frequency-decomposition multi-expert ensemble (MEASNet Sec. III-D).

After each decoder level's skip fusion, FD splits the features into a low band (a
content-adaptive low-pass filter) and a high band (the rest); each band goes through its own
MEE block, a mixture of low-rank experts chosen per image (after SeemoRe, Zamfir et al. 2024).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from measr.model.backbone import ChannelLayerNorm
from measr.model.context import (
    ForwardContext,
    global_stat,
    record_image_routing,
    run_with_global_stat,
)


class FrequencyDecomposition(nn.Module):
    """FD: global pool -> 1x1 conv -> norm -> softmax gives one k x k low-pass kernel per channel
    group and image; low = that filter applied depthwise, high = x - low.

    Fix: the public code normalises the pooled (B, C, 1, 1) tensor with BatchNorm, which fails for
    batch 1 in training and makes one image's output depend on the others'. GroupNorm, one group
    per kernel, is batch-independent.
    """

    def __init__(self, channels: int, groups: int, kernel: int) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"FD needs channels ({channels}) divisible by groups ({groups})")
        self.groups, self.kernel = groups, kernel
        self.to_kernels = nn.Conv2d(channels, groups * kernel**2, 1, bias=False)
        nn.init.kaiming_normal_(self.to_kernels.weight, mode="fan_out", nonlinearity="relu")
        self.norm = nn.GroupNorm(groups, groups * kernel**2)
        self.context_key = ""

    def low_pass_kernels(self, x: Tensor) -> Tensor:
        """(B, groups, k*k) kernels, each summing to one."""
        pooled = x.mean(dim=(2, 3), keepdim=True)
        logits = self.norm(self.to_kernels(pooled)).reshape(x.shape[0], self.groups, -1)
        return torch.softmax(logits.float(), dim=-1).to(x.dtype)

    def forward(self, x: Tensor, ctx: ForwardContext | None = None) -> tuple[Tensor, Tensor]:
        """(low, high) bands of x (B, C, H, W)."""
        kernels = global_stat(ctx, self.context_key, x.shape[0], lambda: self.low_pass_kernels(x))
        return self.bands(x, kernels)

    def bands(self, x: Tensor, kernels: Tensor) -> tuple[Tensor, Tensor]:
        """(low, high): x filtered depthwise by each image's (B, groups, k*k) kernels, reflect-
        padded, and the rest. Tensors in, tensors out: `measr.engine.acceleration` compiles it.
        One convolution per image keeps x's memory layout (folding the batch into the channels
        would copy a channels-last map to planar and back: 2x slower, measured at 512 px)."""
        b, c = x.shape[:2]
        per_channel = kernels.repeat_interleave(c // self.groups, dim=1).to(x.dtype)
        weights = per_channel.reshape(b, c, 1, self.kernel, self.kernel)
        pad = self.kernel // 2
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        low = torch.cat([F.conv2d(padded[i : i + 1], weights[i], groups=c) for i in range(b)])
        return low, x - low


class LowRankExpert(nn.Module):
    """One MEE expert of rank r: W3((W1 x) * (W2 key)), all 1x1 convs."""

    def __init__(self, channels: int, rank: int) -> None:
        super().__init__()
        self.down_x = nn.Conv2d(channels, rank, 1)
        self.down_key = nn.Conv2d(channels, rank, 1)
        self.up = nn.Conv2d(rank, channels, 1)

    def forward(self, x: Tensor, key: Tensor) -> Tensor:
        return self.up(self.down_x(x) * self.down_key(key))


class MixtureOfLowRankExperts(nn.Module):
    """Router (global average pool -> linear -> softmax) picks each image's top-k experts; the
    output is x + the weighted sum of the chosen experts (weights: the router's softmax).

    Fix: the public code squeezes the top-k index tensor, which only works for batch 1: a batch
    of images or tiles crashed or shared one image's experts. Here each image is routed on its
    own, and only the chosen experts are computed, on the images that chose them.
    """

    def __init__(self, channels: int, ranks: tuple[int, ...], top_k: int) -> None:
        super().__init__()
        self.experts = nn.ModuleList(LowRankExpert(channels, r) for r in ranks)
        self.router = nn.Linear(channels, len(ranks), bias=False)
        self.top_k = top_k
        self.context_key = ""
        self.routing_name = ""

    def route(self, x: Tensor) -> Tensor:
        """(B, E) routing probabilities from the pooled features."""
        return torch.softmax(self.router(x.mean(dim=(2, 3))).float(), dim=1)

    def choose(self, probs: Tensor) -> tuple[Tensor, Tensor]:
        """Each image's top-k (weights, experts) from its routing probabilities, (B, k) each."""
        weights, chosen = probs.topk(self.top_k, dim=1)
        return weights, chosen

    def forward(self, x: Tensor, key: Tensor, probs: Tensor) -> Tensor:
        """x + the chosen experts' weighted sum, given the routing probabilities (B, E) from
        `route` (or the whole image's, shared by tiles)."""
        weights, chosen = self.choose(probs)
        out = x
        for index, expert in enumerate(self.experts):
            images, slot = (chosen == index).nonzero(as_tuple=True)
            if images.numel() == 0:
                continue
            contribution = expert(x[images], key[images]) * weights[images, slot, None, None, None]
            out = out.index_add(0, images, contribution.to(x.dtype))
        return out


class StripedConv(nn.Module):
    """Depthwise 1xk then kx1 convolution (SeemoRe's striped conv)."""

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        pad = kernel // 2
        self.horizontal = nn.Conv2d(
            channels, channels, (1, kernel), padding=(0, pad), groups=channels
        )
        self.vertical = nn.Conv2d(
            channels, channels, (kernel, 1), padding=(pad, 0), groups=channels
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.vertical(self.horizontal(x))


class ContextCalibration(nn.Module):
    """Pooled-context calibration of the key: `steps` times a shared stride-4 depthwise conv
    (+GELU), then depthwise 3x3 + 1x1, upsampled back and added. Needs at least 4**steps pixels
    per side, which is where MEASNet's minimum input size comes from."""

    def __init__(self, channels: int, steps: int) -> None:
        super().__init__()
        self.steps = steps
        self.aggregate = nn.Sequential(
            nn.Conv2d(channels, channels, 4, stride=4, groups=channels), nn.GELU()
        )
        self.mix = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels),
            nn.Conv2d(channels, channels, 1),
        )

    def forward(self, key: Tensor) -> Tensor:
        pooled = key
        for _ in range(self.steps):
            pooled = self.aggregate(pooled)
        context = F.interpolate(self.mix(pooled), size=key.shape[-2:], mode="bilinear")
        return key + context


class MEE(nn.Module):
    """MEE block for one band: x + proj(MoLRE(striped(x'), calibrate(k))) with
    [x', k] = conv(LN(x)).

    Fix: the public code's unused second LayerNorm (`norm_2`) is gone.
    """

    def __init__(
        self, channels: int, ranks: tuple[int, ...], top_k: int, striped: int, steps: int
    ) -> None:
        super().__init__()
        self.norm = ChannelLayerNorm(channels, eps=1e-6)
        self.expand = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(channels, 2 * channels, 1),
        )
        self.spatial = nn.Sequential(StripedConv(channels, striped), nn.GELU())
        self.calibrate = ContextCalibration(channels, steps)
        self.mixture = MixtureOfLowRankExperts(channels, ranks, top_k)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor, ctx: ForwardContext | None = None) -> Tensor:
        mixture = self.mixture
        out, probs = run_with_global_stat(
            ctx, mixture.context_key, x.shape[0], lambda shared: self.branch(x, shared)
        )
        weights, chosen = mixture.choose(probs)
        record_image_routing(ctx, mixture.routing_name, chosen, weights)
        return out

    def branch(self, x: Tensor, probs: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The block's output and the routing probabilities used (the ones given, else x's own).
        Tensors in, tensors out: `measr.engine.acceleration` compiles this as one graph."""
        value, key = self.expand(self.norm(x)).chunk(2, dim=1)
        value = self.spatial(value)
        if probs is None:
            probs = self.mixture.route(value)
        return x + self.proj(self.mixture(value, self.calibrate(key), probs)), probs


class FDMEE(nn.Module):
    """FD-MEE: (low, high) = FD(x); each band through its own MEE; concat; 1x1 fusion.

    Fix: the public code's unused `lamb_l` / `lamb_h` parameters are gone.
    """

    def __init__(
        self,
        channels: int,
        ranks: tuple[int, ...],
        top_k: int,
        groups: int,
        kernel: int,
        striped: int,
        steps: int,
    ) -> None:
        super().__init__()
        self.split = FrequencyDecomposition(channels, groups, kernel)
        self.low_band = MEE(channels, ranks, top_k, striped, steps)
        self.high_band = MEE(channels, ranks, top_k, striped, steps)
        self.fuse = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, x: Tensor, ctx: ForwardContext | None = None) -> Tensor:
        low, high = self.split(x, ctx)
        return self.fuse(torch.cat([self.high_band(high, ctx), self.low_band(low, ctx)], dim=1))
