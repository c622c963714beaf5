"""The OpenVINO backend (issue 22): the forms it converts compute what the network computes, and
the converted network restores tiles as the engine does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_weights import stressed_tiny

from measr.engine import Restorer
from measr.engine.acceleration import accelerate, default_acceleration
from measr.engine.openvino_backend import (
    PlanarLayerNorm,
    ShiftedFrequencyDecomposition,
    openvino_available,
    openvino_model,
    split_projection,
)
from measr.evaluation.metrics import unquantised_psnr
from measr.model.backbone import ChannelLayerNorm
from measr.model.fd_mee import FrequencyDecomposition

CPU = torch.device("cpu")
# As for the ONNX graph: the stressed tiny network amplifies float rounding.
AGREEMENT_DB = 80.0


def test_split_projection_is_the_chunked_projection() -> None:
    torch.manual_seed(0)
    pointwise = torch.nn.Conv2d(6, 12, 1)
    depthwise = torch.nn.Conv2d(12, 12, 3, padding=1, groups=12)
    x = torch.randn(2, 6, 9, 11)
    expected = depthwise(pointwise(x)).chunk(3, dim=1)
    got = split_projection(pointwise, depthwise, 3, x)
    assert len(got) == 3
    for part, reference in zip(got, expected, strict=True):
        torch.testing.assert_close(part, reference)


def test_planar_layer_norm_is_the_channels_layer_norm() -> None:
    torch.manual_seed(0)
    norm = ChannelLayerNorm(8)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 8, 5, 7) * 3 + 1
    expected = norm(x)
    norm.__class__ = PlanarLayerNorm
    torch.testing.assert_close(norm(x), expected)


def test_shifted_bands_are_the_depthwise_filter() -> None:
    torch.manual_seed(0)
    split = FrequencyDecomposition(channels=8, groups=2, kernel=3)
    x = torch.randn(2, 8, 10, 12)
    kernels = torch.softmax(torch.randn(2, 2, 9), dim=-1)
    low, high = split.bands(x, kernels)
    split.__class__ = ShiftedFrequencyDecomposition
    shifted_low, shifted_high = split.bands(x, kernels)
    torch.testing.assert_close(shifted_low, low)
    torch.testing.assert_close(shifted_high, high)


def test_openvino_forms_restore_as_the_engine_does() -> None:
    image = torch.rand(1, 3, 72, 136, generator=torch.Generator().manual_seed(0))
    engine = accelerate(stressed_tiny(), default_acceleration(CPU))
    with torch.inference_mode():
        expected = engine(image).image
        got = openvino_model(stressed_tiny())(image).image
    assert unquantised_psnr(got.numpy(), expected.numpy()) > AGREEMENT_DB


openvino_only = pytest.mark.skipif(not openvino_available(), reason="needs measr[openvino]")


@pytest.mark.slow
@openvino_only
def test_openvino_backend_restores_tiles_as_the_engine_does() -> None:
    pixels = np.random.default_rng(1).random((200, 260, 3), dtype=np.float32)
    engine = Restorer(stressed_tiny(), device="cpu").restore(pixels, tile=128)
    openvino = Restorer(stressed_tiny(), device="cpu", backend="openvino")
    restored = openvino.restore(pixels, tile=128)
    assert openvino.backend == "openvino" and restored.tiles == engine.tiles > 1
    assert unquantised_psnr(restored.pixels, engine.pixels) > AGREEMENT_DB
