"""The colour correction by damage: the identity until fitted, one correction for every tile of
a photo, and a least-squares fit that recovers a known colour shift."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_prompt import unsupervised_tiny
from tiny_weights import random_pixels, stressed_tiny
from typer.testing import CliRunner

from measr.cli.app import app
from measr.engine import Restorer
from measr.errors import MeasrError
from measr.model import MEASNet
from measr.training.colour import (
    fit_colour_correction,
    restore_with_reading,
    with_colour_correction,
)
from measr.training.validation import ValidationItem
from measr.weights import load_model, read_metadata, save_weights


def with_known_correction(model: MEASNet) -> MEASNet:
    corrected = with_colour_correction(model)
    assert corrected.colour is not None
    with torch.no_grad():
        kinds = corrected.colour.gain.shape[0]
        corrected.colour.gain.copy_(torch.linspace(-0.1, 0.1, kinds)[:, None].repeat(1, 3))
        corrected.colour.offset.copy_(torch.tensor([0.02, -0.01, 0.03]).repeat(kinds, 1))
    return corrected


def test_an_unfitted_correction_restores_exactly_as_before() -> None:
    model = stressed_tiny()
    pixels = random_pixels(96, 80)
    before = Restorer(model, device="cpu").restore(pixels).pixels
    after = Restorer(with_colour_correction(model), device="cpu").restore(pixels).pixels
    np.testing.assert_array_equal(before, after)


def test_every_tile_gets_the_whole_photos_correction() -> None:
    model = stressed_tiny()
    pixels = random_pixels(200, 150)
    plain = Restorer(model, device="cpu").restore(pixels, tile=128)
    corrected_model = with_known_correction(model)
    corrected = Restorer(corrected_model, device="cpu").restore(pixels, tile=128)
    assert corrected.tiles > 1 and corrected.damage is not None
    assert corrected_model.colour is not None
    kinds = corrected_model.config.degradation_kinds
    with torch.no_grad():
        p = torch.tensor([corrected.damage.probabilities[k] for k in kinds])
        gain = (p @ corrected_model.colour.gain).numpy()
        offset = (p @ corrected_model.colour.offset).numpy()
    expected = plain.pixels * (1 + gain) + offset
    inside = (np.minimum(plain.pixels, expected) > 0.01) & (
        np.maximum(plain.pixels, expected) < 0.99
    )
    assert inside.sum() > 10_000  # the stressed network clips many pixels
    np.testing.assert_allclose(corrected.pixels[inside], expected[inside], atol=2e-3)


def test_the_fit_recovers_a_known_colour_shift() -> None:
    model = stressed_tiny()
    shifted_model = with_known_correction(model)
    samples = []
    with torch.no_grad():
        for seed in range(6):
            degraded = random_pixels(48, 48, seed=seed)
            x = torch.from_numpy(degraded.transpose(2, 0, 1).copy())
            target, _ = restore_with_reading(shifted_model, x)
            clean = target.permute(1, 2, 0).numpy()
            samples.append(ValidationItem("noise15", f"p{seed}", degraded, clean))
    fitted = fit_colour_correction(model, samples)
    with torch.no_grad():
        for sample in samples:
            x = torch.from_numpy(sample.degraded.transpose(2, 0, 1).copy())
            out, _ = restore_with_reading(fitted, x)
            error = (out.permute(1, 2, 0).numpy() - sample.clean).std()
            assert error < 1e-3


def test_weights_whose_prompt_names_nothing_cannot_take_a_correction() -> None:
    with pytest.raises(MeasrError, match="names no kinds"):
        with_colour_correction(unsupervised_tiny())


def test_fit_colour_writes_weights_that_restore_with_the_fitted_correction(
    tmp_path: Path,
    photos: Path,
) -> None:
    source = tmp_path / "tiny.safetensors"
    save_weights(stressed_tiny(), source, metadata={"steps": "10"})
    out = tmp_path / "tiny-colour.safetensors"
    args = ["fit-colour", str(source), "--data", str(photos), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--photos", "2", "--crop", "64", "--tasks", "six"])
    assert result.exit_code == 0, result.output
    assert "lowlight" in result.output and "gain" in result.output
    fitted = load_model(out)
    assert fitted.colour is not None and fitted.colour.gain.abs().sum() > 0
    metadata = read_metadata(out)
    assert metadata["steps"] == "10" and metadata["colour_fit"].startswith(photos.name)
