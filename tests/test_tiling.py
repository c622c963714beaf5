"""Padding and tiling as pure functions: sizes survive, tiles cover every pixel, blending
windows are positive and hide the seams."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from measr.cli.app import app
from measr.engine import pad_to_requirements, tile_grid, unpad
from measr.engine.inference import balanced_tile, plan_tiles
from measr.engine.tiling import BlendAccumulator, blend_window
from measr.model import CONFIGS, NAMED_REQUIREMENTS, InputRequirements, build_model

REQUIREMENTS = InputRequirements(channels=3, size_multiple=8, min_size=64)


@pytest.mark.parametrize(
    "size", [(1, 1), (1, 37), (37, 1), (2, 3), (63, 65), (64, 64), (100, 7), (129, 250)]
)
def test_padding_meets_requirements_and_unpadding_restores_the_input(size: tuple[int, int]) -> None:
    x = torch.rand(2, 3, *size)
    padded, info = pad_to_requirements(x, REQUIREMENTS)
    h, w = padded.shape[-2:]
    assert h % 8 == 0 and w % 8 == 0 and min(h, w) >= 64
    assert h - size[0] < 64 and w - size[1] < 64  # never more than needed
    torch.testing.assert_close(unpad(padded, info), x, rtol=0, atol=0)


def test_padding_reflects_and_replicates_a_single_pixel_side() -> None:
    row = torch.arange(5.0).reshape(1, 1, 1, 5)
    padded, _ = pad_to_requirements(row.expand(1, 3, 1, 5), REQUIREMENTS)
    assert torch.equal(padded[0, 0, :, :5], row[0, 0].expand(64, 5))  # 1 px tall: replicated
    assert padded[0, 0, 0, 5].item() == 3.0  # reflected about the last column


GRIDS = [
    (512, 512, 256, 32, 64),
    (520, 200, 128, 32, 64),
    (64, 1000, 256, 16, 8),
    (300, 300, 512, 32, 8),
    (1000, 17, 100, 10, 1),
]


@pytest.mark.parametrize(("height", "width", "tile", "overlap", "multiple"), GRIDS)
def test_tiles_cover_every_pixel_and_cores_partition_the_image(
    height: int, width: int, tile: int, overlap: int, multiple: int
) -> None:
    tiles = tile_grid(height, width, tile, overlap, multiple)
    covered = torch.zeros(height, width, dtype=torch.int32)
    cores = torch.zeros(height, width, dtype=torch.int32)
    for t in tiles:
        covered[t.rows.start : t.rows.stop, t.cols.start : t.cols.stop] += 1
        cores[t.rows.core_start : t.rows.core_stop, t.cols.core_start : t.cols.core_stop] += 1
        assert (t.rows.length, t.cols.length) == (min(tile, height), min(tile, width))
        assert t.rows.stop <= height and t.cols.stop <= width
    assert covered.min() >= 1
    assert torch.equal(cores, torch.ones_like(cores))
    for t in tiles:  # aligned to the network's grid, except a last tile ending at the border
        assert t.rows.start % multiple == 0 or t.rows.stop == height
        assert t.cols.start % multiple == 0 or t.cols.stop == width


@pytest.mark.parametrize(("height", "width", "tile", "overlap", "multiple"), GRIDS)
def test_blend_windows_are_positive_and_at_most_one(
    height: int, width: int, tile: int, overlap: int, multiple: int
) -> None:
    for t in tile_grid(height, width, tile, overlap, multiple):
        window = blend_window(t)
        assert window.shape == (t.rows.length, t.cols.length)
        assert window.min() > 0 and window.max() <= 1


def test_neighbouring_ramps_sum_to_one() -> None:
    """A partition of unity over the overlaps: blending changes nothing where tiles agree."""
    tiles = tile_grid(1, 700, 256, 32, 64)
    total = torch.zeros(700)
    for t in tiles:
        total[t.cols.start : t.cols.stop] += blend_window(t)[0]
    assert torch.allclose(total, torch.ones(700), atol=2e-3)  # 1 up to the weight floor


def test_blending_tiles_of_an_image_gives_the_image_back() -> None:
    image = torch.rand(3, 200, 330)
    tiles = tile_grid(256, 384, 128, 32, 64)  # a padded canvas larger than the image
    blend = BlendAccumulator(200, 330, 3)
    padded = torch.nn.functional.pad(image, (0, 384 - 330, 0, 256 - 200))
    for t in tiles:
        blend.add(t, padded[:, t.rows.start : t.rows.stop, t.cols.start : t.cols.stop])
    torch.testing.assert_close(blend.result(), image.permute(1, 2, 0))


@pytest.mark.parametrize(
    ("height", "width", "tile"), [(1024, 1024, 704), (300, 520, 448), (96, 96, 256)]
)
def test_balanced_tile_is_the_smallest_with_the_same_grid(
    height: int, width: int, tile: int
) -> None:
    """Automatic tiles shrink to the smallest side that keeps the number of tiles, so that
    two tiles per axis do not overlap by most of their area."""
    model = build_model("tiny")
    align = model.requirements.tile_alignment
    side = balanced_tile(model, height, width, tile, 32)
    before = plan_tiles(model, height, width, tile, 32)
    after = plan_tiles(model, height, width, side, 32)
    assert side <= tile and side % align == 0 and len(after) == len(before)
    if side - align >= 2 * align:
        assert len(plan_tiles(model, height, width, side - align, 32)) > len(before)
    covered = sum(t.rows.length * t.cols.length for t in after)
    assert covered <= sum(t.rows.length * t.cols.length for t in before)


def test_the_tile_help_states_the_grid_the_named_configurations_require() -> None:
    """`--tile`'s help is made from the model's requirements (which every named configuration
    shares), not from numbers of its own."""
    assert {InputRequirements.of(config) for config in CONFIGS.values()} == {NAMED_REQUIREMENTS}
    assert build_model("tiny").requirements.tile_alignment == NAMED_REQUIREMENTS.tile_alignment
    result = CliRunner().invoke(app, ["restore", "--help"], env={"COLUMNS": "400"})
    align = NAMED_REQUIREMENTS.tile_alignment
    assert f"a multiple of {align}, at least {2 * align}," in result.output
