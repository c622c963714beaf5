"""`--strength`: the restored photo blended with the input, in restore and batch, and recorded
in the batch log."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_weights import write_picture, write_weights
from typer.testing import CliRunner

from measr import Restorer, build_model
from measr.cli.app import app
from measr.engine.options import RestoreOptions
from measr.engine.strength import blend
from measr.errors import MeasrError
from measr.io import read_image
from measr.jobs.batch import LOG_NAME
from measr.manifest import MANIFEST_ENV

runner = CliRunner()


@pytest.fixture
def photo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(MANIFEST_ENV, str(write_weights(tmp_path, stressed=True)))
    return write_picture(tmp_path / "photo.png", 64, 64, bit_depth=16)


def restored_at(photo: Path, strength: str) -> np.ndarray:
    out = photo.with_name(f"at-{strength}.png")
    args = ["restore", str(photo), "-o", str(out), "--strength", strength, "--threads", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return read_image(out).pixels


def test_blend_is_the_input_at_zero_the_restoration_at_one_and_linear_between() -> None:
    rng = np.random.default_rng(0)
    original, restored = rng.random((2, 8, 8, 3), dtype=np.float32)
    assert np.array_equal(blend(original, restored, 0.0), original)
    assert blend(original, restored, 1.0) is restored
    assert np.allclose(blend(original, restored, 0.25), 0.75 * original + 0.25 * restored)


def test_strength_outside_zero_to_one_is_refused() -> None:
    for strength in (-0.1, 1.5, float("nan")):
        with pytest.raises(MeasrError):
            RestoreOptions(strength=strength)


def test_the_restorer_applies_the_strength_of_its_options() -> None:
    restorer = Restorer(build_model("tiny"), device="cpu", threads=1)
    pixels = np.random.default_rng(0).random((40, 40, 3), dtype=np.float32)
    full = restorer.restore(pixels, RestoreOptions()).pixels
    half = restorer.restore(pixels, RestoreOptions(strength=0.5)).pixels
    assert np.array_equal(restorer.restore(pixels, strength=0.0).pixels, pixels)
    assert np.allclose(half, (full + pixels) / 2, atol=1e-6)


def test_restore_strength_blends_the_restored_photo_with_the_input(photo: Path) -> None:
    full, none, half = (restored_at(photo, s) for s in ("1", "0", "0.5"))
    assert np.abs(full - none).mean() > 0.01  # the network changed the photo
    assert np.allclose(none, read_image(photo).pixels, atol=1 / 65535)
    assert np.allclose(half, (full + none) / 2, atol=2 / 65535)


def test_restore_refuses_a_strength_above_one(photo: Path) -> None:
    result = runner.invoke(app, ["restore", str(photo), "--strength", "1.5", "--threads", "1"])
    assert result.exit_code == 2


def test_batch_applies_the_strength_and_logs_it(photo: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    photo.rename(folder / photo.name)
    out = tmp_path / "out"
    args = ["batch", str(folder), str(out), "--strength", "0", "--threads", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    original = read_image(folder / photo.name).pixels
    assert np.allclose(read_image(out / photo.name).pixels, original, atol=1 / 65535)
    (record,) = (json.loads(line) for line in (out / LOG_NAME).read_text().splitlines())
    assert record["status"] == "done" and record["strength"] == 0.0
