"""The cheap baselines measr must beat (contrast stretch, non-local means, with the dark channel
prior and auto-gamma) and the quality report's verdict against them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from measr import build_model
from measr.cli.app import app
from measr.degrade import parse_spec
from measr.evaluation import BASELINES, PROTOCOL, MethodScore, QualityReport, SetSummary, Status
from measr.evaluation.classical import contrast_stretch, estimate_noise_sigma
from measr.evaluation.methods import BaselineMethod
from measr.evaluation.metrics import psnr
from measr.io import image_from_array, write_image
from measr.weights import save_weights

SIDE = 96


def photo(seed: int = 0) -> np.ndarray:
    """A smooth colourful float32 RGB image spanning the whole range, as a photo does."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, 3)
    channels = [0.5 + 0.5 * np.sin(x / (7 + 3 * c) + y / 11 + phase[c]) for c in range(3)]
    return np.clip(np.stack(channels, axis=2), 0, 1).astype(np.float32)


def test_the_contrast_stretch_lifts_an_even_veil() -> None:
    clean = photo()
    veiled = clean * 0.5 + 0.9 * 0.5  # the even haze
    restored = BaselineMethod(BASELINES["stretch"]).restore(veiled, parse_spec("haze"))
    assert psnr(restored, clean) > 28 > psnr(veiled, clean) + 10


def test_the_contrast_stretch_leaves_a_flat_image_alone() -> None:
    grey = np.full((8, 8, 3), 0.4, np.float32)
    assert np.array_equal(contrast_stretch(grey), grey)


@pytest.mark.parametrize("spec", ["noise:25", "noise"])
def test_non_local_means_lowers_noise_with_the_level_given_or_blind(spec: str) -> None:
    clean = photo() * 0.8 + 0.1  # little clipping, which would hide noise from the estimate
    noisy = np.clip(clean + np.random.default_rng(1).normal(0, 25 / 255, clean.shape), 0, 1)
    restored = BaselineMethod(BASELINES["nlm"]).restore(noisy.astype(np.float32), parse_spec(spec))
    assert restored.shape == clean.shape and restored.dtype == np.float32
    assert psnr(restored, clean) > psnr(noisy, clean) + 5


def test_the_blind_noise_estimate_reads_the_level() -> None:
    clean = photo() * 0.8 + 0.1
    for sigma in (10, 25, 40):
        noisy = clean + np.random.default_rng(sigma).normal(0, sigma / 255, clean.shape)
        assert estimate_noise_sigma(noisy.astype(np.float32)) * 255 == pytest.approx(sigma, rel=0.1)


def test_each_cheap_baseline_declares_the_damage_it_is_for() -> None:
    stretch, nlm = BASELINES["stretch"], BASELINES["nlm"]
    assert stretch.not_applicable(parse_spec("haze")) is None
    assert stretch.not_applicable(parse_spec("lowlight")) is None
    assert "is for 'haze' or 'lowlight'" in (stretch.not_applicable(parse_spec("noise:25")) or "")
    assert nlm.not_applicable(parse_spec("noise")) is None  # blind when the level is not given
    assert "is for 'noise'" in (nlm.not_applicable(parse_spec("rain")) or "")
    cheap = {name for name, baseline in BASELINES.items() if baseline.cheap}
    assert cheap == {"stretch", "nlm", "dcp", "autogamma"}


def _report(psnrs: dict[tuple[str, str], float]) -> QualityReport:
    """A report of fixed PSNRs per (set, method); every method ran on every set it names."""
    sets = tuple(dict.fromkeys(s for s, _ in psnrs))
    methods = tuple(dict.fromkeys(m for _, m in psnrs))
    scores = tuple(
        MethodScore(s, m, Status.OK, psnrs[s, m], 0.9, 1, 0.1)
        if (s, m) in psnrs
        else MethodScore(s, m, Status.NOT_APPLICABLE, None, None, 0, None)
        for s in sets
        for m in methods
    )
    summaries = tuple(SetSummary(s, "test", None, 1) for s in sets)
    return QualityReport(PROTOCOL, 0, methods, methods, summaries, scores, ())


def test_the_verdict_names_each_set_that_loses_and_by_how_much() -> None:
    report = _report(
        {
            ("haze", "measr"): 20.0,
            ("haze", "dcp"): 21.5,
            ("haze", "stretch"): 15.0,
            ("noise", "measr"): 28.0,
            ("noise", "nlm"): 27.0,
            ("noise", "ffdnet"): 32.0,  # not cheap: no part of the verdict
            ("rain", "measr"): 26.0,
        }
    )
    assert [(m.set_name, m.baseline, m.margin) for m in report.cheap_margins()] == [
        ("haze", "dcp", -1.5),
        ("haze", "stretch", 5.0),
        ("noise", "nlm", 1.0),
    ]
    verdict = report.cheap_verdict() or ""
    assert verdict.startswith("measr above every cheap baseline on every set")
    assert verdict.endswith("no (haze -1.50 dB against dark channel prior)")
    winning = _report({("noise", "measr"): 28.0, ("noise", "nlm"): 27.0})
    assert (winning.cheap_verdict() or "").endswith(
        "yes (closest: noise, +1.00 dB against non-local means)"
    )
    assert _report({("rain", "measr"): 26.0, ("rain", "input"): 26.0}).cheap_verdict() is None


def test_benchmark_quality_prints_the_verdict_and_writes_the_margins(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(2):
        write_image(folder / f"p{index}.png", image_from_array(photo(index)))
    weights = tmp_path / "tiny.safetensors"
    save_weights(build_model("tiny"), weights)
    result = CliRunner().invoke(
        app,
        [
            "benchmark",
            "quality",
            "--set",
            f"hazy={folder}:haze",
            "--set",
            f"noisy={folder}:noise:25",
            "--methods",
            "input,measr,dcp,stretch,nlm",
            "--weights",
            str(weights),
            "--json",
            str(tmp_path / "q.json"),
            "--markdown",
            str(tmp_path / "q.md"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "measr above every cheap baseline on every set (2 sets with one): no (" in result.output
    report = json.loads((tmp_path / "q.json").read_text())["cheap_baselines"]
    pairs = [(m["set_name"], m["baseline"]) for m in report["margins"]]
    assert pairs == [("hazy", "dcp"), ("hazy", "stretch"), ("noisy", "nlm")]
    assert report["verdict"] in (tmp_path / "q.md").read_text()
