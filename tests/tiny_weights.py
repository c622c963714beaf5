"""Helpers for the engine and CLI tests: a tiny checkpoint and a weights.txt in a temporary
folder, and generated image files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from measr import build_model
from measr.io import image_from_array, write_image
from measr.manifest import sha256_of
from measr.model import MEASNet
from measr.weights import save_weights


def stressed_tiny(seed: int = 0) -> MEASNet:
    """The tiny network with every path switched on: the default initialisation leaves the
    residual branches near zero and the image re-injection at exactly zero, so tiles would agree
    trivially. Variance-preserving random weights make every layer, and so every border effect
    and every global statistic, matter (harder than a trained model, for consistency tests)."""
    torch.manual_seed(seed)
    model = build_model("tiny").eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("alpha"):
                parameter.normal_(0, 0.5)
            elif parameter.ndim == 4:
                torch.nn.init.kaiming_normal_(parameter, nonlinearity="linear")
            elif parameter.ndim >= 2 and "dictionary" not in name:
                parameter.normal_(0, parameter.shape[-1] ** -0.5)
    return model


def write_weights(
    folder: Path, *, name: str = "tiny-test", trained: bool = False, stressed: bool = False
) -> Path:
    """A tiny checkpoint and a weights.txt listing it (as the default entry); returns the
    manifest's path."""
    torch.manual_seed(0)
    model = stressed_tiny() if stressed else build_model("tiny")
    weights = folder / f"{name}.safetensors"
    save_weights(model, weights)
    manifest = folder / "weights.txt"
    flag = "yes" if trained else "no"
    manifest.write_text(
        f"{name} {weights.name} {sha256_of(weights)} config=tiny tasks=noise,rain steps=10 "
        f"cpu_hours=0.01 trained={flag} default=yes val.noise=24.10/0.6100\n"
    )
    return manifest


def random_pixels(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Smooth colours plus noise, float32 in [0, 1], (H, W, C)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width, 1)
    base = np.stack([0.5 + 0.3 * np.sin(6 * xx + 2 * yy), 0.5 + 0.3 * np.cos(5 * yy), xx * yy], -1)
    noisy = base[:, :, :channels] + rng.normal(0, 0.08, (height, width, channels))
    return np.clip(noisy, 0, 1).astype(np.float32)


def write_picture(
    path: Path,
    height: int = 72,
    width: int = 88,
    *,
    channels: int = 3,
    bit_depth: int = 8,
    alpha: bool = False,
    seed: int = 0,
) -> Path:
    """A generated image file of the given size, channels, bit depth and alpha."""
    pixels = random_pixels(height, width, channels, seed)
    maximum = 255 if bit_depth == 8 else 65535
    samples = np.rint(pixels * maximum).astype(np.uint8 if bit_depth == 8 else np.uint16)
    opacity = None
    if alpha:
        opacity = np.linspace(0, maximum, height * width).reshape(height, width)
        opacity = opacity.astype(samples.dtype)
    write_image(path, image_from_array(samples, alpha=opacity), overwrite=True)
    return path


def smooth_photo(rng: np.random.Generator, size: int) -> np.ndarray:
    """A photo-like uint8 BGR image: smooth colour gradients plus a few edges."""
    small = rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)
    image = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    cv2.rectangle(image, (size // 4, size // 4), (size // 2, size // 2), (250, 250, 250), 2)
    return image
