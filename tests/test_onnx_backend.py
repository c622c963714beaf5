"""The ONNX backend (issue 22): the exported graph computes what the engine computes, and the
backend falls back to PyTorch, with a note, when its extra is missing.

Exporting even the tiny network takes minutes on 2 CPU cores, so the checks that export are
marked slow; they share one cache folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_weights import stressed_tiny
from typer.testing import CliRunner

from measr.cli.app import app
from measr.engine import Restorer, onnx_backend
from measr.engine.acceleration import accelerate, default_acceleration
from measr.engine.backends import resolve_backend
from measr.engine.onnx_backend import spectrum_frequencies
from measr.errors import MeasrError
from measr.evaluation.metrics import unquantised_psnr
from measr.weights import save_weights

CPU = torch.device("cpu")
# The stressed tiny network amplifies float rounding (its layers are not trained to be
# smooth): the engine's own fused and plain forms agree to about 115 dB on it.
AGREEMENT_DB = 80.0


def test_spectrum_frequencies_are_fftfreqs_magnitudes() -> None:
    for length in (8, 9, 64, 136, 333, 1088):
        assert torch.equal(spectrum_frequencies(length, CPU), torch.fft.fftfreq(length).abs())


def test_exportable_pixel_experts_mix_the_same_experts() -> None:
    torch.manual_seed(0)
    plain = onnx_backend.PixelExperts(6, 12, 4)
    tokens = torch.randn(50, 6)
    experts = torch.randint(0, 4, (50, 2))
    experts[:, 1] = (experts[:, 0] + 1) % 4
    gates = torch.rand(50, 2)
    exported = onnx_backend.ExportablePixelExperts(plain)
    torch.testing.assert_close(exported(tokens, experts, gates), plain(tokens, experts, gates))


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(MeasrError, match="unknown backend"):
        resolve_backend("tensorrt", CPU, half=False)


def test_onnx_backend_is_cpu_float32_only() -> None:
    with pytest.raises(MeasrError, match="CPU"):
        resolve_backend("onnx", CPU, half=True)


def test_missing_extra_falls_back_to_torch_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_backend, "onnx_available", lambda: False)
    restorer = Restorer(stressed_tiny(), device="cpu", backend="onnx")
    assert restorer.backend == "torch"
    assert restorer.backend_note is not None and "measr[onnx]" in restorer.backend_note
    assert restorer.tile_forward is None


onnx_only = pytest.mark.skipif(not onnx_backend.onnx_available(), reason="needs measr[onnx]")


@pytest.fixture(scope="module")
def graph_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.mark.slow
@onnx_only
def test_exported_graph_matches_the_engine_on_a_whole_image(tmp_path: Path) -> None:
    import onnxruntime

    weights = tmp_path / "tiny.safetensors"
    save_weights(stressed_tiny(), weights)
    args = [
        "export",
        str(weights),
        "--name",
        "tiny",
        "--out-dir",
        str(tmp_path),
        "--format",
        "onnx",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    path = tmp_path / "tiny.onnx"
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    image = torch.rand(1, 3, 72, 136, generator=torch.Generator().manual_seed(0))
    engine = accelerate(stressed_tiny(), default_acceleration(CPU))
    with torch.inference_mode():
        expected = engine(image).image.numpy()
    restored = session.run(None, {"image": image.numpy()})[0]
    assert unquantised_psnr(restored, expected) > AGREEMENT_DB


@pytest.mark.slow
@onnx_only
def test_onnx_backend_restores_tiles_as_the_engine_does(
    graph_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(onnx_backend.CACHE_ENV, str(graph_cache))
    pixels = np.random.default_rng(1).random((200, 260, 3), dtype=np.float32)
    engine = Restorer(stressed_tiny(), device="cpu").restore(pixels, tile=128)
    onnx = Restorer(stressed_tiny(), device="cpu", backend="onnx")
    restored = onnx.restore(pixels, tile=128)
    assert onnx.backend == "onnx" and restored.tiles == engine.tiles > 1
    assert unquantised_psnr(restored.pixels, engine.pixels) > AGREEMENT_DB
    assert list(graph_cache.glob("onnx/*.onnx")), "the exported graph is kept for the next run"
