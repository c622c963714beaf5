"""The OpenVINO backend (issue 22): the forms it converts compute what the network computes, and
the converted network restores tiles as the engine does."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tiny_weights import random_pixels, stressed_tiny, write_picture, write_weights
from torch import Tensor
from typer.testing import CliRunner

from measr.cli.app import app
from measr.engine import Restorer, onnx_backend, openvino_backend
from measr.engine.acceleration import accelerate, default_acceleration
from measr.engine.backends import resolve_backend
from measr.engine.inference import capture_global_context, prompt_features
from measr.engine.openvino_backend import (
    PHOTO_FORMS,
    PlanarLayerNorm,
    ShiftedFrequencyDecomposition,
    SplitMDTA,
    attention_from_rows,
    openvino_available,
    openvino_model,
    projected_attention,
    projected_attention_rows,
    split_projection,
    traced,
)
from measr.evaluation.metrics import unquantised_psnr
from measr.manifest import MANIFEST_ENV
from measr.model import MEASNet, build_model
from measr.model.backbone import (
    MDTA,
    ChannelLayerNorm,
    apply_channel_attention,
    channel_attention_map,
)
from measr.model.context import ForwardContext
from measr.model.fd_mee import FrequencyDecomposition

CPU = torch.device("cpu")
# As for the ONNX graph: the stressed tiny network amplifies float rounding.
AGREEMENT_DB = 80.0
# A plain random tiny network in bfloat16 against float32.
BFLOAT16_DB = 40.0


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


# The photo forms' projection takes one image's map; the pixel rows' one map per image.
@pytest.mark.parametrize(
    ("project", "images"), [(projected_attention, 1), (projected_attention_rows, 2)]
)
def test_projected_attention_is_the_projection_of_each_attended_map(
    project: Any, images: int
) -> None:
    torch.manual_seed(0)
    project_out = torch.nn.Conv2d(12, 10, 1)
    attention = torch.softmax(torch.randn(images, 3, 4, 4), dim=-1)
    v = torch.randn(images, 12, 9, 11)
    expected = project_out(apply_channel_attention(attention, v))
    torch.testing.assert_close(project(project_out, attention, v), expected)


def test_attention_from_pixel_rows_is_the_channel_attention_map() -> None:
    torch.manual_seed(0)
    q, k = torch.randn(2, 12, 9, 11), torch.randn(2, 12, 9, 11)
    temperature = torch.rand(3, 1, 1) * 4
    expected = channel_attention_map(q, k, 3, temperature)
    torch.testing.assert_close(attention_from_rows(q, k, 3, temperature), expected)


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


def test_photo_forms_restore_a_tile_as_the_engine_does() -> None:
    photo = np.random.default_rng(2).random((96, 136, 3), dtype=np.float32)
    engine = stressed_tiny()
    with torch.inference_mode():
        stats = capture_global_context(engine, photo, 96, CPU, torch.float32)
        tile = torch.from_numpy(photo[:64, :72].transpose(2, 0, 1).copy())[None]
        expected = engine(tile, ForwardContext(shared=stats)).image
        got = openvino_model(stressed_tiny(), PHOTO_FORMS)(tile, ForwardContext(shared=stats))
    assert unquantised_psnr(got.image.numpy(), expected.numpy()) > AGREEMENT_DB


class CountedPasses:
    """A stand-in backend: counts the tile passes handed to it and returns its input."""

    calls = 0

    def __init__(
        self, model: object, threads: int, *, float32: bool = False, notify: object = None
    ) -> None:
        pass

    def __call__(self, x: Tensor, ctx: ForwardContext) -> Tensor:
        CountedPasses.calls += 1
        return x


@pytest.fixture
def counted_runtimes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both runtimes "installed", each replaced by `CountedPasses`."""
    monkeypatch.setattr(onnx_backend, "onnx_available", lambda: True)
    monkeypatch.setattr(onnx_backend, "OnnxTilePasses", CountedPasses)
    monkeypatch.setattr(openvino_backend, "openvino_available", lambda: True)
    monkeypatch.setattr(openvino_backend, "OpenVinoTilePasses", CountedPasses)
    monkeypatch.delenv("MEASR_BACKEND")  # the commands' own default, auto (tests/conftest.py)
    CountedPasses.calls = 0


