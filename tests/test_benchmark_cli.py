"""`measr benchmark quality` and `measr benchmark speed` end to end on a tiny model."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from measr import build_model
from measr.cli import benchmark as benchmark_cli
from measr.cli.app import app
from measr.errors import ExitCode, MeasrError
from measr.evaluation.speed import Mode, SpeedProgress, plan_jobs, run_speed, whole_image_fits
from measr.io import image_from_array, write_image
from measr.weights import save_weights

SIDE = 64


def invoke(*arguments: str) -> Result:
    """`measr benchmark ARGUMENTS...` through the whole application (error handling included)."""
    return CliRunner().invoke(app, ["benchmark", *arguments])


def write_images(folder: Path, count: int, seed: int = 0) -> None:
    """`count` smooth generated RGB PNGs of SIDE x SIDE pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32) / SIDE
    for index in range(count):
        shift = (seed + index) / 10
        image = np.stack([x * 0.8 + 0.1, y * 0.6 + shift / 4, (x + y) / 3 + 0.2], axis=2)
        write_image(folder / f"photo{index}.png", image_from_array(image.astype(np.float32)))


@pytest.fixture
def tiny_weights(tmp_path: Path) -> Path:
    path = tmp_path / "t.safetensors"
    save_weights(build_model("tiny"), path)
    return path


