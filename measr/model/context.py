"""What a forward pass can record and share besides the image: the routing record and the
global context.

Two things ride along one optional `ForwardContext` argument, so that a plain forward
(`ctx=None`) pays nothing for them:

* the **routing record**: which experts each pixel, image and band used (the product's window
  into the model, read by `measr inspect-experts`), captured during the normal pass;
* the **global context**: every quantity that depends on the whole input (the task prompt,
  pooled statistics, routers' choices, transposed-attention matrices, FFT cut-offs). A pass over
  the whole (downscaled) image captures them; tiles of the same image then reuse them, so that
  tiles agree with each other instead of each seeing only itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class PixelRouting:
    """One STP-G-MESE level: each pixel's top-k experts, (B, k, H, W), and their gate weights."""

    experts: Tensor
    gates: Tensor


@dataclass
class ImageRouting:
    """One FD-MEE band: each image's chosen experts, (B, k), and their weights."""

    experts: Tensor
    weights: Tensor


@dataclass
class RoutingRecord:
    """Everything the routers decided in one forward pass (tensors are detached, on CPU or not)."""

    prompt_weights: Tensor | None = None  # (B, atoms): the task prompt's softmax over atoms
    pixel: dict[str, PixelRouting] = field(default_factory=dict)  # "encoder1".."encoder3"
    image: dict[str, ImageRouting] = field(default_factory=dict)  # "decoder3.low", ...


SharedStats = dict[str, Tensor]


@dataclass
class ForwardContext:
    """Options for one forward pass: record routing, capture or reuse the global context."""

    record_routing: bool = False
    capture_global: bool = False
    shared: SharedStats | None = None
    routing: RoutingRecord = field(default_factory=RoutingRecord)
    captured: SharedStats = field(default_factory=dict)

    def global_stat(self, key: str, batch: int, compute: Callable[[], Tensor]) -> Tensor:
        """The global quantity `key`: reused from the shared context when given (expanded to this
        batch), else computed, and kept when capturing."""
        value = self.shared_stat(key, batch)
        if value is None:
            value = compute()
            self.keep(key, value)
        return value

    def shared_stat(self, key: str, batch: int) -> Tensor | None:
        """The shared value of `key` expanded to this batch, or None when it is not shared."""
        if self.shared is None or key not in self.shared:
            return None
        value = self.shared[key]
        return value if value.shape[0] == batch else value.expand(batch, *value.shape[1:])

    def keep(self, key: str, value: Tensor) -> None:
        """Keep a computed global quantity, when capturing."""
        if self.capture_global:
            self.captured[key] = value.detach()


def global_stat(
    ctx: ForwardContext | None, key: str, batch: int, compute: Callable[[], Tensor]
) -> Tensor:
    """`ctx.global_stat`, or plain `compute()` when there is no context."""
    if ctx is None:
        return compute()
    return ctx.global_stat(key, batch, compute)


def shared_stat(ctx: ForwardContext | None, key: str, batch: int) -> Tensor | None:
    """`ctx.shared_stat`, or None when there is no context."""
    return None if ctx is None else ctx.shared_stat(key, batch)


def keep_stat(ctx: ForwardContext | None, key: str, value: Tensor) -> None:
    """`ctx.keep`, when there is a context."""
    if ctx is not None:
        ctx.keep(key, value)


def run_with_global_stat(
    ctx: ForwardContext | None,
    key: str,
    batch: int,
    step: Callable[[Tensor | None], tuple[Tensor, Tensor]],
) -> tuple[Tensor, Tensor]:
    """Run a step that takes its global statistic (the shared one, or None: compute it) and
    returns (output, statistic used); keep the statistic when capturing.

    The steps are pure functions of tensors, with no context object inside, so that
    `torch.compile` sees the same graph for every block of the same shape (a string key
    inside the graph would make it compile once per block)."""
    output, stat = step(shared_stat(ctx, key, batch))
    keep_stat(ctx, key, stat)
    return output, stat


def record_pixel_routing(
    ctx: ForwardContext | None, key: str, experts: Tensor, gates: Tensor
) -> None:
    """Keep one STP-G-MESE level's choices, if the caller asked for the routing record."""
    if ctx is not None and ctx.record_routing:
        ctx.routing.pixel[key] = PixelRouting(experts.detach().to(torch.int8), gates.detach())


def record_image_routing(
    ctx: ForwardContext | None, key: str, experts: Tensor, weights: Tensor
) -> None:
    """Keep one FD-MEE band's per-image choices, if the caller asked for the routing record."""
    if ctx is not None and ctx.record_routing:
        ctx.routing.image[key] = ImageRouting(experts.detach(), weights.detach())
