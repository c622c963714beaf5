"""Tests of measr.degrade: seeded, pure degradations on small generated images."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from measr.degrade import (
    COMPOSITES,
    DEGRADATIONS,
    MIXES,
    TASK_KINDS,
    TASK_SPECS,
    add_blur,
    add_camera_noise,
    add_defocus_blur,
    add_gaussian_noise,
    add_haze,
    add_jpeg,
    add_linear_blur,
    add_low_light,
    add_motion_blur,
    add_rain,
    apply_degradation,
    darken_scene,
    defocus_kernel,
    degrade_pair,
    demosaic,
    depth_proxy,
    linear_motion_kernel,
    mix_weights,
    mosaic,
    motion_kernel,
    parse_spec,
    pick_task,
    poisson_gaussian_noise,
    seeded_rng,
    spec_kinds,
    streak_kernel,
    streak_layer,
    task_kinds,
    task_spec,
    transmission,
)
from measr.degrade.camera import BAYER_PATTERNS
from measr.degrade.haze import draw_haze, pick_airlight
from measr.degrade.lowlight import to_linear
from measr.degrade.ranges import BLUR, DARK_SCENE, HAZE, LOW_LIGHT, RAIN_HEAVY, RAIN_LIGHT, Span
from measr.errors import MeasrError
from measr.model.configs import DEGRADATION_KINDS

Degrade = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def gradient_image(height: int = 64, width: int = 64) -> np.ndarray:
    """Smooth colour gradient in [0.1, 0.9]."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    red = xs / max(width - 1, 1)
    green = ys / max(height - 1, 1)
    blue = 0.5 * (red + 1.0 - green)
    return (0.1 + 0.8 * np.stack([red, green, blue], axis=2)).astype(np.float32)


