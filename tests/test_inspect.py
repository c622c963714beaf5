"""`measr inspect-experts`: grouping by task, histograms of every router, maps, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_weights import write_picture, write_weights
from typer.testing import CliRunner, Result

from measr.cli.app import app
from measr.io import read_image
from measr.jobs.inspection import group_inputs
from measr.manifest import MANIFEST_ENV

runner = CliRunner()
ROUTERS = ["encoder1", "encoder2", "encoder3"] + [
    f"decoder{level}.{band}" for level in (1, 2, 3) for band in ("high", "low")
]


@pytest.fixture
def tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tasks/noise/{0,1}.png, tasks/rain/0.png and a loose tasks/extra.png."""
    monkeypatch.setenv(MANIFEST_ENV, str(write_weights(tmp_path)))
    root = tmp_path / "tasks"
    write_picture(root / "noise" / "0.png", 48, 64, seed=0)
    write_picture(root / "noise" / "1.png", 64, 40, seed=1)
    write_picture(root / "rain" / "0.png", 50, 50, seed=2)
    write_picture(root / "extra.png", 40, 40, seed=3)
    return root


def inspect(*args: str | Path) -> Result:
    return runner.invoke(
        app, ["inspect-experts", *map(str, args), "--threads", "1"], env={"COLUMNS": "160"}
    )


def test_a_folder_is_grouped_by_task_and_loose_images_by_their_folder(tasks: Path) -> None:
    groups = group_inputs([tasks])
    assert {k: len(v) for k, v in groups.items()} == {"tasks": 1, "noise": 2, "rain": 1}
    assert set(group_inputs([tasks / "rain" / "0.png", tasks / "extra.png"])) == {"rain", "tasks"}


def test_histograms_for_every_level_band_and_the_prompt(tasks: Path) -> None:
    result = inspect(tasks)
    assert result.exit_code == 0, result.output
    for task in ("noise: 2 image(s)", "rain: 1 image(s)", "tasks: 1 image(s)"):
        assert task in result.stdout
    for router in ROUTERS:
        assert result.stdout.count(router) == 3  # one row per task
    assert result.stdout.count("task prompt") == 3
    assert result.stdout.count("damage found: ") == 3
    assert "█" in result.stdout


def test_maps_are_written_per_image(tasks: Path, tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    result = inspect(tasks / "noise", "--maps", maps, "--map-level", "encoder2")
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(maps).as_posix() for p in maps.rglob("*.png"))
    assert written == ["noise/0_encoder2.png", "noise/1_encoder2.png"]
    assert read_image(maps / "noise" / "0_encoder2.png").width == 64
    assert inspect(tasks / "noise", "--maps", maps, "--map-level", "decoder9").exit_code == 2


def test_json_output_parses(tasks: Path, tmp_path: Path) -> None:
    result = inspect(tasks / "rain", tasks / "noise" / "0.png", "--json", "-")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["groups"]) == {"rain", "noise"}
    routing = report["groups"]["noise"]["routing"]
    assert set(routing["pixel_usage"]) == set(ROUTERS[:3])
    assert set(routing["band_usage"]) == set(ROUTERS[3:])
    assert len(routing["prompt_weights"]) == 8  # the tiny config's atoms
    inspect(tasks / "rain", "--json", tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["groups"]["rain"]["images"] == 1


def test_a_bad_image_is_reported_and_the_rest_inspected(tasks: Path) -> None:
    (tasks / "rain" / "bad.png").write_text("nope")
    result = inspect(tasks / "rain")
    assert result.exit_code == 1
    assert "bad.png" in result.stderr and "rain: 1 image(s)" in result.stdout


def test_unlabelled_images_are_grouped_by_the_damage_the_prompt_finds(tasks: Path) -> None:
    result = inspect(tasks, "--group-by", "damage", "--json", "-")
    assert result.exit_code == 0, result.output
    groups = json.loads(result.stdout)["groups"]
    kinds = {"clean", "noise", "rain", "haze", "blur", "lowlight", "unsure"}
    assert set(groups) <= kinds
    assert sum(g["images"] for g in groups.values()) == 4
    for name, group in groups.items():
        for reading in group["damage"].values():
            assert sum(reading["probabilities"].values()) == pytest.approx(1, abs=1e-3)
            assert name == (reading["most_likely"] if reading["confident"] else "unsure")
    assert inspect(tasks, "--group-by", "colour").exit_code != 0


def one_error_line(result: Result, exit_code: int, words: str) -> None:
    assert result.exit_code == exit_code, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_the_json_report_replaces_no_file_unasked_and_never_an_image(
    tasks: Path, tmp_path: Path
) -> None:  # issue 36, case 9
    keep = write_picture(tmp_path / "keep.png", 16, 16)
    photo = tasks / "rain" / "0.png"
    originals = keep.read_bytes(), photo.read_bytes()
    one_error_line(inspect(tasks / "rain", "--json", keep), 4, "already exists")
    one_error_line(inspect(tasks / "rain", "--json", photo, "--overwrite"), 2, "is an input photo")
    assert (keep.read_bytes(), photo.read_bytes()) == originals
    replaced = inspect(tasks / "rain", "--json", keep, "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert json.loads(keep.read_text())["groups"]["rain"]["images"] == 1


def test_a_report_that_cannot_be_written_is_refused_before_the_run(
    tasks: Path, tmp_path: Path
) -> None:  # issue 36, case 35
    result = inspect(tasks / "rain", "--json", tmp_path)
    one_error_line(result, 4, "it is a folder")
    assert "rain: 0.png" not in result.stderr  # no image was run


def test_two_images_whose_maps_would_share_a_name_are_refused(
    tasks: Path, tmp_path: Path
) -> None:  # issue 36, case 25
    write_picture(tasks / "noise" / "0.jpg", 40, 40, seed=5)
    maps = tmp_path / "maps"
    one_error_line(inspect(tasks / "noise", "--maps", maps), 2, "would both be written")
    assert not maps.exists()
