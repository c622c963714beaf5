"""What measr tells a user while it works: the first OpenVINO conversion (a minute or more of
silence otherwise), said once; and, without OpenVINO, once, how to get it for tiled photos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tiny_weights import write_picture, write_weights
from typer.testing import CliRunner

from measr.cli.app import app
from measr.engine import Restorer, openvino_backend
from measr.engine.onnx_backend import CACHE_ENV
from measr.manifest import MANIFEST_ENV
from measr.model import build_model

openvino_only = pytest.mark.skipif(
    not openvino_backend.openvino_available(), reason="needs measr[openvino]"
)
INSTALL = "pip install 'measr[openvino]'"


@pytest.fixture
def without_openvino(monkeypatch: pytest.MonkeyPatch) -> None:
    """`auto`, the commands' default (tests/conftest.py names torch), on a machine without the
    extra."""
    monkeypatch.setattr(openvino_backend, "openvino_available", lambda: False)
    monkeypatch.delenv("MEASR_BACKEND")


@pytest.mark.usefixtures("without_openvino")
def test_the_first_tiled_photo_says_once_how_to_get_openvino() -> None:
    torch.manual_seed(0)
    restorer = Restorer(build_model("tiny"), device="cpu", threads=1)
    heard: list[str] = []
    restorer.on_notice = heard.append
    pixels = np.random.default_rng(0).random((150, 200, 3), dtype=np.float32)
    restorer.restore(pixels[:64, :64])  # whole: nothing to gain
    assert heard == []
    restorer.restore(pixels, tile=128)
    restorer.restore(pixels, tile=128)
    assert len(heard) == 1 and INSTALL in heard[0] and "faster" in heard[0]
    torch_asked = Restorer(build_model("tiny"), device="cpu", threads=1, backend="torch")
    assert torch_asked.runtime_hint is None  # PyTorch asked for by name: nothing to say


@pytest.mark.usefixtures("without_openvino")
def test_restore_prints_the_hint_once_for_several_tiled_photos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MANIFEST_ENV, str(write_weights(tmp_path)))
    for name in ("a.png", "b.png"):
        write_picture(tmp_path / name, 150, 200)
    args = ["restore", tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "out"]
    result = CliRunner().invoke(app, [*map(str, args), "--tile", "128", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("note: tiled photos restore") == 1 and INSTALL in result.stderr


def trivial_model() -> Any:
    """An OpenVINO model that returns its input: a stand-in for a converted network."""
    import openvino
    from openvino import opset13

    image = opset13.parameter([1, 3, -1, -1], openvino.Type.f32)
    return openvino.Model([opset13.relu(image)], [image])


@openvino_only
def test_a_conversion_is_announced_before_it_starts_and_only_when_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(openvino_backend, "convert", lambda model, stats=None: trivial_model())
    folders: list[Path] = []
    model = build_model("tiny")
    openvino_backend.cached_conversion(model, on_convert=folders.append)
    openvino_backend.cached_conversion(model, on_convert=folders.append)  # from the cache
    assert folders == [tmp_path / "openvino"]


@openvino_only
def test_the_tile_passes_announce_their_first_conversion_once() -> None:
    heard: list[str] = []
    passes = openvino_backend.OpenVinoTilePasses(build_model("tiny"), 1, notify=heard.append)
    passes.converting(Path("/cache/openvino"))  # the context pass's graph
    passes.converting(Path("/cache/openvino"))  # the tiles' graph
    assert len(heard) == 1
    assert "converting the network for OpenVINO" in heard[0] and "/cache/openvino" in heard[0]
    assert openvino_backend.CONVERSION_MINUTES in heard[0]


@pytest.mark.slow
@openvino_only
def test_restore_says_once_that_it_converts_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end, converting for real: the first run says it once (the context pass and the
    tiles each convert a graph), the next run, reading the cache, says nothing."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(MANIFEST_ENV, str(write_weights(tmp_path)))
    source = write_picture(tmp_path / "a.png", 150, 200)
    for run, expected in enumerate((1, 0)):
        args = ["restore", source, "-o", tmp_path / f"{run}.png", "--backend", "openvino"]
        result = CliRunner().invoke(app, [*map(str, args), "--tile", "128", "--threads", "1"])
        assert result.exit_code == 0, result.output
        assert result.stderr.count("converting the network for OpenVINO") == expected
        assert "with OpenVINO" in result.stdout
