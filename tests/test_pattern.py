"""The periodic-pattern measure of `measr benchmark quality`: a grid added to flat areas is
found at its period, a clean flat image reads about 0, and the report carries both."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_tables import assert_reads_at

from measr.cli.benchmark import pattern_table, quality_table
from measr.evaluation import (
    DEFAULT_METHODS,
    PROTOCOL,
    ColourShift,
    MethodScore,
    QualityReport,
    SetSummary,
    Status,
    build_methods,
    parse_set,
    run_quality,
)
from measr.evaluation.pattern import PeriodicPattern, flat_blocks, periodic_pattern
from measr.evaluation.quality import quality_markdown
from measr.io import image_from_array, write_image

SIDE = 128
LEVEL = 1 / 255  # one grey level
PATTERN = PeriodicPattern(12.345, 0.05, 40)


def flat_image() -> np.ndarray:
    """A flat float32 RGB image with a gentle shading, as a clear sky."""
    y, x = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    shade = 0.45 + 0.1 * (x + y) / (2 * SIDE)
    return np.stack([shade * 0.8, shade, shade * 1.2], axis=2).astype(np.float32)


def grid(period: int, amplitude: float) -> np.ndarray:
    """(SIDE, SIDE, 1) cosine stripes of `period` px along x and y (a 2-px one is a checker)."""
    y, x = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    wave = np.cos(2 * np.pi * x / period) + np.cos(2 * np.pi * y / period)
    return (amplitude * LEVEL * wave / np.sqrt(2))[:, :, np.newaxis].astype(np.float32)


def test_a_two_pixel_grid_is_found_and_a_clean_flat_image_reads_zero() -> None:
    clean = flat_image()
    own = periodic_pattern(clean, clean)
    assert own is not None and own.blocks == (SIDE // 32) ** 2
    assert own.period2 < 0.1 and own.period8 < 0.15
    found = periodic_pattern(clean + grid(2, 1.5), clean)
    assert found is not None
    assert found.period2 == pytest.approx(1.5, abs=0.15) and found.period8 < 0.15


def test_an_eight_pixel_pattern_is_found_at_period_eight() -> None:
    clean = flat_image()
    found = periodic_pattern(clean + grid(8, 2.0), clean)
    assert found is not None
    assert found.period8 == pytest.approx(2.0, abs=0.2) and found.period2 < 0.1


def test_texture_is_not_measured() -> None:
    y, x = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    stripes = np.repeat((0.5 + 0.4 * np.sin(x / 3 + y / 5))[:, :, np.newaxis], 3, axis=2)
    assert flat_blocks(stripes) == []
    assert periodic_pattern(stripes + grid(2, 2.0), stripes) is None


def test_the_quality_report_sets_a_restoration_s_pattern_beside_the_clean_one(
    tmp_path: Path,
) -> None:
    """A paired set whose degraded images carry a 2-px grid: the input's pattern is the grid's
    amplitude, the clean images' own about 0, in the report and its markdown."""
    for folder, image in (("clean", flat_image()), ("degraded", flat_image() + grid(2, 2.0))):
        (tmp_path / folder).mkdir()
        write_image(tmp_path / folder / "sky.png", image_from_array(np.clip(image, 0, 1)))
    eval_set = parse_set(f"sky={tmp_path}")
    report = run_quality([eval_set], build_methods(["input"]))
    (summary,) = report.sets
    pattern = report.score("sky", "input").pattern
    assert summary.clean_pattern is not None and summary.clean_pattern.period2 < 0.1
    assert pattern is not None and pattern.period2 == pytest.approx(2.0, abs=0.3)
    assert report.rows()[0]["pattern_period2"] == round(pattern.period2, 3)
    markdown = quality_markdown(report)
    assert f"| sky | 1 | {summary.clean_pattern.words()} | {pattern.words()} |" in markdown


def test_the_quality_and_pattern_tables_read_at_80_columns_with_the_default_methods() -> None:
    sets = (
        SetSummary("kodak24-noise25", "data/val/kodak24", "noise:25", 24, PATTERN),
        SetSummary("mcmaster-noise15", "data/val/mcmaster", "noise:15", 18, None),
    )
    shift = ColourShift(-1.2, 0.4, 3.1, -4.3, -12.5, 10.25)
    scores = tuple(
        MethodScore(s.name, m, Status.OK, 32.37, 0.9123, s.count, 12.34, "", shift, PATTERN)
        for s in sets
        for m in DEFAULT_METHODS
    )
    report = QualityReport(PROTOCOL, 0, DEFAULT_METHODS, DEFAULT_METHODS, sets, scores, ())
    assert "32.37" in assert_reads_at(quality_table(report))
    text = assert_reads_at(pattern_table(report))
    assert "12.35" in text and "0.05" in text and "stretch" in text
