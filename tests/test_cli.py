"""`measr restore`, `measr models` and the error contract, through Typer's CliRunner on
generated images and a tiny checkpoint listed in a temporary weights.txt."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_weights import write_picture, write_weights
from typer.testing import CliRunner, Result

from measr import __version__
from measr.cli.app import app
from measr.io import read_image
from measr.manifest import MANIFEST_ENV, find_entry

runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(MANIFEST_ENV, str(write_weights(tmp_path)))
    return tmp_path


def measr(*args: str | Path) -> Result:
    """Run the CLI in-process on one thread (the test machine's cores are shared)."""
    return runner.invoke(app, [*map(str, args), "--threads", "1"])


def assert_one_error_line(result: Result, exit_code: int) -> None:
    assert result.exit_code == exit_code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.stdout


@pytest.mark.parametrize(
    ("name", "channels", "bit_depth", "alpha"),
    [
        ("rgb8.png", 3, 8, False),
        ("rgb16.png", 3, 16, False),
        ("gray8.png", 1, 8, False),
        ("gray16.png", 1, 16, False),
        ("rgba8.png", 3, 8, True),
        ("graya16.png", 1, 16, True),
        ("photo.jpg", 3, 8, False),
    ],
)
def test_restore_keeps_size_depth_channels_and_alpha(
    folder: Path, name: str, channels: int, bit_depth: int, alpha: bool
) -> None:
    source = write_picture(
        folder / name, 45, 70, channels=channels, bit_depth=bit_depth, alpha=alpha
    )
    result = measr("restore", source)
    assert result.exit_code == 0, result.output
    original = read_image(source)
    restored = read_image(folder / f"{source.stem}_restored{source.suffix}")
    assert (restored.height, restored.width) == (45, 70)
    assert restored.bit_depth == bit_depth and restored.is_gray == (channels == 1)
    if alpha:
        assert restored.alpha is not None and original.alpha is not None
        np.testing.assert_array_equal(restored.alpha, original.alpha)
    else:
        assert restored.alpha is None
    assert "70x45" in result.stdout and "weights tiny-test (tiny)" in result.stdout


def test_restore_line_announces_untrained_weights(folder: Path) -> None:
    result = measr("restore", write_picture(folder / "a.png"))
    assert "UNTRAINED" in result.stdout


def test_the_summary_is_a_sentence_and_the_numbers_wait_for_verbose(folder: Path) -> None:
    source = write_picture(folder / "a.png", 45, 70)
    result = measr("restore", source)
    assert result.exit_code == 0, result.output
    sentence = result.stdout.strip()
    assert len(sentence.splitlines()) == 1
    assert sentence.startswith(f"Restored {source} to {folder / 'a_restored.png'}: 70x45 in ")
    assert " s on cpu (as a whole) with weights tiny-test (tiny); " in sentence
    assert "; found " in sentence or "; the photo looks clean (" in sentence
    assert sentence.endswith(".") and "  " not in sentence
    assert "experts" not in sentence and "atoms" not in sentence
    verbose = measr("restore", source, "--overwrite", "--verbose").stdout
    assert "experts L1 " in verbose and "memory planned " in verbose


def test_the_restore_line_names_the_paths_as_given_the_strength_and_the_map(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-o ../out/a.png` is printed as given, not as a bare `a.png` that reads like an
    overwrite; piped, nothing comes before the sentence (no blank line of a progress bar)."""
    (folder / "work").mkdir()
    (folder / "out").mkdir()
    write_picture(folder / "work" / "a.png", 45, 70)
    monkeypatch.chdir(folder / "work")
    flags = ["--strength", "0.7", "--routing-map", "../out/map.png", "--threads", "1"]
    result = runner.invoke(app, ["restore", "a.png", "-o", "../out/a.png", *flags])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Restored a.png to ../out/a.png: 70x45 in ")
    assert "; blended with the input at --strength 0.7; routing map in ../out/map.png." in (
        result.stdout
    )
    assert not result.stderr.strip()


def test_one_image_name_for_several_inputs_is_refused_in_one_line(folder: Path) -> None:
    """`restore a.png b.png -o single.png` would make a folder named single.png."""
    write_picture(folder / "a.png")
    write_picture(folder / "b.png")
    result = measr("restore", folder / "a.png", folder / "b.png", "-o", folder / "single.png")
    assert_one_error_line(result, 2)
    assert "single.png" in result.stderr and "folder" in result.stderr
    assert not (folder / "single.png").exists()


def test_trained_weights_are_not_flagged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MANIFEST_ENV, str(write_weights(tmp_path, trained=True)))
    result = measr("restore", write_picture(tmp_path / "a.png"))
    assert result.exit_code == 0 and "UNTRAINED" not in result.output


def test_restore_refuses_to_overwrite_unless_asked(folder: Path) -> None:
    source = write_picture(folder / "a.png")
    target = folder / "out.png"
    assert measr("restore", source, "-o", target).exit_code == 0
    first = target.stat().st_mtime_ns
    assert_one_error_line(measr("restore", source, "-o", target), 4)
    assert target.stat().st_mtime_ns == first
    assert measr("restore", source, "-o", target, "--overwrite").exit_code == 0


def test_restore_tiles_and_writes_a_routing_map(folder: Path) -> None:
    source = write_picture(folder / "a.png", 150, 200)
    result = measr(
        "restore", source, "--tile", "128", "--no-shared-context", "--routing-map", folder / "m.png"
    )
    assert result.exit_code == 0, result.output
    assert "tiles of 128 px (no shared context)" in result.stdout
    picture = read_image(folder / "m.png")
    assert picture.width == 200 and picture.height > 150  # the legend sits below the image


def test_not_an_image_is_exit_code_4_on_one_line(folder: Path) -> None:
    fake = folder / "notes.png"
    fake.write_text("this is not a picture")
    assert_one_error_line(measr("restore", fake), 4)
    assert_one_error_line(measr("restore", folder / "missing.png"), 4)


def test_unknown_or_bad_weights_are_exit_code_3(folder: Path) -> None:
    source = write_picture(folder / "a.png")
    assert_one_error_line(measr("restore", source, "--weights", "nope"), 3)
    assert_one_error_line(measr("restore", source, "--weights", folder / "none.safetensors"), 3)


def test_usage_errors_are_exit_code_2(folder: Path) -> None:
    assert measr("restore").exit_code == 2
    assert measr("restore", write_picture(folder / "a.png"), "--quality", "0").exit_code == 2
    assert measr("restore", folder / "a.png", "--compile=maybe").exit_code == 2  # a flag


def test_models_lists_entries_and_flags_a_checksum_mismatch(folder: Path) -> None:
    result = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "every validation photo (192 px centre crops" in result.stdout  # one protocol
    assert "tiny-test" in result.stdout and "ok" in result.stdout
    assert "24.10/0.6100" in result.stdout and "NO" in result.stdout
    weights = folder / "tiny-test.safetensors"
    weights.write_bytes(weights.read_bytes() + b"\0")
    flagged = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert "CHECKSUM MISMATCH" in flagged.stdout


def test_models_shows_what_the_weights_cost_in_all(folder: Path) -> None:
    """Weights trained in stages list the totals (steps_total, cpu_hours_total), not only the
    last stage's."""
    manifest = folder / "weights.txt"
    line = manifest.read_text().strip()
    extra = " steps_total=3613 cpu_hours_total=9.39 gpu_minutes=16.95 prompt_steps=4555"
    manifest.write_text(line + extra + " prompt_cpu_hours=1.9\n")
    result = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "3613 steps, 9.39 CPU-h, 16.95 GPU-min in all (the last run 10 steps, 0.01 CPU-h)" in (
        result.stdout
    )
    assert "then the prompt alone 4555 steps, 1.9 CPU-h" in result.stdout


def test_restore_takes_several_files_and_globs_into_a_folder(folder: Path) -> None:
    for name in ("a.png", "b.png", "c.jpg"):
        write_picture(folder / name, 40, 50)
    result = measr("restore", folder / "*.png", folder / "c.jpg", "-o", folder / "out")
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (folder / "out").iterdir())
    assert written == ["a_restored.png", "b_restored.png", "c_restored.jpg"]
    assert result.stdout.count("Restored ") == 3
    nothing = measr("restore", folder / "*.tif")
    assert_one_error_line(nothing, 4)
    assert "no file matches" in nothing.stderr


def test_one_bad_file_among_several_is_reported_and_the_rest_restored(folder: Path) -> None:
    write_picture(folder / "a.png")
    (folder / "b.png").write_text("not an image")
    result = measr("restore", folder / "a.png", folder / "b.png", "-o", folder / "out")
    assert result.exit_code == 4
    assert (folder / "out" / "a_restored.png").is_file()
    assert result.stderr.count("error: ") == 1 and "b.png" in result.stderr


def test_quiet_prints_nothing_and_json_prints_one_object_per_image(folder: Path) -> None:
    write_picture(folder / "a.png", 40, 50)
    write_picture(folder / "b.png", 40, 50)
    quiet = measr("restore", folder / "a.png", "--quiet")
    assert quiet.exit_code == 0 and quiet.stdout == "" and quiet.stderr == ""
    result = measr("restore", folder / "a.png", folder / "b.png", "--json", "--overwrite")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["output"]).name for r in records] == ["a_restored.png", "b_restored.png"]
    assert records[0]["width"] == 50 and records[0]["weights"] == "tiny-test"
    assert records[0]["backend"] == "torch" and records[0]["precision"] == "float32"
    assert records[0]["memory_estimate_bytes"] > 0 and "found" in records[0]["damage"]


def test_output_into_a_missing_folder_creates_only_the_last_one(folder: Path) -> None:
    source = write_picture(folder / "a.png")
    refused = measr("restore", source, "-o", folder / "missing" / "deeper" / "x.png")
    assert_one_error_line(refused, 4)
    assert "does not exist" in refused.stderr and not (folder / "missing").exists()
    created = measr("restore", source, "-o", folder / "new" / "x.png")
    assert created.exit_code == 0, created.output
    assert (folder / "new" / "x.png").is_file()


def test_max_memory_caps_the_plan_and_is_said(folder: Path) -> None:
    source = write_picture(folder / "a.png", 300, 300)
    result = measr("restore", source, "--max-memory", "30M", "--verbose")
    assert result.exit_code == 0, result.output
    assert "tiles of" in result.stdout  # 300 px did not fit whole in 30 MiB
    planned = result.stdout.split("memory planned ")[1].split(";")[0]
    assert planned.endswith(" MB") and float(planned.split()[0]) <= 30 * 2**20 / 1e6
    assert_one_error_line(measr("restore", source, "--max-memory", "lots"), 2)


@pytest.mark.parametrize("columns", ["80", "50"])
def test_models_is_readable_in_80_columns_and_piped(columns: str) -> None:
    """CliRunner's output is a pipe, as `measr models | less` is; nothing may be cut."""
    default = find_entry(None)
    result = runner.invoke(app, ["models"], env={"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    assert f"{default.name}  (default)  file ok" in result.stdout and "…" not in result.stdout
    words = " ".join(result.stdout.split())
    for task, (psnr, ssim) in default.validation_scores().items():
        assert f"{task} {psnr:.2f}/{ssim:.4f}" in words
    assert max(len(line.rstrip()) for line in result.stdout.splitlines()) <= int(columns)
