"""Every table measr prints reads at 80 columns, the width of a pipe: no column squeezed to
nothing, no number or word cut with an ellipsis, nothing past the edge."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from measr.cli.benchmark import quality_table, speed_table
from measr.cli.render import atom_table, batch_table, usage_table
from measr.engine.routing import RoutingSummary
from measr.evaluation.metrics import PROTOCOL, ColourShift
from measr.evaluation.quality import MethodScore, QualityReport, SetSummary, Status
from measr.evaluation.speed import MachineInfo, MatmulPeak, Mode, SpeedPoint, SpeedReport
from measr.jobs.batch import BatchJob, BatchReport, FileResult

WIDTH = 80


def rendered(table: Table, width: int = WIDTH) -> str:
    """The table as a pipe receives it at `width` columns."""
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(table)
    return out.getvalue()


def cell_texts(table: Table) -> list[str]:
    """Every header and cell, as plain text."""
    texts = []
    for column in table.columns:
        texts.append(str(column.header))
        for cell in column.cells:
            texts.append(
                cell.plain if isinstance(cell, Text) else Text.from_markup(str(cell)).plain
            )
    return texts


def assert_reads_at(table: Table, width: int = WIDTH) -> str:
    text = rendered(table, width)
    assert max(len(line) for line in text.splitlines()) <= width, text
    assert "…" not in text, text
    # Each word of every cell whole on one line (a cell may wrap between words, not inside).
    words = set(text.replace("│", " ").replace("┃", " ").split())
    for cell in cell_texts(table):
        for word in cell.split():
            assert word in words, (word, text)
    return text


def routing_summary(experts: int = 6, bands: int = 5) -> RoutingSummary:
    pixel = {f"encoder{i}": tuple(1000 * (e + 1) for e in range(experts)) for i in (1, 2, 3)}
    band = {
        f"decoder{level}.{kind}": tuple(e + 1 for e in range(bands))
        for level in (1, 2, 3)
        for kind in ("high", "low")
    }
    return RoutingSummary(
        prompt_weights=(0.5, 0.3, 0.2),
        pixel_usage=pixel,
        band_choices={},
        band_usage=band,
        tiles=1,
        pixels=21000,
    )


def test_expert_usage_reads_at_80_columns_with_a_bar_and_a_share_per_expert() -> None:
    table = usage_table("noise: 12 image(s)", routing_summary())
    text = assert_reads_at(table)
    for router in ("encoder1", "decoder3.high", "decoder3.low"):
        assert f"│ {router} " in text
    assert "29%" in text and "▋" in text  # the last expert: 6 of 21 shares, a third of the bar
    wider = rendered(usage_table("noise", routing_summary(), 120), 120)
    assert max(len(line) for line in wider.splitlines()) > WIDTH  # the bars use the room


def test_atom_and_batch_tables_read_at_80_columns() -> None:
    assert_reads_at(atom_table(routing_summary()))
    job = BatchJob(Path("in/a.png"), Path("out/a.png"), "a.png")
    report = BatchReport([FileResult(job, "done", 1.0), FileResult(job, "failed")], 12.5)
    assert_reads_at(batch_table(report))


def test_quality_table_reads_at_80_columns_with_every_method() -> None:
    methods = ("input", "measr", "cbm3d", "ffdnet", "dcp", "autogamma")
    sets = (
        SetSummary("kodak24-noise25", "data/val/kodak24", "noise:25", 24),
        SetSummary("dehaze-its-sample", "data/val/dehaze-its-sample", "haze", 4),
    )
    shift = ColourShift(-1.2, 0.4, 3.1, -4.3, -12.5, 10.25)
    scores = []
    for summary in sets:
        for method in methods:
            if method == "cbm3d":
                scores.append(
                    MethodScore(
                        summary.name,
                        method,
                        Status.UNAVAILABLE,
                        None,
                        None,
                        0,
                        None,
                        "pip install bm3d",
                    )
                )
            else:
                scores.append(
                    MethodScore(
                        summary.name,
                        method,
                        Status.OK,
                        32.37,
                        0.9123,
                        summary.count,
                        12.34,
                        shift=shift,
                    )
                )
    report = QualityReport(PROTOCOL, 0, methods, methods, sets, tuple(scores), ())
    text = assert_reads_at(quality_table(report))
    assert "32.37" in text and "0.9123" in text and "kodak24-noise25" in text


def test_speed_table_reads_at_80_columns() -> None:
    machine = MachineInfo("AMD EPYC 7B13", 2, 2, "2.13.0+cpu", 2, None, "3.11.9")
    peaks = (MatmulPeak("cpu", 2048, 119.2, 2),)
    points = tuple(
        SpeedPoint(
            config,
            size,
            tile,
            "cpu",
            mode,
            "ok",
            3,
            12.3456,
            0.0213,
            12345.6,
            933.0,
            42.1,
            0.353,
            1.45,
        )
        for config in ("small", "full")
        for size, tile in ((512, None), (2048, 1024))
        for mode in (Mode.REFERENCE, Mode.MEASR, Mode.COMPILED)
    )
    failed = SpeedPoint("full", 4096, None, "cuda", Mode.COMPILED, "out of memory")
    report = SpeedReport(machine, peaks, (*points, failed), 3, 1)
    text = assert_reads_at(speed_table(report))
    assert "12345.6" in text and "out of memory" in text
