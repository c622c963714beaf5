"""The pixel work of the degradations as pure torch functions on (B, C, H, W) batches.

Each function is the batched twin of a numpy function of `measr.degrade` and follows its
arithmetic step by step (same clipping, same 8-bit rounding, same borders), so that given the
same parameters it gives the same image up to float32 rounding. Per-image parameters are
tensors of B rows; random pixels come from an explicit `torch.Generator` on the batch's device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from measr.degrade.ranges import DARK_SCENE, HAZE, LOW_LIGHT


def per_image(values: Tensor) -> Tensor:
    """(B,) or (B, C) parameters shaped to broadcast over (B, C, H, W) images."""
    return values.reshape(values.shape[0], -1, 1, 1)


def quantize_8bit(x: Tensor) -> Tensor:
    """Clip to [0, 1] and round to 8-bit levels, round(x * 255) / 255 (halves to even, as
    numpy's rint)."""
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0


def pad_symmetric(x: Tensor, pad: int) -> Tensor:
    """Pad H and W by `pad` mirroring with the edge repeated (OpenCV's BORDER_REFLECT,
    "fedcba|abcdef"), which torch's "reflect" (edge not repeated) is not."""
    if pad == 0:
        return x
    if pad > min(x.shape[-2:]):
        raise ValueError(f"cannot mirror {pad} px of a {tuple(x.shape[-2:])} image")
    rows = torch.cat([x[..., :pad, :].flip(-2), x, x[..., -pad:, :].flip(-2)], dim=-2)
    return torch.cat([rows[..., :pad].flip(-1), rows, rows[..., -pad:].flip(-1)], dim=-1)


def convolve_valid(x: Tensor, kernels: Tensor) -> Tensor:
    """True 2-D convolution of each image of (B, C, H, W) with its own odd (K, K) kernel of
    (B, K, K), keeping the (H - K + 1, W - K + 1) positions the kernel covers fully. Through the
    FFT, so that rain's kernels of up to ~70 px cost no more than small ones."""
    height, width = x.shape[-2:]
    side = kernels.shape[-1]
    size = (height, width)  # circular wrap-around lands only outside the valid window
    spectrum = (
        torch.fft.rfft2(x.float(), s=size) * torch.fft.rfft2(kernels.float(), s=size)[:, None]
    )
    full = torch.fft.irfft2(spectrum, s=size)
    return full[..., side - 1 :, side - 1 :]


def convolve_symmetric(x: Tensor, kernels: Tensor) -> Tensor:
    """True convolution of each image with its own odd (B, K, K) kernel, mirroring at the
    borders (numpy's `measr.degrade._image.convolve`)."""
    return convolve_valid(pad_symmetric(x, kernels.shape[-1] // 2), kernels)


def gaussian_side(sigma: float) -> int:
    """The side OpenCV gives a float image's Gaussian of this sigma: round(8 sigma + 1), odd."""
    return math.floor(sigma * 8.0 + 1.5) | 1


def gaussian_kernel_1d(sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """OpenCV's float Gaussian for a given sigma (`gaussian_side` taps), summing to 1."""
    side = gaussian_side(sigma)
    offsets = torch.arange(side, dtype=torch.float64, device=device) - (side - 1) / 2
    weights = torch.exp(-(offsets**2) / (2.0 * sigma * sigma))
    return (weights / weights.sum()).to(dtype)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (B, C, H, W) with OpenCV's default border (reflect, edge
    not repeated), as `cv2.GaussianBlur(x, (0, 0), sigma)`."""
    kernel = gaussian_kernel_1d(sigma, x.dtype, x.device)
    half = kernel.numel() // 2
    channels = x.shape[1]
    rows = kernel.reshape(1, 1, 1, -1).expand(channels, 1, 1, -1)
    padded = F.pad(x, (half, half, half, half), mode="reflect")
    across = F.conv2d(padded, rows, groups=channels)
    return F.conv2d(across, rows.transpose(-1, -2), groups=channels)


def erode(x: Tensor, window: int) -> Tensor:
    """Minimum over a window x window square (odd) with mirrored borders, as `cv2.erode`
    with BORDER_REFLECT."""
    return -F.max_pool2d(-pad_symmetric(x, window // 2), window, stride=1)


def normalise(values: Tensor) -> Tensor:
    """Stretch each image of (B, 1, H, W) to [0, 1] by its min and max; constant -> zeros."""
    low = values.amin(dim=(-3, -2, -1), keepdim=True)
    high = values.amax(dim=(-3, -2, -1), keepdim=True)
    spread = high - low
    stretched = (values - low) / spread.clamp_min(1e-6)
    return torch.where(spread < 1e-6, torch.zeros_like(values), stretched)


# -- the degradations ---------------------------------------------------------------------------


def gaussian_noise(x: Tensor, sigma: Tensor, generator: torch.Generator) -> Tensor:
    """N(0, sigma) noise per image, sigma (B,) on the 0-255 scale, saved as 8 bits."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return quantize_8bit(x + noise * per_image(sigma / 255.0))


def darken_display(x: Tensor, gain: Tensor, gamma: Tensor) -> Tensor:
    """The noiseless low-light image in linear light: gain * (x ** 2.2) ** gamma, per image."""
    linear = x.clamp(0.0, 1.0) ** LOW_LIGHT.display_gamma
    return per_image(gain) * linear ** per_image(gamma)


def low_light(
    x: Tensor,
    gain: Tensor,
    gamma: Tensor,
    photons: Tensor,
    read_noise: Tensor,
    generator: torch.Generator,
) -> Tensor:
    """Darken in linear light, count photo-electrons (Poisson), add read noise, 8 bits."""
    dark = darken_display(x, gain, gamma)
    full_scale = per_image(photons)
    electrons = torch.poisson(dark.clamp_min(0.0) * full_scale, generator=generator)
    read = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    sensed = electrons / full_scale + read * per_image(read_noise)
    return quantize_8bit(sensed.clamp(0.0, 1.0) ** (1.0 / LOW_LIGHT.display_gamma))


def depth_proxy(x: Tensor, weights: Tensor, field: Tensor) -> Tensor:
    """(B, 1, H, W) relative depth in [depth_near, 1] from the three cues of
    `measr.degrade.haze.depth_proxy`: weights (B, 3) of the vertical ramp, the smooth random
    field (B, H, W) and the smoothed dark channel of the clean images."""
    height, width = x.shape[-2:]
    scale = min(height, width)
    dark = erode(x.amin(dim=1, keepdim=True), max(1, scale // 32) | 1)
    dark = gaussian_blur(dark, max(1.0, scale / 24.0))
    ramp = torch.linspace(1.0, 0.0, height, device=x.device, dtype=x.dtype).reshape(1, 1, -1, 1)
    w = per_image(weights)
    mixed = w[:, 0:1] * ramp + w[:, 1:2] * field[:, None] + w[:, 2:3] * dark
    return HAZE.depth_near + (1.0 - HAZE.depth_near) * normalise(mixed)


def even_where(depth: Tensor, even: Tensor) -> Tensor:
    """Depth 1 everywhere for the images whose `even` (B,) is 1 (an even veil), else `depth`."""
    return torch.where(per_image(even) > 0.5, torch.ones_like(depth), depth)


def haze(x: Tensor, depth: Tensor, beta: Tensor, airlight: Tensor) -> Tensor:
    """I = J t + A (1 - t) with t = exp(-beta d): beta (B,), airlight (B, 3), depth (B,1,H,W)."""
    trans = torch.exp(-per_image(beta) * depth)
    return (x * trans + per_image(airlight) * (1.0 - trans)).clamp(0.0, 1.0)


def scene_power(x: Tensor, level: Tensor) -> Tensor:
    """(B,) powers of the dark-scene tone curve that bring each image's mean to `level` (B,),
    by the bisection of `measr.degrade.scene.scene_power`, in float64 as it is."""
    x = x.double()
    level = level.double()
    weights = torch.tensor(DARK_SCENE.luma_weights, dtype=x.dtype, device=x.device)
    luma = torch.einsum("bchw,c->bhw", x, weights)
    brightness = x.mean(dim=1)
    low = torch.ones_like(level)
    high = torch.full_like(level, DARK_SCENE.max_power)
    for _ in range(DARK_SCENE.power_steps):
        middle = 0.5 * (low + high)
        above = (brightness * luma ** (middle - 1.0)[:, None, None]).mean(dim=(1, 2)) > level
        low, high = torch.where(above, middle, low), torch.where(above, high, middle)
    return torch.where(brightness.mean(dim=(1, 2)) <= level, torch.ones_like(high), high)


def darken_scene(x: Tensor, level: Tensor) -> Tensor:
    """Each image as a dark scene of mean `level` (B,): the luma tone curve of `scene_power`
    (colour ratios kept), then one factor where the curve alone leaves it brighter; 8 bits."""
    power = scene_power(x, level)
    weights = torch.tensor(DARK_SCENE.luma_weights, dtype=torch.float64, device=x.device)
    luma = torch.einsum("bchw,c->bhw", x.double(), weights)
    toned = x.double() * (luma ** (power - 1.0)[:, None, None])[:, None]
    mean = toned.mean(dim=(1, 2, 3))
    scale = torch.where(mean > 0, (level.double() / mean.clamp_min(1e-12)).clamp(max=1.0), 1.0)
    return quantize_8bit((toned * per_image(scale)).to(x.dtype))


def streak_seeds(
    shape: tuple[int, ...],
    density: Tensor,
    intensity: tuple[float, float],
    generator: torch.Generator,
) -> Tensor:
    """(B, L, H, W) sparse streak starts: a share `density` (B, L) of the pixels, each with an
    intensity uniform in `intensity`."""
    device, dtype = density.device, density.dtype
    starts = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    level = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    low, high = intensity
    seeded = starts < density[..., None, None]
    return seeded * (low + (high - low) * level)


def rain(
    x: Tensor, seeds: Tensor, kernels: Tensor, strength: Tensor, veil: Tensor, veil_level: Tensor
) -> Tensor:
    """Screen-blend the streak layers of each image onto it under a grey veil: seeds
    (B, L, H + K - 1, W + K - 1), kernels (B, L, K, K) with the softening Gaussian folded in,
    strength (B, L) (0 for a layer an image does not have), veil and its grey level (B,)."""
    batch, layers = seeds.shape[:2]
    flat = kernels.reshape(batch * layers, *kernels.shape[-2:])
    streaks = convolve_valid(seeds.reshape(batch * layers, 1, *seeds.shape[-2:]), flat)
    streaks = streaks.reshape(batch, layers, *streaks.shape[-2:]).clamp(0.0, 1.0)
    clear = (1.0 - strength[..., None, None] * streaks).prod(dim=1, keepdim=True)
    base = x * (1.0 - per_image(veil)) + per_image(veil) * per_image(veil_level)
    return (1.0 - (1.0 - base) * clear).clamp(0.0, 1.0)