def textured_image(size: int = 64) -> np.ndarray:
    """Gradient plus a 4-px checkerboard: lots of high-frequency energy."""
    ys, xs = np.mgrid[0:size, 0:size]
    checker = (((xs // 4) + (ys // 4)) % 2).astype(np.float32)
    return np.clip(0.5 * gradient_image(size, size) + 0.4 * checker[..., None], 0, 1)


def laplacian_variance(img: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the grey image, inside a 8-px margin."""
    grey = img.mean(axis=2).astype(np.float64)
    lap = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1]
    return float(lap[8:-8, 8:-8].var())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two images in [0, 1]."""
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def streak_orientation(layer: np.ndarray) -> tuple[float, float]:
    """(streak angle in degrees from vertical, coherence in [0, 1]) from the structure tensor."""
    smooth = cv2.GaussianBlur(layer.astype(np.float32), (0, 0), 2.0)  # isotropic derivatives
    gy, gx = np.gradient(smooth.astype(np.float64))
    jxx, jyy, jxy = (gx * gx).sum(), (gy * gy).sum(), (gx * gy).sum()
    gradient_angle = 0.5 * math.degrees(math.atan2(2 * jxy, jxx - jyy))  # from the x axis
    coherence = math.hypot(jxx - jyy, 2 * jxy) / (jxx + jyy)
    streak_angle = (-gradient_angle + 90.0) % 180.0 - 90.0  # streaks are across the gradient
    return streak_angle, coherence


DEGRADATIONS_UNDER_TEST: dict[str, Degrade] = {
    "noise": lambda img, rng: add_gaussian_noise(img, 25, rng),
    "noise-random": lambda img, rng: add_gaussian_noise(img, None, rng),
    "rain": lambda img, rng: add_rain(img, rng),
    "rain-heavy": lambda img, rng: add_rain(img, rng, heavy=True),
    "haze": lambda img, rng: add_haze(img, rng),
    "motion": lambda img, rng: add_motion_blur(img, rng),
    "defocus": lambda img, rng: add_defocus_blur(img, rng),
    "blur": lambda img, rng: add_blur(img, rng),
    "lowlight": lambda img, rng: add_low_light(img, rng),
    "jpeg": lambda img, rng: add_jpeg(img, None, rng),
    "spec": lambda img, rng: apply_degradation(img, "rain+noise+jpeg", rng),
    "camnoise": lambda img, rng: add_camera_noise(img, rng),
    "linear": lambda img, rng: add_linear_blur(img, rng),
    "haze-veil": lambda img, rng: add_haze(img, rng, form="veil"),
    "haze-height": lambda img, rng: add_haze(img, rng, form="height"),
    "haze-coloured": lambda img, rng: add_haze(img, rng, colour=True),
    "dark": lambda img, rng: darken_scene(img, rng),
    "composite": lambda img, rng: apply_degradation(img, "lowlight+haze+rain", rng),
    "dark-pair": lambda img, rng: degrade_pair(img, "dark+camnoise", rng)[1],
}


@pytest.mark.parametrize("name", DEGRADATIONS_UNDER_TEST)
def test_output_shape_dtype_range_and_input_untouched(name: str) -> None:
    img = gradient_image(48, 40)
    img.flags.writeable = False  # any in-place write to the input raises
    before = img.copy()
    out = DEGRADATIONS_UNDER_TEST[name](img, seeded_rng(1, name))
    assert out.shape == img.shape
    assert out.dtype == np.float32
    assert out is not img
    assert np.all(out >= 0.0) and np.all(out <= 1.0)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(img, before)


@pytest.mark.parametrize("name", DEGRADATIONS_UNDER_TEST)
def test_same_seed_same_output_other_seed_differs(name: str) -> None:
    img = textured_image(48)
    degrade = DEGRADATIONS_UNDER_TEST[name]
    first = degrade(img, seeded_rng(3, name))
    again = degrade(img, seeded_rng(3, name))
    other = [degrade(img, seeded_rng(seed, name)) for seed in (4, 5)]
    np.testing.assert_array_equal(first, again)
    assert any(not np.array_equal(first, o) for o in other)


def test_accepts_float64_input() -> None:
    out = add_gaussian_noise(gradient_image().astype(np.float64), 10, seeded_rng(0))
    assert out.dtype == np.float32


@pytest.mark.parametrize("bad", [np.zeros((8, 8)), np.zeros((8, 8, 4)), np.zeros((0, 8, 3))])
def test_rejects_non_rgb_arrays(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        add_haze(bad, seeded_rng(0))


# --- noise -----------------------------------------------------------------------------------


def test_noise_std_matches_sigma_after_8bit_quantisation() -> None:
    grey = np.full((256, 256, 3), 0.5, dtype=np.float32)
    noisy = add_gaussian_noise(grey, 25, seeded_rng(0, "noise"))
    residual = (noisy.astype(np.float64) - 0.5) * 255
    assert abs(residual.std() - 25) < 0.02 * 25
    assert abs(residual.mean()) < 0.5
    levels = noisy * 255
    np.testing.assert_allclose(levels, np.rint(levels), atol=1e-3)  # saved as 8 bits


def test_noise_zero_sigma_only_quantises_and_bad_sigma_raises() -> None:
    img = gradient_image()
    out = add_gaussian_noise(img, 0, seeded_rng(0))
    np.testing.assert_allclose(out, np.rint(img * 255) / 255, atol=1e-6)
    with pytest.raises(ValueError):
        add_gaussian_noise(img, -5, seeded_rng(0))


# --- rain ------------------------------------------------------------------------------------


def test_streak_kernel_peaks_at_one_and_is_oriented() -> None:
    kernel = streak_kernel(length=21, width=1.5, angle=20)
    assert kernel.max() == pytest.approx(1.0)
    assert kernel.min() >= 0.0
    angle, coherence = streak_orientation(kernel)
    assert abs(angle - 20) < 2 and coherence > 0.5
    ys, xs = np.mgrid[0 : kernel.shape[0], 0 : kernel.shape[1]] - kernel.shape[0] // 2
    cxx, cyy, cxy = (kernel * xs * xs).sum(), (kernel * ys * ys).sum(), (kernel * xs * ys).sum()
    axis = 0.5 * math.degrees(math.atan2(2 * cxy, cxx - cyy))  # long axis, from the x axis
    assert 90 - axis == pytest.approx(20, abs=0.5)  # positive angle: falls towards the right


@pytest.mark.parametrize("angle", [-25.0, 0.0, 15.0])
def test_streak_layer_is_anisotropic_along_the_rain_angle(angle: float) -> None:
    layer = streak_layer(
        (96, 96), seeded_rng(2, "layer"), density=0.004, length=25, width=1.5, angle=angle
    )
    assert layer.min() >= 0.0 and layer.max() <= 1.0 and layer.max() > 0.3
    estimate, coherence = streak_orientation(layer)
    assert coherence > 0.5
    assert abs(estimate - angle) < 5


def test_rain_adds_bright_streaks_at_the_requested_angle() -> None:
    img = gradient_image(96, 96) * 0.6
    rainy = add_rain(img, seeded_rng(0, "rain"), angle=-20)
    diff = (rainy - img).mean(axis=2)
    assert rainy.mean() > img.mean()
    assert (diff >= -1e-6).all()  # screen blend only brightens
    assert (diff > 0.05).mean() > 0.02  # visible streaks
    estimate, coherence = streak_orientation(diff)
    assert coherence > 0.5 and abs(estimate + 20) < 5


def test_heavy_rain_changes_more_pixels_than_light() -> None:
    img = gradient_image(96, 96) * 0.5
    for seed in range(3):
        light = add_rain(img, seeded_rng(seed, "light"))
        heavy = add_rain(img, seeded_rng(seed, "heavy"), heavy=True)
        changed_light = (np.abs(light - img).max(axis=2) > 0.1).mean()
        changed_heavy = (np.abs(heavy - img).max(axis=2) > 0.1).mean()
        assert changed_heavy > changed_light


def test_rain_styles_heavy_is_denser_longer_wider_brighter() -> None:
    assert RAIN_HEAVY.length.low >= RAIN_LIGHT.length.low
    assert RAIN_HEAVY.length.high > RAIN_LIGHT.length.high
    assert RAIN_HEAVY.width.high > RAIN_LIGHT.width.high
    assert RAIN_HEAVY.brightness.high > RAIN_LIGHT.brightness.high
    assert RAIN_HEAVY.layers.low > RAIN_LIGHT.layers.high
    assert RAIN_HEAVY.veil.high > 0 == RAIN_LIGHT.veil.high


# --- haze ------------------------------------------------------------------------------------


def test_haze_moves_towards_airlight_and_lowers_contrast_with_beta() -> None:
    img = textured_image(64)
    airlight = 0.9
    outs = [add_haze(img, seeded_rng(0, "haze"), beta=b, airlight=airlight) for b in (0.6, 1.8)]
    distances = [float(np.abs(out - airlight).mean()) for out in outs]
    assert distances[1] < distances[0] < float(np.abs(img - airlight).mean())
    assert outs[1].std() < outs[0].std() < img.std()


def test_depth_proxy_and_transmission_ranges() -> None:
    img = gradient_image()
    depth = depth_proxy(img, seeded_rng(0))
    assert depth.shape == img.shape[:2]
    assert depth.min() >= HAZE.depth_near - 1e-6 and depth.max() <= 1.0 + 1e-6
    assert depth[:8].mean() > depth[-8:].mean()  # the top of the frame is farther
    for beta in (HAZE.beta.low, HAZE.beta.high, 0.0):
        trans = transmission(depth, beta)
        assert (trans > 0).all() and (trans <= 1).all()
    assert (transmission(depth, 1.8) <= transmission(depth, 0.6)).all()


def test_haze_airlight_is_per_image_and_in_range() -> None:
    white = np.ones((32, 32, 3), dtype=np.float32)
    black = np.zeros((32, 32, 3), dtype=np.float32)
    for seed in range(5):
        hazy_black = add_haze(black, seeded_rng(seed), beta=50.0, colour=False)  # t ~ 0: A
        assert hazy_black.min() >= HAZE.airlight.low * (1 - HAZE.airlight_tint) - 1e-6
        assert hazy_black.max() <= 1.0
        assert add_haze(white, seeded_rng(seed)).max() <= 1.0


def test_depth_haze_with_a_grey_airlight_is_the_haze_of_before_draw_for_draw() -> None:
    """The new forms and colours are drawn after what haze drew before them, so old samples
    of the depth form with a grey airlight do not change (nor does "haze:BETA")."""
    img = textured_image(48)
    rng = seeded_rng(4, "haze")
    beta, light = HAZE.beta.sample(rng), pick_airlight(rng)
    trans = transmission(depth_proxy(img, rng), beta)[..., None]
    before = np.clip(img * trans + light * (1 - trans), 0, 1)
    now = add_haze(img, seeded_rng(4, "haze"), form="depth", colour=False)
    np.testing.assert_allclose(now, before, atol=1e-6)
    rng = seeded_rng(4, "haze")
    beta_given = add_haze(img, rng, beta=1.2, colour=False)
    np.testing.assert_array_equal(
        apply_degradation(img, "haze:1.2", seeded_rng(4, "haze")), beta_given
    )


def test_an_even_veil_raises_the_black_level_and_keeps_contrast_linear() -> None:
    ramp = np.repeat(np.linspace(0, 1, 64, dtype=np.float32)[None, :, None], 3, 2)
    img = np.repeat(ramp, 32, axis=0)
    for seed in range(6):
        out = add_haze(img, seeded_rng(seed), form="veil", colour=False)
        # I t + A (1 - t) with one t: every column moves by the same affine map.
        t = (out[:, -1] - out[:, 0]).mean() / (img[:, -1] - img[:, 0]).mean()
        assert HAZE.veil_transmission.low - 0.02 <= t <= HAZE.veil_transmission.high + 0.02
        black = out[:, 0]
        assert black.min() >= HAZE.airlight.low * (1 - HAZE.airlight_tint) * (1 - 0.8) - 0.01
        assert np.ptp(black, axis=0).max() < 1e-5  # even: the same everywhere


def test_height_haze_grows_towards_the_top_and_little_across() -> None:
    flat = np.full((64, 64, 3), 0.2, np.float32)
    for seed in range(6):
        out = add_haze(flat, seeded_rng(seed), form="height", airlight=0.95)
        top, bottom = out[:6].mean(), out[-6:].mean()
        left, right = out[:, :6].mean(), out[:, -6:].mean()
        assert top > bottom + 0.1
        assert abs(left - right) < (top - bottom) / 2  # the horizon leans 15 degrees at most


def test_haze_forms_and_coloured_airlights_are_drawn_at_their_shares() -> None:
    draws = [draw_haze((16, 16), seeded_rng(seed, "forms")) for seed in range(800)]
    forms = Counter(d.form for d in draws)
    for form, share in zip(HAZE.form.options, HAZE.form.probabilities, strict=True):
        assert abs(forms[form] / len(draws) - share) < 0.05
    spread = np.array([np.ptp(d.airlight) for d in draws])
    coloured = spread > 2 * HAZE.airlight_tint  # a grey airlight's tint is +-4 % at most
    assert abs(coloured.mean() - HAZE.coloured_probability) < 0.05
    assert all(((d.airlight >= 0) & (d.airlight <= 1)).all() for d in draws)
    warm = [
        d.airlight
        for d, c in zip(draws, coloured, strict=True)
        if c and d.airlight[0] > d.airlight[2]
    ]
    assert 0.3 < len(warm) / coloured.sum() < 0.7  # yellowish and bluish alike


# --- blur ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [7, 15, 31, 10])
def test_motion_kernels_are_normalised_non_negative_and_sized(size: int) -> None:
    for seed in range(4):
        kernel = motion_kernel(seeded_rng(seed, "kernel"), size)
        assert kernel.shape == (size | 1, size | 1)
        assert kernel.min() >= 0.0
        assert kernel.sum() == pytest.approx(1.0, abs=1e-5)
        ys, xs = np.mgrid[0 : kernel.shape[0], 0 : kernel.shape[1]]
        centre = (kernel.shape[0] - 1) / 2
        assert abs((kernel * xs).sum() - centre) < kernel.shape[0] / 4 + 0.5
        assert abs((kernel * ys).sum() - centre) < kernel.shape[0] / 4 + 0.5
        assert (kernel > 0).sum() > 2  # a path, not a point


@pytest.mark.parametrize("radius", [1.0, 2.5, 6.0])
def test_defocus_kernel_is_a_normalised_disc(radius: float) -> None:
    kernel = defocus_kernel(radius)
    assert kernel.min() >= 0.0 and kernel.sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(kernel, kernel.T, atol=1e-7)
    np.testing.assert_allclose(kernel, kernel[::-1], atol=1e-7)
    assert kernel.shape[0] % 2 == 1


def test_blur_removes_high_frequencies() -> None:
    img = textured_image(64)
    sharp = laplacian_variance(img)
    for seed in range(3):
        assert laplacian_variance(add_motion_blur(img, seeded_rng(seed))) < 0.5 * sharp
        assert laplacian_variance(add_blur(img, seeded_rng(seed))) < 0.5 * sharp
    assert laplacian_variance(add_defocus_blur(img, seeded_rng(0))) < 0.5 * sharp


def test_larger_defocus_radius_blurs_more() -> None:
    img = textured_image(64)
    energies = [
        laplacian_variance(add_defocus_blur(img, seeded_rng(0), radius=r)) for r in (1, 2, 4, 6)
    ]
    assert energies == sorted(energies, reverse=True)
    assert energies[-1] < energies[0]


def test_blur_kind_is_honoured_and_checked() -> None:
    img = textured_image(48)
    rng = seeded_rng(9)
    rng.random()  # add_blur draws its random choice even when the kind is given
    np.testing.assert_array_equal(
        add_blur(img, seeded_rng(9), kind="defocus"), add_defocus_blur(img, rng)
    )
    with pytest.raises(ValueError):
        add_blur(img, seeded_rng(0), kind="zoom")


def principal_axes(kernel: np.ndarray) -> tuple[float, float, float]:
    """(angle in degrees anticlockwise from the x axis in [0, 180), standard deviations along
    and across it) of a kernel's mass."""
    ys, xs = np.mgrid[0 : kernel.shape[0], 0 : kernel.shape[1]].astype(np.float64)
    weights = kernel / kernel.sum()
    x = xs - (weights * xs).sum()
    y = -(ys - (weights * ys).sum())  # y up
    cov = np.array(
        [
            [(weights * x * x).sum(), (weights * x * y).sum()],
            [(weights * x * y).sum(), (weights * y * y).sum()],
        ]
    )
    values, vectors = np.linalg.eigh(cov)
    major = vectors[:, 1]
    angle = math.degrees(math.atan2(major[1], major[0])) % 180.0
    return angle, math.sqrt(values[1]), math.sqrt(max(values[0], 0.0))


@pytest.mark.parametrize("angle", [0.0, 30.0, 45.0, 90.0, 120.0, 170.0])
def test_linear_motion_smears_a_point_into_a_line_at_its_angle(angle: float) -> None:
    point = np.zeros((41, 41, 3), np.float32)
    point[20, 20] = 1.0
    smear = add_linear_blur(point, seeded_rng(0), length=21.0, angle=angle)[..., 0]
    measured, along, across = principal_axes(smear)
    assert min(abs(measured - angle), 180 - abs(measured - angle)) < 1.5
    assert smear.sum() == pytest.approx(1.0, abs=1e-4)
    # a uniform segment of L points has variance (L^2 - 1) / 12 along it; across, a pixel
    assert along == pytest.approx(math.sqrt((21**2 - 1) / 12), rel=0.05)
    assert across < 0.6


def test_a_15_px_horizontal_motion_covers_15_columns_of_one_row() -> None:
    kernel = linear_motion_kernel(15.0, 0.0)
    assert kernel.shape == (15, 15)
    assert (kernel[7] > 0).sum() == 15 and kernel[7].sum() == pytest.approx(1.0, abs=1e-5)
    assert kernel.min() >= 0


def test_blur_kinds_are_drawn_at_their_shares() -> None:
    counts = Counter(BLUR.kind.sample(seeded_rng(seed, "kinds")) for seed in range(1500))
    for kind, share in zip(BLUR.kind.options, BLUR.kind.probabilities, strict=True):
        assert abs(counts[kind] / 1500 - share) < 0.04
    img = textured_image(48)
    assert laplacian_variance(
        add_blur(img, seeded_rng(0), kind="linear")
    ) < 0.5 * laplacian_variance(img)


# --- low light -------------------------------------------------------------------------------


@pytest.mark.parametrize(("gain", "gamma"), [(0.3, 1.5), (0.1, 2.0), (0.05, 3.0)])
def test_low_light_darkens_by_at_least_the_gain(gain: float, gamma: float) -> None:
    img = gradient_image()
    dark = add_low_light(img, seeded_rng(0, "ll"), gain=gain, gamma=gamma)
    # display values are linear ** (1 / 2.2), so a linear gain g scales them by g ** (1 / 2.2)
    factor = gain ** (1 / LOW_LIGHT.display_gamma)
    assert dark.mean() <= factor * img.mean() + 0.01
    assert to_linear(dark).mean() <= gain * to_linear(img).mean() + 0.002


def test_low_light_default_ranges_darken() -> None:
    img = gradient_image()
    factor = LOW_LIGHT.gain.high ** (1 / LOW_LIGHT.display_gamma)
    for seed in range(4):
        assert add_low_light(img, seeded_rng(seed)).mean() <= factor * img.mean() + 0.01


def test_poisson_gaussian_noise_variance_grows_with_signal() -> None:
    photons = 1000.0
    rng = seeded_rng(0, "shot")
    levels = [0.01, 0.05, 0.2]
    variances = []
    for level in levels:
        flat = np.full((128, 128, 3), level, dtype=np.float32)
        noisy = poisson_gaussian_noise(flat, photons, 0.0, rng)
        assert noisy.mean() == pytest.approx(level, rel=0.03)
        variances.append(float(noisy.var()))
    for level, variance in zip(levels, variances, strict=True):
        assert variance == pytest.approx(level / photons, rel=0.1)
    read_only = poisson_gaussian_noise(np.zeros((128, 128, 3)), photons, 0.01, rng)
    assert read_only.std() == pytest.approx(0.01, rel=0.05)


def test_low_light_noise_is_signal_dependent() -> None:
    img = np.concatenate(
        [np.full((64, 64, 3), 0.55, np.float32), np.full((64, 64, 3), 1.0, np.float32)], axis=1
    )
    dark = add_low_light(img, seeded_rng(1), gain=0.3, gamma=1.0, photons=2000, read_noise=1e-4)
    linear = to_linear(dark)
    dim, bright = linear[:, :64], linear[:, 64:]
    assert bright.mean() > 3 * dim.mean()
    assert bright.var() > 2 * dim.var()


# --- camera noise ----------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", BAYER_PATTERNS)
def test_demosaicing_a_mosaic_gives_back_flat_colours_and_ramps(pattern: str) -> None:
    flat = np.zeros((10, 12, 3), np.float32) + np.array([0.2, 0.5, 0.7], np.float32)
    np.testing.assert_allclose(demosaic(mosaic(flat, pattern), pattern), flat, atol=1e-6)
    ys, xs = np.mgrid[0:32, 0:32].astype(np.float32)
    ramps = np.stack([xs / 31, ys / 31, (xs + ys) / 62], axis=2)
    inner = demosaic(mosaic(ramps, pattern), pattern)[2:-2, 2:-2]
    np.testing.assert_allclose(inner, ramps[2:-2, 2:-2], atol=1e-5)  # linear inside the border
    sampled = mosaic(ramps, pattern)
    assert sampled[0, 0] == ramps[0, 0, "rgb".index(pattern[0])]


def test_camera_noise_variance_grows_with_the_signal() -> None:
    """Poisson-Gaussian: in linear light the variance of the noise grows in proportion to the
    level (read noise made negligible here); red and blue, amplified by the white balance,
    are noisier than green."""
    levels, variances = [], []
    for level in (0.2, 0.4, 0.7):
        flat = np.full((96, 96, 3), level, np.float32)
        out = add_camera_noise(flat, seeded_rng(1), shot=0.01, read=1e-8, quality=100)
        residual = (to_linear(out) - to_linear(flat))[8:-8, 8:-8]
        channel_variance = residual.var(axis=(0, 1))
        assert (
            channel_variance[0] > channel_variance[1] and channel_variance[2] > channel_variance[1]
        )
        levels.append(float(to_linear(flat).mean()))
        variances.append(float(channel_variance.mean()))
    ratios = np.array(variances) / np.array(levels)
    assert variances == sorted(variances)
    assert ratios.max() < 1.6 * ratios.min()  # variance / level roughly constant


def test_camera_noise_is_phone_like_and_stronger_with_the_shot_gain() -> None:
    img = gradient_image()
    scores = [psnr(add_camera_noise(img, seeded_rng(seed)), img) for seed in range(12)]
    assert min(scores) > 18 and max(scores) < 48  # SIDD-like inputs, not sigma 50 nor clean
    weak, strong = (psnr(add_camera_noise(img, seeded_rng(0), shot=a), img) for a in (1e-4, 1e-2))
    assert weak > strong + 8
    assert float(add_camera_noise(img, seeded_rng(0), shot=1e-4).mean()) == pytest.approx(
        float(img.mean()), abs=0.01
    )


# --- dark scenes -----------------------------------------------------------------------------


def test_a_dark_scene_is_darkened_to_its_level_and_stays_its_own_target() -> None:
    img = gradient_image()
    for seed in range(5):
        noisy, target = degrade_pair(img, "dark+camnoise", seeded_rng(seed))
        assert DARK_SCENE.level.low - 0.01 <= target.mean() <= DARK_SCENE.level.high + 0.01
        assert abs(float(noisy.mean() - target.mean())) < 0.03  # not brightened
        np.testing.assert_array_equal(target, darken_scene(img, seeded_rng(seed)))
    assert task_spec("darkscene") == "dark+camnoise"


def test_a_dark_scene_keeps_its_highlights_where_low_light_has_none() -> None:
    """A dark scene is exposed for its bright parts; under-exposure (low light) darkens them
    with the rest. The top of the range tells the two apart."""
    img = gradient_image()
    img[:8, :8] = 1.0  # a lamp
    scene = darken_scene(img, seeded_rng(0), level=0.1)
    assert scene.mean() == pytest.approx(0.1, abs=1 / 255)
    assert scene[:8, :8].min() > 0.85  # the lamp stays bright
    under = [add_low_light(img, seeded_rng(seed)) for seed in range(10)]
    assert max(float(np.percentile(u, 99.5)) for u in under) < 0.6
    assert float(np.percentile(scene, 99.5)) > 0.9


def test_a_dark_scene_keeps_the_order_of_brightness_and_each_pixel_s_colour() -> None:
    img = gradient_image()
    scene = darken_scene(img, seeded_rng(1), level=0.12).astype(np.float64)
    weights = np.asarray(DARK_SCENE.luma_weights)
    order = np.argsort((img.astype(np.float64) @ weights).ravel())
    darkened = (scene @ weights).ravel()
    assert np.all(np.diff(darkened[order]) >= -2 / 255)  # brighter stays brighter
    lit = scene.min(axis=2) > 20 / 255  # away from 8-bit rounding's relative error
    ratio = scene[lit] / scene[lit].sum(axis=1, keepdims=True)
    clean = img[lit] / img[lit].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(ratio, clean, atol=0.03)  # the colour kept, only darker


def test_a_photo_too_bright_for_the_curve_is_scaled_the_rest_of_the_way() -> None:
    white = np.ones((16, 16, 3), np.float32)  # no tone curve darkens white
    np.testing.assert_allclose(darken_scene(white, seeded_rng(0), level=0.1), 26 / 255)


def test_a_photo_already_dark_is_not_darkened_further_nor_brightened() -> None:
    night = gradient_image() * 0.05
    np.testing.assert_allclose(darken_scene(night, seeded_rng(0)), night, atol=0.5 / 255 + 1e-7)
    _, target = degrade_pair(night, "noise:15", seeded_rng(0))
    assert np.array_equal(target, night)  # no scene step: the photo


# --- jpeg ------------------------------------------------------------------------------------


def test_jpeg_psnr_falls_with_quality() -> None:
    img = textured_image(64)
    scores = [psnr(img, add_jpeg(img, q, seeded_rng(0))) for q in (95, 60, 30, 10)]
    assert scores == sorted(scores, reverse=True)
    with pytest.raises(ValueError):
        add_jpeg(img, 0, seeded_rng(0))


# --- specs, seeds and tasks ------------------------------------------------------------------

CANONICAL_SPECS = [
    "noise:25",
    "noise",
    "noise:12.5",
    "rain",
    "rain:heavy",
    "rain:light",
    "haze",
    "haze:1.2",
    "blur",
    "blur:motion",
    "blur:defocus",
    "lowlight",
    "jpeg",
    "jpeg:40",
    "noise:25+jpeg:40",
    "rain:heavy+haze+noise:15",
    "haze:veil",
    "haze:height",
    "haze:depth",
    "blur:linear",
    "camnoise",
    "dark+camnoise",
    "lowlight+haze",
]


@pytest.mark.parametrize("spec", CANONICAL_SPECS)
def test_spec_round_trips(spec: str) -> None:
    parsed = parse_spec(spec)
    assert str(parsed) == spec
    assert parse_spec(str(parsed)) == parsed


def test_spec_is_normalised() -> None:
    assert str(parse_spec(" Noise : 25.0 + JPEG:40 ")) == "noise:25+jpeg:40"
    assert [s.name for s in parse_spec("rain:heavy+haze").steps] == ["rain", "haze"]


@pytest.mark.parametrize(
    "spec",
    [
        "fog",
        "noise:abc",
        "noise:-1",
        "noise:nan",
        "jpeg:0",
        "jpeg:40.5",
        "blur:zoom",
        "rain:medium",
        "lowlight:2",
        "noise+",
        "",
        "  ",
        "noise:",
        "haze:99",
        "haze:fog",
        "camnoise:3",
        "dark:0.1",
    ],
)
def test_bad_specs_raise_measr_error_with_hint(spec: str) -> None:
    with pytest.raises(MeasrError) as caught:
        parse_spec(spec)
    for name in DEGRADATIONS:
        assert name in caught.value.hint


def test_unknown_degradation_message_names_it() -> None:
    with pytest.raises(MeasrError, match="fog"):
        apply_degradation(gradient_image(), "noise:10+fog", seeded_rng(0))


def test_apply_degradation_composes_left_to_right() -> None:
    img = gradient_image()
    rng = seeded_rng(5)
    by_hand = add_jpeg(add_gaussian_noise(img, 25, rng), 40, rng)
    np.testing.assert_array_equal(
        apply_degradation(img, "noise:25+jpeg:40", seeded_rng(5)), by_hand
    )
    np.testing.assert_array_equal(
        apply_degradation(img, parse_spec("noise:25+jpeg:40"), seeded_rng(5)), by_hand
    )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "noise",
                "noise:0",
                "noise:55",
                "rain",
                "rain:heavy",
                "haze:0.6",
                "blur:defocus",
                "lowlight",
                "jpeg:10",
                "jpeg:95",
            ]
        ),
        min_size=1,
        max_size=4,
    )
)
def test_any_composition_parses_and_stays_in_range(steps: list[str]) -> None:
    spec = "+".join(steps)
    assert str(parse_spec(spec)) == spec
    out = apply_degradation(gradient_image(24, 24), spec, seeded_rng(0, spec))
    assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0


def test_steps_apply_in_the_camera_s_order_whatever_order_they_are_written_in() -> None:
    img = textured_image(48)
    rng = seeded_rng(2)
    by_hand = add_low_light(add_rain(add_haze(img, rng), rng), rng)
    for spec in ("lowlight+haze+rain", "rain+lowlight+haze", "haze+rain+lowlight"):
        np.testing.assert_array_equal(apply_degradation(img, spec, seeded_rng(2)), by_hand)
    order = [step.name for step in parse_spec("jpeg:40+noise+blur+lowlight+rain+haze+dark").applied]
    assert order == ["dark", "haze", "rain", "lowlight", "blur", "noise", "jpeg"]
    assert str(parse_spec("lowlight+haze")) == "lowlight+haze"  # written order kept in its name


@pytest.mark.parametrize("spec", COMPOSITES)
def test_composites_are_reproducible_and_name_their_kinds(spec: str) -> None:
    img = textured_image(48)
    first = apply_degradation(img, spec, seeded_rng(0, spec))
    np.testing.assert_array_equal(first, apply_degradation(img, spec, seeded_rng(0, spec)))
    assert not np.array_equal(first, apply_degradation(img, spec, seeded_rng(1, spec)))
    kinds = spec_kinds(spec)
    assert len(kinds) == len(parse_spec(spec).steps) >= 2
    assert set(kinds) <= set(DEGRADATION_KINDS)
    assert spec_kinds("lowlight+haze+rain") == ("haze", "rain", "lowlight")
    assert spec_kinds("dark+camnoise+jpeg") == ("noise",)


def test_seeded_rng_is_stable_and_key_sensitive() -> None:
    # Fixed numbers: a salted hash() or another derivation would change them between runs.
    first = seeded_rng(0, "kodim01.png", "noise:25").integers(0, 2**31, 3)
    np.testing.assert_array_equal(first, [1143833926, 1778455950, 307354369])
    second = seeded_rng(7).integers(0, 2**31, 3)
    np.testing.assert_array_equal(second, [2029167941, 1342382292, 1469265226])
    draws = {
        key: seeded_rng(0, *key).random()
        for key in [("a.png",), ("b.png",), ("a.png", "noise"), ("noise", "a.png"), (5,), ("5",)]
    }
    assert len(set(draws.values())) == len(draws)
    assert seeded_rng(1, "a.png").random() != seeded_rng(0, "a.png").random()
    with pytest.raises(ValueError):
        seeded_rng(-1)


def test_explicit_parameter_does_not_shift_the_random_stream() -> None:
    span = Span(0.0, 1.0)
    a, b = seeded_rng(0), seeded_rng(0)
    assert span.pick(a, 0.25) == 0.25
    span.pick(b)
    assert a.random() == b.random()


def test_task_specs_parse_and_mixes_sum_to_one() -> None:
    for spec in TASK_SPECS.values():
        parse_spec(spec)
    tasks = {"noise15", "noise25", "noise50", "rain", "haze", "blur", "lowlight", "clean"}
    tasks |= {"camnoise", "darkscene"} | set(COMPOSITES)  # a composite is a task named by its spec
    assert set(TASK_SPECS) == tasks
    assert task_spec("noise25") == "noise:25"
    for mix in MIXES.values():
        assert set(mix) <= set(TASK_SPECS)
        assert math.isclose(sum(mix.values()), 1.0)
        assert all(weight > 0 for weight in mix.values())
    three, five = mix_weights("three"), mix_weights("five")
    noise = ("noise15", "noise25", "noise50")
    assert math.isclose(sum(three[t] for t in noise), 1 / 3)
    assert math.isclose(three["rain"], 1 / 3) and math.isclose(three["haze"], 1 / 3)
    assert math.isclose(sum(five[t] for t in noise), 1 / 5)
    assert all(math.isclose(five[t], 1 / 5) for t in ("rain", "haze", "blur", "lowlight"))
    assert set(five) == set(three) | {"blur", "lowlight"}


def test_every_task_maps_to_a_kind_the_prompt_names() -> None:
    assert set(TASK_KINDS) == set(TASK_SPECS) - set(COMPOSITES)
    assert set(TASK_KINDS.values()) <= set(DEGRADATION_KINDS)
    for spec in COMPOSITES:  # several kinds each, every one a kind the prompt names
        assert len(task_kinds(spec)) >= 2 and set(task_kinds(spec)) <= set(DEGRADATION_KINDS)
    assert TASK_KINDS["camnoise"] == TASK_KINDS["darkscene"] == "noise"


def test_the_eight_mix_adds_phone_noise_and_dark_scenes_after_six() -> None:
    six, eight = mix_weights("six"), mix_weights("eight")
    assert list(eight) == [*six, "camnoise", "darkscene"]  # the old tasks keep their numbers
    assert math.isclose(sum(eight.values()), 1.0)
    assert eight["camnoise"] == 0.1 and eight["darkscene"] == 0.04
    assert all(math.isclose(eight[t], six[t] * 0.86) for t in six)


def test_pick_task_follows_the_weights() -> None:
    rng = seeded_rng(0, "tasks")
    counts = Counter(pick_task("five", rng) for _ in range(3000))
    weights = mix_weights("five")
    assert set(counts) == set(weights)
    for task, weight in weights.items():
        assert abs(counts[task] / 3000 - weight) < 0.03
    with pytest.raises(MeasrError):
        pick_task("seven", rng)
    with pytest.raises(MeasrError):
        task_spec("snow")


def test_mix_task_order_is_stable() -> None:
    # Training numbers tasks by their position in the mix: the order is part of the data.
    assert list(mix_weights("three")) == ["noise15", "noise25", "noise50", "rain", "haze"]
    assert list(mix_weights("five")) == [*mix_weights("three"), "blur", "lowlight"]


def test_a_reweighted_mix_keeps_the_task_order_and_sums_to_one() -> None:
    five = mix_weights("five")
    heavy_rain = mix_weights("five:rain=2, noise=0.5")
    assert list(heavy_rain) == list(five)
    assert math.isclose(sum(heavy_rain.values()), 1.0)
    # rain 2/5, the noise sigmas together 1/10, the other three tasks 1/5 each: total 1.1
    assert math.isclose(heavy_rain["rain"], 0.4 / 1.1)
    assert math.isclose(heavy_rain["noise25"], (1 / 30) / 1.1)
    assert math.isclose(heavy_rain["haze"], 0.2 / 1.1)
    assert mix_weights("five:blur=0")["blur"] == 0
    rng = seeded_rng(0, "tasks")
    counts = Counter(pick_task("five:rain=3", rng) for _ in range(2000))
    assert abs(counts["rain"] / 2000 - 3 / 7) < 0.04


@pytest.mark.parametrize(
    "mix",
    [
        "seven:rain=2",
        "five:snow=2",
        "three:blur=2",
        "five:rain",
        "five:rain=-1",
        "five:rain=x",
        "five:rain=inf",
        "three:noise=0,rain=0,haze=0",
    ],
)
def test_a_bad_reweighted_mix_is_refused_with_a_hint(mix: str) -> None:
    with pytest.raises(MeasrError) as caught:
        mix_weights(mix)
    assert caught.value.hint
