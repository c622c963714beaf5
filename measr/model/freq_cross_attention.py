"""Frequency-aware cross-attention blocks (MEASNet Sec. III-E): the degraded input image is
re-injected at the latent and decoder levels 3 and 2, split into low and high frequencies by a
learned FFT mask, each band cross-attending to the features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from measr.model.backbone import apply_channel_attention, channel_attention_map
from measr.model.context import ForwardContext, global_stat, run_with_global_stat


class CrossAttention(nn.Module):
    """Transposed (channel) cross-attention: queries from one map, keys and values from another."""

    def __init__(self, dim: int, heads: int, bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.q = nn.Conv2d(dim, dim, 1, bias=bias)
        self.q_dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=bias)
        self.kv = nn.Conv2d(dim, dim * 2, 1, bias=bias)
        self.kv_dwconv = nn.Conv2d(dim * 2, dim * 2, 3, padding=1, groups=dim * 2, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)
        self.context_key = ""

    def forward(self, query: Tensor, source: Tensor, ctx: ForwardContext | None = None) -> Tensor:
        return run_with_global_stat(
            ctx,
            self.context_key,
            query.shape[0],
            lambda attention: self.attend(query, source, attention),
        )[0]

    def attend(
        self, query: Tensor, source: Tensor, attention: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """The output and the attention map used (the one given, else the inputs' own).
        Tensors in, tensors out: `measr.engine.acceleration` compiles this as one graph."""
        q = self.q_dwconv(self.q(query))
        k, v = self.kv_dwconv(self.kv(source)).chunk(2, dim=1)
        if attention is None:
            attention = channel_attention_map(q, k, self.heads, self.temperature)
        return self.project_out(apply_channel_attention(attention, v)), attention


class SoftFrequencySplit(nn.Module):
    """Split a map into low and high frequencies with a soft rectangular low-pass mask on its FFT;
    the cut-offs (vertical, horizontal) are learned rates of the global context.

    Fixes: the public code's mask half-size is `(H // 128) * rate` bins, empty for every map under
    128 px, so its low band was identically zero. Here the cut-off is a fraction of the spectrum
    (`rate * max_cutoff` cycles per pixel, resolution-independent) and the mask is a smooth
    sigmoid of the frequency, so the rates receive a gradient (the public code's `.int()` cut it).
    The public code also took abs() of the inverse FFT, flipping the sign of negative features;
    with a symmetric real mask the band is real, and high = x - low exactly.
    """

    def __init__(self, dim: int, max_cutoff: float, softness: float) -> None:
        super().__init__()
        self.rates = nn.Sequential(
            nn.Conv2d(dim, max(dim // 8, 1), 1, bias=False),
            nn.GELU(),
            nn.Conv2d(max(dim // 8, 1), 2, 1, bias=False),
        )
        self.max_cutoff, self.softness = max_cutoff, softness
        self.context_key = ""

    def cutoffs(self, x: Tensor) -> Tensor:
        """(B, 2) cut-offs in cycles per pixel, in (0, max_cutoff)."""
        rates = torch.sigmoid(self.rates(x.mean(dim=(2, 3), keepdim=True)).flatten(1).float())
        return rates * self.max_cutoff

    def mask(self, cutoffs: Tensor, height: int, width: int) -> Tensor:
        """(B, 1, H, W//2+1) soft low-pass mask on the rfft2 grid."""
        fy = torch.fft.fftfreq(height, device=cutoffs.device).abs()
        fx = torch.fft.rfftfreq(width, device=cutoffs.device)
        pass_y = torch.sigmoid((cutoffs[:, 0, None] - fy) / self.softness)
        pass_x = torch.sigmoid((cutoffs[:, 1, None] - fx) / self.softness)
        return (pass_y[:, :, None] * pass_x[:, None, :])[:, None]

    def forward(self, x: Tensor, ctx: ForwardContext | None = None) -> tuple[Tensor, Tensor]:
        """(low, high) bands of x (B, C, H, W)."""
        h, w = x.shape[-2:]
        cutoffs = global_stat(ctx, self.context_key, x.shape[0], lambda: self.cutoffs(x))
        spectrum = torch.fft.rfft2(x.float(), norm="ortho")
        low = torch.fft.irfft2(spectrum * self.mask(cutoffs, h, w), s=(h, w), norm="ortho")
        low = low.to(x.dtype)
        return low, x - low


class SpatialModulation(nn.Module):
    """Spatial attention from channel max and mean (7x7 conv, sigmoid), (B, 1, H, W)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        stats = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(stats))


class ChannelModulation(nn.Module):
    """Channel attention from global average and max pooling through a shared MLP, (B, C, 1, 1)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        hidden = max(dim // 16, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(dim, hidden, 1, bias=False), nn.ReLU(), nn.Conv2d(hidden, dim, 1, bias=False)
        )
        self.context_key = ""

    def forward(self, x: Tensor, ctx: ForwardContext | None = None) -> Tensor:
        def weights() -> Tensor:
            avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
            peak = self.mlp(x.amax(dim=(2, 3), keepdim=True))
            return torch.sigmoid(avg + peak)

        return global_stat(ctx, self.context_key, x.shape[0], weights)


class FrequencyModulation(nn.Module):
    """Merge the bands: low * spatial(high) + high * channel(low), then a 1x1 conv."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.spatial = SpatialModulation()
        self.channel = ChannelModulation(dim)
        self.conv = nn.Conv2d(dim, dim, 1)

    def forward(self, low: Tensor, high: Tensor, ctx: ForwardContext | None = None) -> Tensor:
        return self.conv(low * self.spatial(high) + high * self.channel(low, ctx))


class FrequencyCrossAttention(nn.Module):
    """Frequency-aware cross-attention block: embed the resized input image, split it into
    frequency bands, let each band attend to the features, merge, let the features attend to the
    merge, and add the result with a learned scale (alpha, initialised at 0).

    Fix: the public block's `initial_conv` and `score_generator` were never called; they are gone.
    """

    def __init__(
        self, dim: int, heads: int, bias: bool, in_channels: int, max_cutoff: float, softness: float
    ) -> None:
        super().__init__()
        self.embed = nn.Conv2d(in_channels, dim, 3, padding=1, bias=False)
        self.split = SoftFrequencySplit(dim, max_cutoff, softness)
        self.attend_low = CrossAttention(dim, heads, bias)
        self.attend_high = CrossAttention(dim, heads, bias)
        self.modulate = FrequencyModulation(dim)
        self.attend_merged = CrossAttention(dim, heads, bias)
        self.alpha = nn.Parameter(torch.zeros(dim, 1, 1))
        self.beta = nn.Parameter(torch.ones(dim, 1, 1))

    def forward(self, image: Tensor, features: Tensor, ctx: ForwardContext | None = None) -> Tensor:
        resized = F.interpolate(
            image, size=features.shape[-2:], mode="bilinear", align_corners=False
        )
        low, high = self.split(self.embed(resized), ctx)
        merged = self.modulate(
            self.attend_low(low, features, ctx), self.attend_high(high, features, ctx), ctx
        )
        out = self.attend_merged(features, merged, ctx)
        return out * self.alpha + features * self.beta
