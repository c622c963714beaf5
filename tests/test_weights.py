"""Weights: safetensors round trip with the configuration travelling in the metadata."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from measr import build_model
from measr.errors import WeightsError
from measr.model import ModelConfig
from measr.weights import load_model, load_weights, read_config, save_weights


def test_round_trip_is_bit_exact(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("tiny")
    path = tmp_path / "tiny.safetensors"
    save_weights(model, path, metadata={"steps": "12"})
    loaded = load_model(path)
    assert loaded.config == model.config
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert read_config(path).name == "tiny"


def test_half_precision_storage_loads_as_float32(tmp_path: Path) -> None:
    model = build_model("tiny")
    path = tmp_path / "tiny16.safetensors"
    save_weights(model, path, half=True)
    loaded = load_model(path)
    weight = next(loaded.parameters())
    assert weight.dtype == torch.float32
    torch.testing.assert_close(weight, next(model.parameters()), atol=1e-3, rtol=1e-3)


def test_wrong_configuration_names_both(tmp_path: Path) -> None:
    path = tmp_path / "tiny.safetensors"
    save_weights(build_model("tiny"), path)
    small = build_model("small")
    with pytest.raises(WeightsError, match="'tiny', not 'small'"):
        load_weights(small, path)


def test_truncated_or_foreign_files_give_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "tiny.safetensors"
    save_weights(build_model("tiny"), path)
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(WeightsError, match=r"cut\.safetensors"):
        load_model(truncated)
    text = tmp_path / "text.safetensors"
    text.write_text("hello")
    with pytest.raises(WeightsError, match=r"text\.safetensors"):
        load_model(text)


def test_config_json_round_trip() -> None:
    config = build_model("small").config
    assert ModelConfig.from_json(config.to_json()) == config


def test_an_unwritable_destination_is_a_weights_error_that_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    model = build_model("tiny")
    with pytest.raises(WeightsError, match="cannot write"):
        save_weights(model, blocker / "weights" / "w.safetensors")
    target = tmp_path / "new" / "folder" / "w.safetensors"
    save_weights(model, target)
    assert [p.name for p in target.parent.iterdir()] == ["w.safetensors"]
