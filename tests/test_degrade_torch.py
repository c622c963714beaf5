"""The batched torch degradations against the numpy ones they stand in for.

Where the operation is deterministic given its parameters (haze, blur, the darkening of low
light, rain streaks given their seeds, 8-bit rounding) the two must agree to float32 rounding
(1e-5). Where pixels are random (noise, photon counts, streak seeds) the statistics of many
images must agree within the tolerances stated by each test.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from measr.degrade import apply_degradation, degrade_pair, seeded_rng
from measr.degrade._image import quantize_8bit
from measr.degrade.batched import degrade_batch, degrade_batch_pair, draw_recipe, ops
from measr.degrade.batched.recipes import softened
from measr.degrade.lowlight import darken, to_display, to_linear
from measr.degrade.rain import SEED_INTENSITY, streak_kernel

ROUNDING = 1e-5  # float32 arithmetic in another order (FFT convolution, fused ops)


def photo(seed: int, height: int = 72, width: int = 88) -> np.ndarray:
    """A photo-like float32 (H, W, 3) image: smooth colours, an edge and some texture."""
    rng = np.random.default_rng(seed)
    small = rng.random((5, 5, 3)).astype(np.float32)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    image[height // 3 : height // 2, width // 4 :] = 0.95
    texture = rng.random((height, width, 3)).astype(np.float32) * 0.1
    return np.clip(image * 0.9 + texture, 0.0, 1.0).astype(np.float32)


def batch_of(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack([im.transpose(2, 0, 1) for im in images]).copy())


def images_of(batch: torch.Tensor) -> list[np.ndarray]:
    return [im.permute(1, 2, 0).numpy() for im in batch]


def both(spec: str, images: list[np.ndarray], seed: int = 0) -> tuple[list, list]:
    """numpy's and the batched degradation of the images, each image from the same generator
    (seeded by its position) on both sides."""
    numpy_out = [
        apply_degradation(im, spec, seeded_rng(seed, spec, i)) for i, im in enumerate(images)
    ]
    recipes = [
        draw_recipe(spec, im.shape[:2], seeded_rng(seed, spec, i)) for i, im in enumerate(images)
    ]
    generator = torch.Generator().manual_seed(seed)
    return numpy_out, images_of(degrade_batch(batch_of(images), recipes, generator))


@pytest.mark.parametrize(
    "spec",
    [
        "haze",
        "haze:1.2",
        "haze:depth",
        "haze:veil",
        "haze:height",
        "blur",
        "blur:motion",
        "blur:linear",
        "blur:defocus",
        "none",
        "dark",
        "blur:linear+haze+dark",
    ],
)
def test_deterministic_degradations_match_numpy(spec: str) -> None:
    images = [photo(i) for i in range(6)]
    expected, got = both(spec, images)
    for want, have in zip(expected, got, strict=True):
        np.testing.assert_allclose(have, want, atol=ROUNDING)


def test_square_and_odd_sizes_degrade_alike() -> None:
    images = [photo(7, 64, 64), photo(8, 64, 64)]
    for spec in ("haze", "blur"):
        expected, got = both(spec, images, seed=3)
        np.testing.assert_allclose(np.stack(got), np.stack(expected), atol=ROUNDING)


def test_mixed_batch_degrades_each_image_by_its_own_recipe() -> None:
    specs = ["blur", "haze", "none", "haze", "blur", "noise:25"]
    images = [photo(i) for i in range(len(specs))]
    recipes = [
        draw_recipe(s, im.shape[:2], seeded_rng(1, i))
        for i, (s, im) in enumerate(zip(specs, images, strict=True))
    ]
    clean = batch_of(images)
    out = images_of(degrade_batch(clean, recipes, torch.Generator().manual_seed(0)))
    for i, spec in enumerate(specs[:-1]):  # the noise image is random: checked below
        np.testing.assert_allclose(
            out[i], apply_degradation(images[i], spec, seeded_rng(1, i)), atol=ROUNDING
        )
    assert np.abs(out[-1] - images[-1]).std() > 0.05
    assert torch.equal(clean, batch_of(images))  # the input is left alone


def test_same_generator_seed_gives_the_same_batch() -> None:
    images = [photo(i) for i in range(4)]
    recipes = [
        draw_recipe("rain+noise:15", im.shape[:2], seeded_rng(0, i)) for i, im in enumerate(images)
    ]
    first = degrade_batch(batch_of(images), recipes, torch.Generator().manual_seed(5))
    again = degrade_batch(batch_of(images), recipes, torch.Generator().manual_seed(5))
    other = degrade_batch(batch_of(images), recipes, torch.Generator().manual_seed(6))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_8_bit_rounding_is_numpy_s() -> None:
    values = np.linspace(-0.1, 1.1, 4097, dtype=np.float32).reshape(1, 1, 1, -1)
    assert torch.equal(
        ops.quantize_8bit(torch.from_numpy(values)), torch.from_numpy(quantize_8bit(values))
    )


def test_low_light_darkening_with_the_same_gamma_is_numpy_s() -> None:
    image = photo(2)
    gains, gammas = [0.05, 0.17, 0.3], [1.5, 2.2, 3.0]
    got = ops.darken_display(batch_of([image] * 3), torch.tensor(gains), torch.tensor(gammas))
    for have, gain, gamma in zip(images_of(got), gains, gammas, strict=True):
        np.testing.assert_allclose(have, darken(to_linear(image), gain, gamma), atol=ROUNDING)


def residual_std(noisy: list[np.ndarray], clean: list[np.ndarray]) -> float:
    return float(np.std(np.stack(noisy) - np.stack(clean)))


def test_gaussian_noise_statistics_match_numpy() -> None:
    """Residual std within 2 % of numpy's and of sigma / 255 (sigma 25 on 8 x 6 kpx: the
    sampling error of the std is ~0.3 %, 8-bit rounding adds ~0.1 %)."""
    images = [photo(i) * 0.6 + 0.2 for i in range(8)]  # no clipping at 0 or 1
    expected, got = both("noise:25", images)
    assert residual_std(got, images) == pytest.approx(residual_std(expected, images), rel=0.02)
    assert residual_std(got, images) == pytest.approx(25 / 255, rel=0.02)


def test_low_light_statistics_match_numpy() -> None:
    """Same parameters on both sides (recipes draw them as numpy does): the mean of the dark
    images within 1 % and the std of their sensor noise within 5 % (8-bit steps are coarse
    against the noise in the shadows)."""
    images = [photo(i) for i in range(8)]
    expected, got = both("lowlight", images)
    recipes = [
        draw_recipe("lowlight", im.shape[:2], seeded_rng(0, "lowlight", i))
        for i, im in enumerate(images)
    ]
    noiseless = []
    for image, recipe in zip(images, recipes, strict=True):
        drawn = recipe.steps[0].values
        noiseless.append(
            to_display(darken(to_linear(image), float(drawn["gain"]), float(drawn["gamma"])))
        )
    assert np.mean(got) == pytest.approx(np.mean(expected), rel=0.01)
    assert residual_std(got, noiseless) == pytest.approx(
        residual_std(expected, noiseless), rel=0.05
    )


def test_rain_streaks_given_their_seeds_are_numpy_s() -> None:
    """numpy's streak layer (line kernel, then the softening Gaussian) from the same seeds."""
    height, width, length, streak_width, angle, softness = 40, 48, 21.0, 1.5, 17.0, 0.6
    kernel = streak_kernel(length, streak_width, angle)
    pad = kernel.shape[0] // 2 + 1  # numpy's seed margin
    rng = np.random.default_rng(4)
    seeds = (rng.random((height + 2 * pad, width + 2 * pad)) < 0.01) * rng.uniform(
        *SEED_INTENSITY, (height + 2 * pad, width + 2 * pad)
    )
    seeds = seeds.astype(np.float32)
    streaks = cv2.filter2D(seeds, cv2.CV_32F, kernel, borderType=cv2.BORDER_CONSTANT)
    streaks = cv2.GaussianBlur(streaks, (0, 0), sigmaX=softness)[pad:-pad, pad:-pad]
    expected = np.clip(streaks, 0, 1)
    folded = softened(kernel, softness)
    margin = folded.shape[0] // 2 - pad  # the folded kernel reaches a little farther
    wide = np.pad(seeds, margin)
    flat = torch.zeros(1, 3, height, width)
    got = ops.rain(
        flat,
        torch.from_numpy(wide)[None, None],
        torch.from_numpy(np.flip(folded).copy())[None, None],
        torch.ones(1, 1),
        torch.zeros(1),
        torch.zeros(1),
    )
    np.testing.assert_allclose(got[0, 0].numpy(), expected, atol=ROUNDING)


