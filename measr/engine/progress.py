"""Progress within a tile: a photo of two large tiles spends minutes in each forward pass, so
counting passes alone leaves a progress bar at "0/2" that long. The network's transformer
blocks (25 in `small`, of roughly equal cost: each level halves the pixels and doubles the
channels) are counted as they finish, and the count of tiles moves in fractions of a pass."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn

from measr.engine.inference import ProgressCallback
from measr.model.backbone import TransformerBlock


class TileProgress:
    """Turns finished passes and finished transformer blocks into `report(tiles done, tiles)`,
    where tiles done grows by a fraction of the pass's tiles with every block."""

    def __init__(self, report: ProgressCallback, tiles: int, tile_batch: int, blocks: int) -> None:
        self.report, self.tiles, self.tile_batch = report, tiles, max(tile_batch, 1)
        self.blocks = max(blocks, 1)
        self.done = 0
        self.blocks_done = 0

    def passes_done(self, done: float, total: int) -> None:
        """The `progress` of `run_tiles`: `done` tiles after a whole pass."""
        self.done, self.blocks_done = int(done), 0
        self.report(done, total)

    def block_done(self, *_: Any) -> None:
        """A forward hook: one more block of the current pass finished."""
        self.blocks_done = min(self.blocks_done + 1, self.blocks)
        in_pass = min(self.tile_batch, self.tiles - self.done)
        self.report(self.done + in_pass * self.blocks_done / self.blocks, self.tiles)


@contextmanager
def progress_within_tiles(
    model: nn.Module, report: ProgressCallback | None, tiles: int, tile_batch: int
) -> Iterator[ProgressCallback | None]:
    """The progress callback to hand `run_tiles`, reporting also after every transformer block
    of the network while the context is open (None when nobody listens)."""
    if report is None:
        yield None
        return
    blocks = [m for m in model.modules() if isinstance(m, TransformerBlock)]
    progress = TileProgress(report, tiles, tile_batch, len(blocks))
    hooks = [block.register_forward_hook(progress.block_done) for block in blocks]
    try:
        yield progress.passes_done
    finally:
        for hook in hooks:
            hook.remove()
