"""Do no harm: a kind of damage the weights do not improve is left as it is, by their entry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_weights import random_pixels, write_picture
from typer.testing import CliRunner

from measr import Restorer, build_model
from measr.cli.app import app
from measr.engine.damage import DamageReading
from measr.engine.harm import gains_by_kind, kind_left_as_is
from measr.io import read_image
from measr.manifest import MANIFEST_ENV, sha256_of
from measr.training.export import Scoring, export_weights_file, input_score
from measr.weights import save_weights

HAZE = {"haze": 0.9, "blur": 0.05, "clean": 0.05}
BLUR = {"haze": 0.05, "blur": 0.9, "clean": 0.05}
UNSURE = {"haze": 0.3, "blur": 0.4, "clean": 0.3}


def reading(probabilities: dict[str, float]) -> DamageReading:
    return DamageReading(probabilities, None)


def test_gains_are_the_weights_over_the_input_averaged_over_a_kind_s_sets() -> None:
    fields = {
        "val.noise15": "29.00/0.8", "input.noise15": "24.00/0.5",
        "val.noise25": "27.00/0.7", "input.noise25": "21.00/0.4",
        "val.blur": "19.50/0.7", "input.blur": "21.00/0.7",
        "val.haze": "20.00/0.8", "input.haze": "13.00/0.6",
        "val.haze-its": "21.00/0.9", "input.haze-its": "12.00/0.6",
        "val.rain": "26.00/0.8",  # no input score: never held back
        "val.clean": "36.00/0.9", "input.clean": "99.00/1.0",
        "steps": "10",
    }  # fmt: skip
    gains = gains_by_kind(fields)
    assert gains == pytest.approx({"noise": 5.5, "blur": -1.5, "haze": 8.0})


def test_only_a_confidently_named_kind_that_loses_is_left_as_it_is() -> None:
    gains = {"haze": 8.0, "blur": -1.5}
    assert kind_left_as_is(reading(BLUR), gains) == "blur"
    assert kind_left_as_is(reading(HAZE), gains) is None
    assert kind_left_as_is(reading(UNSURE), gains) is None  # not sure: restored
    assert kind_left_as_is(reading(BLUR), {"blur": 0.2}) is None  # a gain lifts the gate
    assert kind_left_as_is(None, gains) is None  # a prompt that names nothing


def listed_tiny_weights(folder: Path, blur_gain: float) -> Path:
    """Tiny weights listed as the default with val. and input. scores: haze improved by 8 dB,
    blur changed by `blur_gain`. (The tests set what their prompt reads.)"""
    torch.manual_seed(0)
    model = build_model("tiny")
    weights = folder / "w.safetensors"
    save_weights(model, weights)
    blur = f"val.blur={21 + blur_gain:.2f}/0.7000 input.blur=21.00/0.7000"
    (folder / "weights.txt").write_text(
        f"w w.safetensors {sha256_of(weights)} config=tiny trained=yes default=yes "
        f"val.haze=20.00/0.8000 input.haze=12.00/0.6000 {blur}\n"
    )
    return folder / "weights.txt"


@pytest.mark.parametrize(("blur_gain", "left"), [(-1.9, True), (0.4, False)])
def test_a_photo_named_as_blur_is_returned_unchanged_while_the_weights_lose_on_blur(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blur_gain: float, left: bool
) -> None:
    manifest = listed_tiny_weights(tmp_path, blur_gain)
    restorer = Restorer.from_name(manifest_path=manifest, device="cpu", threads=1, backend="torch")
    monkeypatch.setattr(restorer, "damage_of", lambda prompt: reading(BLUR))
    pixels = random_pixels(70, 90)
    result = restorer.restore(pixels)
    assert (result.left_as_is == "blur") is left
    assert np.array_equal(result.pixels, pixels) is left
    forced = restorer.restore(pixels, force=True)
    assert forced.left_as_is is None and not np.array_equal(forced.pixels, pixels)


def test_a_photo_named_as_a_kind_the_weights_improve_is_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = listed_tiny_weights(tmp_path, -1.9)
    restorer = Restorer.from_name(manifest_path=manifest, device="cpu", threads=1, backend="torch")
    monkeypatch.setattr(restorer, "damage_of", lambda prompt: reading(HAZE))
    gray = random_pixels(70, 90, channels=1)
    result = restorer.restore(gray)
    assert result.left_as_is is None and result.pixels.shape == gray.shape
    assert not np.array_equal(result.pixels, gray)


def test_export_records_the_damaged_input_s_scores_beside_the_weights(tmp_path: Path) -> None:
    val = tmp_path / "val" / "kodak24" / "clean"
    val.mkdir(parents=True)
    pixels = (random_pixels(80, 80) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(val / "k.png")
    torch.manual_seed(0)
    weights = tmp_path / "tiny.safetensors"
    save_weights(build_model("tiny"), weights)
    scoring = Scoring("three", tmp_path / "val", crop=64)
    manifest = tmp_path / "weights.txt"
    result = export_weights_file(weights, "t", tmp_path / "w", scoring, {}, manifest=manifest)
    fields = result.entry.fields
    assert {"input.noise15", "input.rain", "input.haze"} <= set(fields)
    inputs = input_score(scoring.items())
    assert fields["input.noise25"].startswith(f"{inputs['noise25'][0]:.2f}/")
    assert set(gains_by_kind(fields)) == {"noise", "rain", "haze"}


@pytest.fixture
def blur_held_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default weights lose 1.9 dB on blur, and every photo reads as blurred."""
    monkeypatch.setenv(MANIFEST_ENV, str(listed_tiny_weights(tmp_path, -1.9)))
    monkeypatch.setattr(Restorer, "damage_of", lambda self, prompt: reading(BLUR))


def test_measr_restore_says_why_a_photo_is_left_as_it_is_and_force_restores_it(
    tmp_path: Path, blur_held_back: None
) -> None:
    photo = write_picture(tmp_path / "shaky.png")
    left = CliRunner().invoke(app, ["restore", str(photo), "-o", str(tmp_path / "a.png")])
    assert left.exit_code == 0, left.output
    assert "Left" in left.stdout and "do not improve blur yet (-1.9 dB" in left.stdout
    assert "--force" in left.stdout
    assert np.array_equal(read_image(tmp_path / "a.png").pixels, read_image(photo).pixels)

    args = ["restore", str(photo), "-o", str(tmp_path / "b.png"), "--force", "--json"]
    forced = CliRunner().invoke(app, args)
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout)["left_as_is"] is None
    assert not np.array_equal(read_image(tmp_path / "b.png").pixels, read_image(photo).pixels)


def test_the_batch_log_says_which_photos_were_left_as_they_are(
    tmp_path: Path, blur_held_back: None
) -> None:
    write_picture(tmp_path / "in" / "a.png")
    result = CliRunner().invoke(app, ["batch", str(tmp_path / "in"), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    (record,) = map(json.loads, (tmp_path / "out" / "measr-batch.jsonl").read_text().splitlines())
    assert record["left_as_is"] == "blur" and record["status"] == "done"


def test_inspect_experts_runs_the_network_even_on_a_photo_it_would_leave_as_it_is(
    tmp_path: Path, blur_held_back: None
) -> None:
    write_picture(tmp_path / "photos" / "a.png")
    report = tmp_path / "report.json"
    args = ["inspect-experts", str(tmp_path / "photos"), "--json", str(report)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "encoder1" in report.read_text()  # the routing of a photo the network ran on