@pytest.mark.parametrize("spec", ["rain", "rain:heavy"])
def test_rain_statistics_match_numpy(spec: str) -> None:
    """Over 24 images: the mean brightening within 15 % of numpy's and the share of pixels a
    streak touches (> 0.05) within 15 % (one image varies by ~50 %: its streak count, angle
    and length are random)."""
    images = [photo(i % 6) * 0.7 for i in range(24)]
    expected, got = both(spec, images)

    def brightening(out: list[np.ndarray]) -> float:
        return float(np.mean(np.stack(out) - np.stack(images)))

    def touched(out: list[np.ndarray]) -> float:
        return float(np.mean(np.stack(out) - np.stack(images) > 0.05))

    assert brightening(got) == pytest.approx(brightening(expected), rel=0.15)
    assert touched(got) == pytest.approx(touched(expected), rel=0.15)


@pytest.mark.parametrize("spec", ["noise:15+jpeg:40", "camnoise", "dark+camnoise"])
def test_jpeg_and_phone_noise_have_no_batched_twin(spec: str) -> None:
    with pytest.raises(ValueError, match="CPU"):
        draw_recipe(spec, (32, 32), seeded_rng(0))


def test_a_dark_scene_s_target_is_the_dark_scene_on_the_device_too() -> None:
    """degrade_batch_pair gives numpy's degrade_pair targets: the darkened photo for a dark
    scene, the clean photo for the rest; the degraded dark scenes keep its level."""
    specs = ["dark+noise:15", "haze", "dark", "noise:25+dark"]
    images = [photo(i) for i in range(len(specs))]
    recipes = [
        draw_recipe(s, im.shape[:2], seeded_rng(3, i))
        for i, (s, im) in enumerate(zip(specs, images, strict=True))
    ]
    degraded, target = degrade_batch_pair(
        batch_of(images), recipes, torch.Generator().manual_seed(0)
    )
    for i, (spec, image) in enumerate(zip(specs, images, strict=True)):
        want_degraded, want_target = degrade_pair(image, spec, seeded_rng(3, i))
        np.testing.assert_allclose(images_of(target)[i], want_target, atol=ROUNDING)
        if "noise" not in spec:
            np.testing.assert_allclose(images_of(degraded)[i], want_degraded, atol=ROUNDING)
        else:
            assert float(degraded[i].mean()) == pytest.approx(float(want_degraded.mean()), abs=0.01)
    assert torch.equal(target[1], batch_of(images)[1])


