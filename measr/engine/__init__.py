"""Running MEASNet on real images: devices, padding, tiling with a shared global context,
routing capture. Pixels in, pixels out: the jobs over files (measr.jobs) sit above."""

from measr.engine.padding import PadInfo, pad_to_requirements, unpad
from measr.engine.restorer import Restoration, Restorer
from measr.engine.routing import RoutingSummary, merge_summaries
from measr.engine.tiling import Tile, blend_window, tile_grid

__all__ = [
    "PadInfo",
    "Restoration",
    "Restorer",
    "RoutingSummary",
    "Tile",
    "blend_window",
    "merge_summaries",
    "pad_to_requirements",
    "tile_grid",
    "unpad",
]
