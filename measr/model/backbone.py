"""The Restormer backbone that MEASNet builds on (Zamir et al., CVPR 2022, Fig. 2):
LayerNorm, multi-Dconv-head transposed attention (MDTA), gated-Dconv feed-forward (GDFN),
pixel-(un)shuffle resampling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from measr.model.context import ForwardContext, run_with_global_stat


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map, with bias (Restormer's 'WithBias')."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


def spatial_norm(x: Tensor) -> Tensor:
    """The L2 norm of each channel of x (B, C, H, W) over its pixels, (B, C), reduced in the
    order x's memory format makes fast (a strided norm over (H, W) of a channels-last map is
    25x slower than this sum of squares, measured at 48 x 256 x 256)."""
    if x.is_contiguous():
        return torch.linalg.vector_norm(x.flatten(2), dim=-1)
    return x.square().sum(dim=(2, 3)).sqrt()


def channel_attention_map(q: Tensor, k: Tensor, heads: int, temperature: Tensor) -> Tensor:
    """Restormer Eq. 2's attention map across channels: softmax(norm(Q) norm(K)^T * t), one
    (C/h x C/h) map per head, (B, h, C/h, C/h). It sees the whole input: a global statistic."""
    b, c = q.shape[:2]
    # cos(q_i, k_j) = q_i . k_j / (|q_i| |k_j|), as F.normalize(q) @ F.normalize(k)^T with the
    # norms clamped at 1e-12 as it does, without writing normalised copies of q and k: only the
    # small C/h x C/h product is divided. (q and k are channels-last here: ChannelLayerNorm's
    # output is a permuted view.)
    if q.dtype == torch.float16:
        # float16 tops out at 65504: the products summed over a tile's pixels and the norms'
        # sums of squares overflow it (NaN maps with trained weights, seen on an H100 with
        # `--half`), so the map is formed in float32 and only the small map is cast back.
        # bfloat16 has float32's range and stays as it is.
        return channel_attention_map(q.float(), k.float(), heads, temperature.float()).half()
    per_head = (b, heads, c // heads, -1)
    dots = q.reshape(per_head) @ k.reshape(per_head).transpose(-2, -1)
    return attention_from_products(dots, spatial_norm(q), spatial_norm(k), temperature)


def attention_from_products(
    dots: Tensor, q_norm: Tensor, k_norm: Tensor, temperature: Tensor
) -> Tensor:
    """The attention map softmax(q_i . k_j / (|q_i| |k_j|) * t) from the per-head products
    (B, h, C/h, C/h) and the channels' norms (B, C), clamped at 1e-12 as F.normalize does."""
    b, heads, n, _ = dots.shape
    q_norm = q_norm.clamp_min(1e-12).reshape(b, heads, n, 1)
    k_norm = k_norm.clamp_min(1e-12).reshape(b, heads, 1, n)
    return torch.softmax(dots / (q_norm * k_norm) * temperature, dim=-1)


def apply_channel_attention(attention: Tensor, v: Tensor) -> Tensor:
    """Mix the channels of v (B, C, H, W) by the per-head map: cost linear in pixels."""
    b, c, h, w = v.shape
    heads = attention.shape[1]
    return (attention @ v.reshape(b, heads, c // heads, h * w)).reshape(b, c, h, w)


class MDTA(nn.Module):
    """Multi-Dconv-head transposed self-attention (Restormer Sec. 3.1)."""

    def __init__(self, dim: int, heads: int, bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)
        self.context_key = ""

    def forward(self, x: Tensor, attention: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The output and the attention map it used: the one given (the whole image's, shared
        by tiles) or, when None, the one computed from x."""
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        if attention is None:
            attention = channel_attention_map(q, k, self.heads, self.temperature)
        return self.project_out(apply_channel_attention(attention, v)), attention


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network (Restormer Sec. 3.2): GELU(W1 x) * (W2 x), depthwise 3x3."""

    def __init__(self, dim: int, expansion: float, bias: bool) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class TransformerBlock(nn.Module):
    """x + MDTA(LN(x)), then x + GDFN(LN(x))."""

    def __init__(self, dim: int, heads: int, expansion: float, bias: bool) -> None:
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim)
        self.attn = MDTA(dim, heads, bias)
        self.norm2 = ChannelLayerNorm(dim)
        self.ffn = GDFN(dim, expansion, bias)

    def forward(self, x: Tensor, ctx: ForwardContext | None = None) -> Tensor:
        return run_with_global_stat(
            ctx, self.attn.context_key, x.shape[0], lambda attention: self.branches(x, attention)
        )[0]

    def branches(self, x: Tensor, attention: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Both residual branches, and the attention map used (the one given, else x's own).
        Tensors in, tensors out: `measr.engine.acceleration` compiles this as one graph."""
        out, attention = self.attn(self.norm1(x), attention)
        x = x + out
        return x + self.ffn(self.norm2(x)), attention


class TransformerStage(nn.Module):
    """A run of transformer blocks at one resolution, optionally with activation checkpointing
    (recompute in backward instead of storing: about 4x less training memory per block)."""

    def __init__(self, count: int, dim: int, heads: int, expansion: float, bias: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, expansion, bias) for _ in range(count)
        )
        self.checkpointing = False

    def forward(self, x: Tensor, ctx: ForwardContext | None = None) -> Tensor:
        for block in self.blocks:
            if self.checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, ctx, use_reentrant=False)
            else:
                x = block(x, ctx)
        return x


class Downsample(nn.Module):
    """Halve the resolution, double the channels: 3x3 conv to C/2, pixel-unshuffle by 2."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(dim, dim // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """Double the resolution, halve the channels: 3x3 conv to 2C, pixel-shuffle by 2."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(dim, dim * 2, 3, padding=1, bias=False), nn.PixelShuffle(2)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)