@pytest.mark.slow  # every method (baselines too) on three sets
def test_quality_writes_json_and_csv_with_a_row_per_set_and_method(
    tmp_path: Path, tiny_weights: Path
) -> None:
    write_images(tmp_path / "photos", 2)
    write_images(tmp_path / "pairs" / "clean", 1)
    write_images(tmp_path / "pairs" / "degraded", 1, seed=3)
    result = invoke(
        *[
            "quality",
            "--set",
            f"noisy={tmp_path / 'photos'}:noise:25",
            "--set",
            f"{tmp_path / 'pairs'}:haze",
            "--methods",
            "input,measr,dcp,autogamma",
            "--weights",
            str(tiny_weights),
            "--json",
            str(tmp_path / "q.json"),
            "--csv",
            str(tmp_path / "q.csv"),
            "--markdown",
            str(tmp_path / "q.md"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "noisy" in result.output and "8-bit" in result.output

    report = json.loads((tmp_path / "q.json").read_text())
    status = {(s["set_name"], s["method"]): s["status"] for s in report["scores"]}
    assert status == {
        ("noisy", "input"): "ok",
        ("noisy", "measr"): "ok",
        ("noisy", "dcp"): "not applicable",
        ("noisy", "autogamma"): "not applicable",
        ("pairs:haze", "input"): "ok",
        ("pairs:haze", "measr"): "ok",
        ("pairs:haze", "dcp"): "ok",
        ("pairs:haze", "autogamma"): "not applicable",
    }
    assert [s["count"] for s in report["sets"]] == [2, 1]
    assert report["seed"] == 0 and report["protocol"]["bit_depth"] == 8

    with (tmp_path / "q.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["set_name"], r["method"]) for r in rows] == list(status)
    measr_row = rows[1]
    assert float(measr_row["psnr"]) > 0 and 0 < float(measr_row["ssim"]) <= 1
    assert measr_row["count"] == "2" and float(measr_row["seconds_per_image"]) > 0

    table = (tmp_path / "q.md").read_text().splitlines()
    assert table[0] == "| set | n | input | measr | dcp | autogamma |"
    noisy = table[2].split(" | ")
    assert noisy[:2] == ["| noisy", "2"] and noisy[4:] == ["", " |"]
    assert noisy[3] == f"{float(measr_row['psnr']):.2f} / {float(measr_row['ssim']):.3f}"


def test_quality_limit_and_seed_fix_the_images(tmp_path: Path) -> None:
    write_images(tmp_path / "photos", 3)

    def input_psnr(seed: int) -> list[float]:
        out = tmp_path / f"seed{seed}.json"
        arguments = ["quality", "--set", f"{tmp_path / 'photos'}:noise:25", "--methods", "input"]
        result = invoke(*arguments, "--limit", "2", "--seed", str(seed), "--json", str(out))
        assert result.exit_code == 0, result.output
        return [image["psnr"] for image in json.loads(out.read_text())["images"]]

    first = input_psnr(1)
    assert len(first) == 2
    assert input_psnr(1) == first
    assert input_psnr(2) != first


def test_quality_refuses_a_clean_folder_without_a_degradation(tmp_path: Path) -> None:
    write_images(tmp_path / "photos", 1)
    result = invoke("quality", "--set", str(tmp_path / "photos"), "--methods", "input")
    assert result.exit_code == ExitCode.USAGE
    assert "error:" in result.output and "need a degradation" in result.output


@pytest.mark.slow  # a fresh interpreter with PyTorch per point
def test_speed_reports_throughput_and_a_matmul_peak(tmp_path: Path) -> None:
    result = invoke(
        *[
            "speed",
            "--configs",
            "tiny",
            "--sizes",
            "64",
            "--device",
            "cpu",
            "--modes",
            "reference,measr",
            "--repeats",
            "1",
            "--warmup",
            "0",
            # One thread: on a shared, busy CPU two threads can be a hundred times slower.
            "--threads",
            "1",
            "--json",
            str(tmp_path / "s.json"),
            "--csv",
            str(tmp_path / "s.csv"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["matmul_peaks"][0]["gflops"] > 0
    assert report["machine"]["torch_threads"] == 1 and report["machine"]["cpu"]
    points = report["points"]
    assert [p["mode"] for p in points] == ["reference", "measr"]
    for point in points:
        assert point["status"] == "ok", point
        assert point["megapixels_per_second"] > 0 and point["model_gflop"] > 0
        assert point["peak_memory_mib"] >= 0 and point["fraction_of_peak"] > 0
    assert points[0]["speed_vs_reference"] == 1.0
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 3
    assert "MEASNet speed" in result.output
    assert "[1/2] tiny 64px cpu reference:" in result.output  # one progress line per point


def test_speed_plans_one_reference_and_one_engine_point_per_tile() -> None:
    modes = [Mode.REFERENCE, Mode.MEASR, Mode.COMPILED]
    jobs = plan_jobs(["tiny"], [64, 128], [None, 64], ["cpu"], modes, 2, 1, None)
    assert [(j.size, j.mode, j.tile) for j in jobs] == [
        (64, Mode.REFERENCE, None),
        (64, Mode.MEASR, None),
        (64, Mode.MEASR, 64),
        (64, Mode.COMPILED, None),
        (64, Mode.COMPILED, 64),
        (128, Mode.REFERENCE, None),
        (128, Mode.MEASR, None),
        (128, Mode.MEASR, 64),
        (128, Mode.COMPILED, None),
        (128, Mode.COMPILED, 64),
    ]


def test_speed_skips_references_that_would_exhaust_memory() -> None:
    """The plain forward holds the whole image's activations; the engine tiles instead."""
    gib = 2**30
    assert whole_image_fits("full", 512, 16 * gib)
    assert not whole_image_fits("full", 2048, 16 * gib)
    assert whole_image_fits("small", 1024, 16 * gib)
    assert not whole_image_fits("small", 2048, 16 * gib)


def test_speed_refuses_unknown_modes() -> None:
    result = invoke("speed", "--configs", "tiny", "--sizes", "64", "--modes", "reference,turbo")
    assert result.exit_code == ExitCode.USAGE
    assert "turbo" in result.output


def test_speed_lists_take_commas_or_repeated_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--sizes 64,128` and `--sizes 64 --sizes 128` ask for the same points; none is the
    engine's own tile; leaving a list out takes the command's default."""
    asked: list[tuple[object, ...]] = []

    def record(*lists: Sequence[object], modes: Sequence[Mode], **_: object) -> None:
        asked.append((*(None if v is None else list(v) for v in lists), list(modes)))
        raise MeasrError("recorded")

    monkeypatch.setattr(benchmark_cli, "run_speed", record)
    commas = "--sizes 64,128 --tiles none,64 --device cpu --modes measr"
    repeated = "--sizes 64 --sizes 128 --tiles none --tiles 64 --device cpu --modes measr"
    invoke("speed", *commas.split())
    invoke("speed", *repeated.split())
    invoke("speed")
    expected = (["small"], [64, 128], [None, 64], ["cpu"], [Mode.MEASR])
    assert asked[:2] == [expected, expected]
    assert asked[2] == (["small"], [256, 512], [None], None, [Mode.REFERENCE, Mode.MEASR])


def test_speed_refuses_a_list_value_naming_its_option() -> None:
    for option, value in (("--sizes", "64,big"), ("--device", "gpu"), ("--tiles", "auto")):
        result = invoke("speed", option, value)
        assert result.exit_code == ExitCode.USAGE
        assert option in result.output and value.split(",")[-1] in result.output


def test_speed_refuses_sizes_the_network_cannot_take() -> None:
    result = invoke("speed", "--configs", "tiny", "--sizes", "60")
    assert result.exit_code == ExitCode.USAGE
    assert "multiples of 8" in result.output


@pytest.mark.slow  # a fresh interpreter with PyTorch per point
def test_speed_hands_over_the_report_so_far_after_every_point() -> None:
    """A long run stopped part-way still leaves what it measured (the CLI rewrites its files)."""
    seen: list[tuple[int, int]] = []

    def record(event: SpeedProgress) -> None:
        seen.append((event.done, len(event.report.points)))
        assert event.report.points[-1] == event.point

    report = run_speed(
        ["tiny"],
        [64, 96],
        devices=["cpu"],
        modes=[Mode.REFERENCE],
        repeats=1,
        warmup=0,
        threads=1,
        matmul_size=256,
        on_point=record,
    )
    assert seen == [(1, 1), (2, 2)]
    assert [p.size for p in report.points] == [64, 96]


def test_quality_prints_the_install_hint_with_its_brackets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rich markup must not eat "[baselines]" from "pip install measr[baselines]", nor a set
    named with brackets."""
    monkeypatch.setitem(sys.modules, "bm3d", None)  # as when the extra is not installed
    write_images(tmp_path / "photos", 1)
    result = invoke(
        "quality", "--set", f"[mine]={tmp_path / 'photos'}:noise:25", "--methods", "input,cbm3d"
    )
    assert result.exit_code == 0, result.output
    assert "pip install measr[baselines]" in " ".join(result.output.split())
    assert "[mine]" in result.output
    assert "a* " in result.output and "b* " in result.output  # the colour shift beside PSNR


def test_report_paths_are_checked_before_any_scoring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # issue 36, case 45
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the benchmark ran before its report paths were checked")

    monkeypatch.setattr(benchmark_cli, "run_quality", never)
    monkeypatch.setattr(benchmark_cli, "run_speed", never)
    write_images(tmp_path / "photos", 1)
    photo = tmp_path / "photos" / "photo0.png"
    original = photo.read_bytes()
    quality = ["quality", "--set", f"{tmp_path / 'photos'}:noise:25", "--methods", "input"]
    refusals = [
        ([*quality, "--json", str(tmp_path)], 4, "it is a folder"),
        ([*quality, "--csv", str(photo / "x.csv")], 4, "is a file, not a folder"),
        ([*quality, "--csv", str(photo)], 2, "is an input photo"),
        ([*quality, "--json", str(tmp_path / "r"), "--csv", str(tmp_path / "r")], 2, "both"),
        (["speed", "--configs", "tiny", "--json", str(tmp_path)], 4, "it is a folder"),
    ]
    for arguments, exit_code, words in refusals:
        result = invoke(*arguments)
        assert result.exit_code == exit_code, result.output
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines
    assert photo.read_bytes() == original
