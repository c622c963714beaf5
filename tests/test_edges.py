"""No coloured line along a photo's edges: the shipped weights, run by the engine, restore the
outer rows and columns of a flat-colour image and of a strong gradient like their interior."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from measr import Restorer
from measr.engine.padding import with_edge_margin, without_edge_margin

# 90 x 100 needs padding at the bottom and right to the network's multiple of 8, the case in
# which the line showed at the top and left only (5-7 of 255 off before the mirrored margin,
# at most 2 after, measured).
HEIGHT, WIDTH = 90, 100
# Largest allowed difference, in 8-bit levels per channel, between the mean change of one of
# the outer 4 rows or columns and that of a band 8-12 px inside the same edge.
EDGE_TOLERANCE = 2.5


@pytest.fixture(scope="module")
def shipped() -> Restorer:
    return Restorer.from_name(device="cpu", threads=1)


def flat_colour() -> np.ndarray:
    return np.ones((HEIGHT, WIDTH, 3), np.float32) * np.array([0.55, 0.45, 0.35], np.float32)


def strong_gradient() -> np.ndarray:
    """Red rising to the right, green downwards, blue to the left, over 70 % of the range."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    ramps = np.stack([xx / (WIDTH - 1), yy / (HEIGHT - 1), 1 - xx / (WIDTH - 1)], axis=-1)
    return (0.15 + 0.7 * ramps).astype(np.float32)


def edge_excess(before: np.ndarray, after: np.ndarray) -> float:
    """The worst difference (8-bit levels, any channel) between the mean change of an outer
    row or column (the 4 nearest each edge) and that of the band 8-12 px inside that edge."""
    change = (after.astype(np.float64) - before) * 255
    inner = slice(8, -8)
    bands = [change[8:12, inner], change[inner, 8:12], change[-12:-8, inner], change[inner, -12:-8]]
    worst = 0.0
    for k in range(4):
        outer = [change[k, inner], change[inner, k], change[-1 - k, inner], change[inner, -1 - k]]
        for line, band in zip(outer, bands, strict=True):
            offset = line.reshape(-1, 3).mean(axis=0) - band.reshape(-1, 3).mean(axis=0)
            worst = max(worst, float(np.abs(offset).max()))
    return worst


@pytest.mark.parametrize("image", [flat_colour, strong_gradient], ids=["flat", "gradient"])
def test_outer_rows_and_columns_are_restored_like_the_interior(
    shipped: Restorer, image: object
) -> None:
    pixels = image()  # type: ignore[operator]
    assert edge_excess(pixels, shipped.restore(pixels).pixels) <= EDGE_TOLERANCE


def test_without_the_mirrored_margin_the_line_is_back(shipped: Restorer) -> None:
    """The check above can fail: the same weights without the margin draw the line."""
    requirements = shipped.model.requirements
    shipped.model.requirements = dataclasses.replace(requirements, edge_margin=0)
    try:
        pixels = flat_colour()
        assert edge_excess(pixels, shipped.restore(pixels).pixels) > 2 * EDGE_TOLERANCE
    finally:
        shipped.model.requirements = requirements


def test_the_margin_mirrors_the_image_and_crops_back_exactly() -> None:
    pixels = np.random.default_rng(0).random((5, 7, 3), dtype=np.float32)
    framed = with_edge_margin(pixels, 16)
    assert framed.shape == (37, 39, 3)
    np.testing.assert_array_equal(framed[15], framed[17])  # mirrored about the first row
    np.testing.assert_array_equal(without_edge_margin(framed, 16), pixels)
    tensor = torch.from_numpy(framed)
    assert torch.equal(without_edge_margin(tensor, 16), torch.from_numpy(pixels))
