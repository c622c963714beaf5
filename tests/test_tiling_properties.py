"""Property-based tests (hypothesis) of padding and tiling: for any image size from 1 to 2000
pixels a side, any tile size and overlap, the output has the input's size, every pixel is
covered, and blending gives the image back. A fake identity network stands in for MEASNet,
so each example costs milliseconds."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from measr.engine import pad_to_requirements, unpad
from measr.engine.inference import plan_tiles, run_tiles
from measr.engine.tiling import BlendAccumulator, Span, Tile
from measr.model import InputRequirements

SIDES = st.integers(1, 2000)
TILES = st.integers(1, 1024)
OVERLAPS = st.integers(0, 300)
# Size multiples and minimum sizes a network could ask for (MEASNet: 8 and 64).
REQUIREMENTS = st.builds(
    lambda multiple, cells: InputRequirements(1, multiple, multiple * cells),
    st.sampled_from([1, 2, 4, 8, 16]),
    st.sampled_from([1, 2, 8]),
)
# For tiling, networks with a down-sampling pyramid like MEASNet's: tiles are aligned to
# min_size (at least 32 here), which also keeps a 2000 x 2000 image under ~1000 tiles.
NETWORK_REQUIREMENTS = st.builds(
    lambda multiple: InputRequirements(1, multiple, multiple * 8), st.sampled_from([4, 8, 16])
)
CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread: on a busy machine two threads are many times slower, not faster."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@dataclass
class Output:
    """What the engine reads from a network's output."""

    image: Tensor


class IdentityNetwork:
    """Stands in for MEASNet: same requirements interface, returns its (padded) input."""

    def __init__(self, requirements: InputRequirements) -> None:
        self.requirements = requirements

    def __call__(self, x: Tensor, ctx: object = None) -> Output:
        return Output(x)


def assert_partition(spans: list[Span], length: int, window: int) -> None:
    """Along one axis: equal windows inside [0, length) covering it, and cores that tile it
    exactly (each pixel belongs to one core)."""
    assert spans[0].start == 0 and spans[-1].stop == length
    assert spans[0].core_start == 0 and spans[-1].core_stop == length
    for span in spans:
        assert span.length == window and span.start <= span.core_start < span.core_stop
        assert span.core_stop <= span.stop
    for before, after in itertools.pairwise(spans):
        assert before.core_stop == after.core_start  # no gap, no overlap between cores
        assert after.start <= before.stop  # windows overlap or touch: no pixel uncovered


def axes(tiles: list[Tile]) -> tuple[list[Span], list[Span]]:
    """The distinct row spans and column spans of a grid, checking it is their product."""
    rows = list(dict.fromkeys(t.rows for t in tiles))
    cols = list(dict.fromkeys(t.cols for t in tiles))
    assert tiles == [Tile(r, c) for r in rows for c in cols]
    return rows, cols


@settings(max_examples=60, deadline=None)
@given(height=SIDES, width=SIDES, requirements=REQUIREMENTS)
def test_padding_meets_the_requirements_and_unpadding_gives_the_input_back(
    height: int, width: int, requirements: InputRequirements
) -> None:
    x = torch.rand(1, 1, height, width)
    padded, info = pad_to_requirements(x, requirements)
    multiple, minimum = requirements.size_multiple, requirements.min_size
    for side, original in zip(padded.shape[-2:], (height, width), strict=True):
        assert side % multiple == 0 and side >= max(original, minimum)
        assert side < max(original, minimum) + multiple  # never more than needed
    assert torch.equal(unpad(padded, info), x)


@settings(max_examples=100, deadline=None)
@given(height=SIDES, width=SIDES, tile=TILES, overlap=OVERLAPS, requirements=NETWORK_REQUIREMENTS)
def test_the_tile_plan_covers_every_pixel_with_one_core_each(
    height: int, width: int, tile: int, overlap: int, requirements: InputRequirements
) -> None:
    tiles = plan_tiles(IdentityNetwork(requirements), height, width, tile, overlap)  # type: ignore[arg-type]
    rows, cols = axes(tiles)
    canvas_h, canvas_w = rows[-1].stop, cols[-1].stop
    assert canvas_h >= height and canvas_w >= width  # the padded canvas holds the image
    assert canvas_h % requirements.size_multiple == 0 and canvas_w % requirements.size_multiple == 0
    assert_partition(rows, canvas_h, rows[0].length)
    assert_partition(cols, canvas_w, cols[0].length)
    for span in (*rows, *cols):  # every tile is a valid network input
        assert span.length % requirements.size_multiple == 0
        assert span.length >= requirements.min_size


@settings(max_examples=40, deadline=None)
@given(height=SIDES, width=SIDES, tile=TILES, overlap=OVERLAPS, requirements=NETWORK_REQUIREMENTS)
def test_blend_weights_are_positive_everywhere_and_sum_to_one(
    height: int, width: int, tile: int, overlap: int, requirements: InputRequirements
) -> None:
    tiles = plan_tiles(IdentityNetwork(requirements), height, width, tile, overlap)  # type: ignore[arg-type]
    blend = BlendAccumulator(height, width, 1)
    constant = 0.37
    for t in tiles:
        blend.add(t, torch.full((1, t.rows.length, t.cols.length), constant))
    weight = blend.weight
    assert float(weight.min()) >= 1 - 1e-5  # every pixel fully covered
    if overlap > 0:
        # A partition of unity: 1 up to the tiny floor weight (WEIGHT_FLOOR) that tile edges
        # keep where other tiles cover them. (Without overlap there are no blending ramps, and
        # pixels that two tiles share are averaged.)
        assert float(weight.max()) <= 1.02
    result = blend.result()
    assert result.shape == (height, width, 1)
    torch.testing.assert_close(result, torch.full_like(result, constant), rtol=0, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(height=SIDES, width=SIDES, tile=TILES, overlap=OVERLAPS, requirements=NETWORK_REQUIREMENTS)
def test_tiled_restoration_by_an_identity_network_returns_the_image_at_its_size(
    height: int, width: int, tile: int, overlap: int, requirements: InputRequirements
) -> None:
    network = IdentityNetwork(requirements)
    tiles = plan_tiles(network, height, width, tile, overlap)  # type: ignore[arg-type]
    image = torch.rand(height, width, 1)
    restored = run_tiles(
        network,  # type: ignore[arg-type]
        image,
        tiles,
        tile_batch=8,
        shared=None,
        device=CPU,
        dtype=torch.float32,
    )
    assert restored.shape == (height, width, 1)
    torch.testing.assert_close(restored, image, rtol=0, atol=1e-5)