@pytest.mark.parametrize(
    ("command", "flags", "named"),
    [
        ("restore", ["--backend", "onnx"], "ONNX Runtime"),
        ("restore", ["--tile", "128"], "OpenVINO"),  # auto, the default, on a tiled photo
        ("batch", ["--backend", "onnx"], None),
        ("batch", ["--tile", "128"], None),
    ],
)
def test_commands_hand_the_tile_passes_to_the_backend(
    command: str,
    flags: list[str],
    named: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    counted_runtimes: None,
) -> None:
    monkeypatch.setenv(MANIFEST_ENV, str(write_weights(tmp_path)))
    folder = tmp_path / "in"
    folder.mkdir()
    source = write_picture(folder / "photo.png", 200, 260)
    target = tmp_path / ("out.png" if command == "restore" else "out")
    args = [command, source if command == "restore" else folder]
    args += ["-o", target] if command == "restore" else [target]
    result = CliRunner().invoke(app, [*map(str, args), *flags, "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert CountedPasses.calls >= 1, "the passes ran on the backend asked for"
    if named:
        assert f"on cpu with {named}" in result.stdout


def test_restore_says_when_the_passes_ran_in_bfloat16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counted_runtimes: None
) -> None:
    monkeypatch.setattr(CountedPasses, "precision", "bfloat16", raising=False)
    monkeypatch.setenv(MANIFEST_ENV, str(write_weights(tmp_path)))
    source = write_picture(tmp_path / "photo.png", 200, 260)
    args = ["restore", source, "-o", tmp_path / "out.png", "--tile", "128", "--threads", "1"]
    line = CliRunner().invoke(app, list(map(str, args)))
    assert line.exit_code == 0, line.output
    assert "on cpu with OpenVINO in bf16" in line.stdout
    record = CliRunner().invoke(app, [*map(str, args), "--json", "--overwrite"])
    assert record.exit_code == 0, record.output
    assert json.loads(record.stdout)["precision"] == "bfloat16"


def test_auto_restores_a_photo_run_whole_on_pytorch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counted_runtimes: None
) -> None:
    monkeypatch.setenv(MANIFEST_ENV, str(write_weights(tmp_path)))
    source = write_picture(tmp_path / "photo.png", 72, 88)
    result = CliRunner().invoke(app, ["restore", str(source), "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert CountedPasses.calls == 0 and "OpenVINO" not in result.stdout


def test_a_routing_map_runs_the_network_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counted_runtimes: None
) -> None:
    monkeypatch.setenv(MANIFEST_ENV, str(write_weights(tmp_path)))
    source = write_picture(tmp_path / "photo.png", 72, 88)
    args = ["restore", source, "-o", tmp_path / "out.png", "--routing-map", tmp_path / "map.png"]
    result = CliRunner().invoke(app, [*map(str, args), "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert CountedPasses.calls == 0 and (tmp_path / "map.png").is_file()
    assert "OpenVINO" not in result.stdout


def test_auto_runs_openvino_only_where_it_pays(counted_runtimes: None) -> None:
    assert resolve_backend("auto", CPU, half=False) == ("openvino", None)
    assert resolve_backend("auto", CPU, half=False, compile=True) == ("torch", None)
    assert resolve_backend("auto", torch.device("cuda"), half=False) == ("torch", None)


def test_auto_without_the_extra_runs_torch_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openvino_backend, "openvino_available", lambda: False)
    assert resolve_backend("auto", CPU, half=False) == ("torch", None)
    assert resolve_backend("openvino", CPU, half=False)[0] == "torch"


openvino_only = pytest.mark.skipif(not openvino_available(), reason="needs measr[openvino]")


class AttentionMap(torch.nn.Module):
    """MDTA's attention map of its input alone."""

    def __init__(self, attention: MDTA) -> None:
        super().__init__()
        self.attention = attention

    def forward(self, x: Tensor) -> Tensor:
        return self.attention(x)[1]


@pytest.mark.slow
@openvino_only
def test_openvino_attention_map_of_a_large_map_is_as_exact_as_pytorchs() -> None:
    # Sums over 786432 pixels: a float32 sum in the wrong order put the shipped network's maps
    # 3e-5 from float64 on the 12 MP photo's context image, against PyTorch's 3e-8.
    torch.manual_seed(0)
    mdta = MDTA(48, 1, bias=True)
    x = torch.rand(1, 48, 768, 1024) + 0.5
    with torch.no_grad():
        exact = copy.deepcopy(mdta).double()(x.double())[1]
        pytorch_error = (mdta(x)[1].double() - exact).abs().max().item()
        mdta.__class__ = SplitMDTA
        compiled = openvino_backend.compile_for_cpu(traced(AttentionMap(mdta), x, []), threads=2)
    got = torch.from_numpy(compiled([x.numpy()])[0]).double()
    assert (got - exact).abs().max().item() <= max(10 * pytorch_error, 1e-6)


@pytest.fixture
def conversion_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of this test's own for the converted graphs."""
    monkeypatch.setenv(onnx_backend.CACHE_ENV, str(tmp_path))
    return tmp_path


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The arguments of every OpenVINO compile, in order."""
    calls: list[tuple[Any, ...]] = []
    compile_for_cpu = openvino_backend.compile_for_cpu

    def recorded(*args: Any) -> Any:
        calls.append(args)
        return compile_for_cpu(*args)

    monkeypatch.setattr(openvino_backend, "compile_for_cpu", recorded)
    return calls


@pytest.mark.slow
@openvino_only
def test_openvino_backend_restores_tiles_as_the_engine_does(
    conversion_cache: Path, compiled: list[tuple[Any, ...]]
) -> None:
    pixels = np.random.default_rng(1).random((200, 260, 3), dtype=np.float32)
    engine = Restorer(stressed_tiny(), device="cpu").restore(pixels, tile=128)
    openvino = Restorer(stressed_tiny(), device="cpu", backend="openvino", float32=True)
    restored = openvino.restore(pixels, tile=128)
    assert openvino.backend == "openvino" and restored.tiles == engine.tiles > 1
    assert unquantised_psnr(restored.pixels, engine.pixels) > AGREEMENT_DB
    kept = list(conversion_cache.glob("openvino/*/model.xml"))
    assert kept, "the conversion is kept for the next run"
    assert len(compiled) == 2, "one compile for the context pass, one for all the tiles"
    openvino.restore(pixels[::-1].copy(), tile=128)
    assert len(compiled) == 4, "another photo, other statistics: compiled again"


def seeded_tiny() -> MEASNet:
    """The tiny network with the same random weights every time."""
    torch.manual_seed(0)
    return build_model("tiny")


@pytest.mark.slow
@openvino_only
def test_openvino_runs_bfloat16_only_where_the_cpu_has_it(
    conversion_cache: Path, compiled: list[tuple[Any, ...]]
) -> None:
    pixels = random_pixels(200, 260, seed=4)
    exact = Restorer(seeded_tiny(), device="cpu", backend="openvino", float32=True)
    fast = Restorer(seeded_tiny(), device="cpu", backend="openvino")
    expected = exact.restore(pixels, tile=128)
    compiled.clear()
    restored = fast.restore(pixels, tile=128)
    precisions = [args[3] if len(args) > 3 else "float32" for args in compiled]
    assert expected.precision == "float32"
    if not openvino_backend.native_bfloat16():
        assert restored.precision == "float32"
        return
    assert restored.precision == "bfloat16"
    assert precisions == ["float32", "bfloat16"], "the context pass in float32, the tiles not"
    whole = fast.restore(pixels)
    assert whole.tiles == 1 and whole.precision == "float32", "its own per-image choices"
    # bfloat16 keeps 8 bits of mantissa: close to float32, and not equal to it.
    assert BFLOAT16_DB < unquantised_psnr(restored.pixels, expected.pixels) < AGREEMENT_DB


@pytest.mark.slow
@openvino_only
@pytest.mark.usefixtures("conversion_cache")
def test_openvino_context_pass_captures_what_the_network_does() -> None:
    model = stressed_tiny()
    pixels = np.random.default_rng(3).random((200, 260, 3), dtype=np.float32)
    with torch.inference_mode():
        prompt = prompt_features(model, torch.from_numpy(pixels), CPU, torch.float32)
        expected = capture_global_context(model, pixels, 160, CPU, torch.float32, prompt=prompt)
        capture = openvino_backend.OpenVinoTilePasses(model, threads=1).capture
        got = capture_global_context(
            model, pixels, 160, CPU, torch.float32, prompt=prompt, capture=capture
        )
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key].dtype == value.dtype, key
        torch.testing.assert_close(got[key], value, rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.slow
@openvino_only
def test_exported_openvino_model_matches_the_engine(tmp_path: Path) -> None:
    import openvino

    from measr.weights import save_weights

    weights = tmp_path / "tiny.safetensors"
    save_weights(stressed_tiny(), weights)
    args = ["export", weights, "--name", "tiny", "--out-dir", tmp_path, "--format", "openvino"]
    result = CliRunner().invoke(app, list(map(str, args)))
    assert result.exit_code == 0, result.output
    # float32 as the engine (on CPUs with AMX, OpenVINO's default precision is bfloat16).
    compiled = openvino.Core().compile_model(
        str(tmp_path / "tiny.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    image = torch.rand(1, 3, 72, 136, generator=torch.Generator().manual_seed(0))
    engine = accelerate(stressed_tiny(), default_acceleration(CPU))
    with torch.inference_mode():
        expected = engine(image).image.numpy()
    restored = compiled({0: image.numpy()})[0]
    assert unquantised_psnr(restored, expected) > AGREEMENT_DB
