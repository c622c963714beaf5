"""Row strips: the Restormer transformer block (`measr.model.backbone.TransformerBlock`) run in
horizontal strips of a few dozen rows instead of over the whole map at once, for inference.

The arithmetic is the paper's; only the order changes. At full resolution a block's widest
maps (the GDFN's 2 x 2.66 C hidden channels, MDTA's 3 C q/k/v channels) are several times the
size of the processor's caches, so the whole-map form streams each of them through memory
twice or more (write after the 1x1 convolution, read and write in the depthwise one, read in
the gate). A strip of the same maps fits in cache and is consumed while it is still there.
Measured: the GDFN of a 48-channel 256 x 256 map, compiled, 76 ms whole against 37 ms in
strips of 32 rows (docs/performance.md).

Every layer of the block is per pixel except the depthwise 3 x 3 convolutions, which reach
one row up and down, and the attention map, which sums over all pixels. So:

* pass 1 computes q, k, v strip by strip from the strip's rows plus one row of halo each side,
  adding up the (C/h x C/h) products q k^T and the squared norms of q and k; the attention map
  is formed from those sums, exactly as `channel_attention_map` forms it from whole maps.
  When the map is given (tiles sharing the whole image's context) q and k are not needed, and
  only the value channels of the projections are computed: a third of their work;
* pass 2 runs, strip by strip with the same halo, the attention's output projection, the
  residual, the second LayerNorm, the GDFN and its residual.

Halo rows are recomputed, not exchanged: 2 extra rows per strip (6 % at 32 rows). At the
image's top and bottom the strip's own zero padding is the map's, so the result equals the
whole-map form up to float summation order.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from measr.model.backbone import (
    MDTA,
    TransformerBlock,
    apply_channel_attention,
    attention_from_products,
)

# Halo of the block's local operations: the depthwise 3 x 3 convolutions reach one row.
HALO = 1

# Bytes of the widest map of one strip (the GDFN's hidden channels, float32). oneDNN's
# depthwise convolution slows down 4x once its map passes about 32 MiB (measured: 510 channels
# of 66 x 256 px, 18.6 ms, against 4 x 1.1 ms for four strips of 16 rows).
STRIP_BYTES = 8 * 2**20
MIN_STRIP_ROWS = 8


def strip_rows(width: int, channels: int, budget: int = STRIP_BYTES) -> int:
    """Rows per strip for a map `width` pixels wide whose widest intermediate has `channels`
    float32 channels: as many as fit `budget` bytes, at least MIN_STRIP_ROWS."""
    return max(MIN_STRIP_ROWS, budget // max(width * channels * 4, 1))


def strip_bounds(height: int, rows: int) -> list[tuple[int, int]]:
    """(start, stop) of consecutive strips of `rows` rows covering `height` rows."""
    return [(start, min(start + rows, height)) for start in range(0, height, rows)]


def halo_window(start: int, stop: int, height: int) -> tuple[int, int]:
    """The rows a strip's computation reads: start..stop widened by the halo, clipped to the map."""
    return max(start - HALO, 0), min(stop + HALO, height)


RowFunction = Callable[[int, int], Tensor]


def by_strips(compute: RowFunction, height: int, rows: int) -> Tensor:
    """Concatenate, over the strips, `compute(a, b)` evaluated on the strip's rows widened by
    the halo (clipped to the map) and cut back to the strip. `compute(a, b)` must return the
    rows a..b of a map whose row r depends only on the input rows r - HALO..r + HALO."""
    parts = []
    for start, stop in strip_bounds(height, rows):
        a, b = halo_window(start, stop, height)
        parts.append(compute(a, b)[:, :, start - a : stop - a])
    return torch.cat(parts, dim=2)


def value_projection(attn: MDTA, normed: Tensor) -> Tensor:
    """MDTA's v alone from the normalised input rows: the last third of the 1x1 and depthwise
    convolutions' channels (both act per channel group, so the slice is exact)."""
    dim = attn.project_out.in_channels
    v = F.conv2d(normed, attn.qkv.weight[2 * dim :], sliced_bias(attn.qkv.bias, 2 * dim))
    dw = attn.qkv_dwconv
    return F.conv2d(v, dw.weight[2 * dim :], sliced_bias(dw.bias, 2 * dim), padding=1, groups=dim)


def sliced_bias(bias: Tensor | None, start: int) -> Tensor | None:
    """bias[start:], or None for a convolution without bias."""
    return None if bias is None else bias[start:]


def attention_and_values(block: TransformerBlock, x: Tensor, rows: int) -> tuple[Tensor, Tensor]:
    """Pass 1: MDTA's attention map of x, from sums over strips, and its value map v."""
    attn = block.attn
    b, c, height, _ = x.shape
    heads = attn.heads
    per_head = (b, heads, c // heads, -1)
    dots = x.new_zeros(b, heads, c // heads, c // heads)
    q_squares = x.new_zeros(b, c)
    k_squares = x.new_zeros(b, c)
    values = []
    for start, stop in strip_bounds(height, rows):
        a, z = halo_window(start, stop, height)
        qkv = attn.qkv_dwconv(attn.qkv(block.norm1(x[:, :, a:z])))[:, :, start - a : stop - a]
        q, k, v = qkv.chunk(3, dim=1)
        dots = dots + q.reshape(per_head) @ k.reshape(per_head).transpose(-2, -1)
        q_squares = q_squares + q.square().sum(dim=(2, 3))
        k_squares = k_squares + k.square().sum(dim=(2, 3))
        values.append(v)
    norms = q_squares.sqrt(), k_squares.sqrt()
    attention = attention_from_products(dots, *norms, attn.temperature)
    return attention, torch.cat(values, dim=2)


class StripedTransformerBlock(TransformerBlock):
    """A `TransformerBlock` whose `branches` run in row strips (module docstring); it holds the
    very same parameters under the same names. For `eval()` only."""

    def __init__(self, block: TransformerBlock, budget: int = STRIP_BYTES) -> None:
        nn.Module.__init__(self)
        self.norm1, self.attn, self.norm2, self.ffn = (
            block.norm1,
            block.attn,
            block.norm2,
            block.ffn,
        )
        self.strip_bytes = budget

    def branches(self, x: Tensor, attention: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """`TransformerBlock.branches` in strips: same outputs, same attention map."""
        height, width = x.shape[2:]
        rows = strip_rows(width, self.ffn.dwconv.in_channels, self.strip_bytes)
        if height <= rows:
            return super().branches(x, attention)
        if attention is None:
            attention, v = attention_and_values(self, x, rows)
        else:
            v = by_strips(
                lambda a, z: value_projection(self.attn, self.norm1(x[:, :, a:z])), height, rows
            )
        shared = attention

        def both_branches(a: int, z: int) -> Tensor:
            y = x[:, :, a:z] + self.attn.project_out(apply_channel_attention(shared, v[:, :, a:z]))
            return y + self.ffn(self.norm2(y))

        return by_strips(both_branches, height, rows), attention


def stripe_blocks(model: nn.Module, budget: int = STRIP_BYTES) -> nn.Module:
    """Swap every transformer block for its striped form, in place; returns the model."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is TransformerBlock:
                setattr(parent, name, StripedTransformerBlock(child, budget))
    return model


__all__ = ["StripedTransformerBlock", "strip_rows", "stripe_blocks"]