def test_mirrored_padding_is_opencv_s() -> None:
    image = np.random.default_rng(0).random((9, 11)).astype(np.float32)
    expected = cv2.copyMakeBorder(image, 4, 4, 4, 4, cv2.BORDER_REFLECT)
    got = ops.pad_symmetric(torch.from_numpy(image)[None, None], 4)[0, 0].numpy()
    assert np.array_equal(got, expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batched_degradations_on_cuda_match_the_cpu() -> None:
    """On the GPU (cuFFT, the CUDA generator): the deterministic ones as on the CPU, the random
    ones in range with the CPU's noise level within 5 %."""
    specs = ["haze", "blur", "none", "noise:25", "lowlight", "rain"]
    images = [photo(i) * 0.6 + 0.2 for i in range(len(specs))]
    recipes = [
        draw_recipe(spec, im.shape[:2], seeded_rng(2, i))
        for i, (spec, im) in enumerate(zip(specs, images, strict=True))
    ]
    clean = batch_of(images)
    on_cpu = degrade_batch(clean, recipes, torch.Generator().manual_seed(0))
    generator = torch.Generator("cuda").manual_seed(0)
    on_gpu = degrade_batch(clean.cuda(), recipes, generator).cpu()
    torch.testing.assert_close(on_gpu[:3], on_cpu[:3], atol=ROUNDING, rtol=0)
    assert bool(((on_gpu >= 0) & (on_gpu <= 1)).all())
    noise_gpu, noise_cpu = (float((x[3] - clean[3]).std()) for x in (on_gpu, on_cpu))
    assert noise_gpu == pytest.approx(noise_cpu, rel=0.05)
