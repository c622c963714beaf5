"""A network of another depth from trained weights (measr/model/depth.py, `measr train --init`
with another configuration)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from measr.errors import MeasrError
from measr.model import build_model, get_config
from measr.model.depth import reshaped
from measr.training.export import export_run
from measr.training.trainer import TrainConfig, Trainer
from measr.weights import load_model, save_weights

TINY = get_config("tiny")


def test_the_same_depth_restores_exactly_as_the_trained_network() -> None:
    torch.manual_seed(0)
    trained = build_model("tiny").eval()
    same, reuse = reshaped(trained, dataclasses.replace(TINY, name="tiny-again"))
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(same.eval()(image).image, trained(image).image)
    assert reuse.fresh == 0 and reuse.dropped == 0


def test_a_cut_stage_keeps_its_first_blocks_and_new_blocks_start_fresh() -> None:
    torch.manual_seed(0)
    trained = build_model("tiny")
    target = dataclasses.replace(TINY, name="tiny-reshaped", encoder_blocks=(2, 1, 1, 1),
                                 refinement_blocks=0)  # fmt: skip
    network, reuse = reshaped(trained, target)
    assert [len(network.encoder1.blocks), len(network.refinement.blocks)] == [2, 0]
    old, new = trained.state_dict(), network.state_dict()
    assert all(torch.equal(new[name], old[name]) for name in new if name in old)
    assert not any(name.startswith("refinement.") for name in new)
    fresh = [name for name in new if name not in old]
    assert fresh and all(name.startswith("encoder1.blocks.1.") for name in fresh)
    assert reuse.fresh == len(fresh) and reuse.dropped == sum(
        name.startswith("refinement.") for name in old
    )
    assert "start fresh" in reuse.words() and "dropped" in reuse.words()


def test_weights_of_other_widths_are_refused_with_the_way_out() -> None:
    with pytest.raises(MeasrError) as refused:
        reshaped(build_model("tiny"), get_config("lean"))
    assert "widths differ" in (refused.value.hint or "")


def test_training_a_lean_network_starts_from_small_weights(photos: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    small = build_model("small")
    save_weights(small, tmp_path / "small.safetensors")
    config = TrainConfig(
        config="lean", init=str(tmp_path / "small.safetensors"), data=[str(photos)],
        tasks="three", steps=1, batch=1, patch=64, warmup=1, workers=0, threads=1,
        checkpoint_minutes=1e9,
    )  # fmt: skip
    trainer = Trainer(config, tmp_path / "run")
    assert trainer.model.config.name == "lean"
    assert len(trainer.model.decoder1.blocks) == 1
    assert torch.equal(
        trainer.model.latent.blocks[0].ffn.project_out.weight,
        small.latent.blocks[0].ffn.project_out.weight,
    )
    trainer.run()
    result = export_run(tmp_path / "run", "lean-test", tmp_path / "weights",
                        manifest=tmp_path / "weights.txt")  # fmt: skip
    exported = load_model(result.entry.file)
    assert exported.config.name == "lean" and exported.config.refinement_blocks == 0
