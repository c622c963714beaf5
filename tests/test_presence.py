"""Every kind of damage named: the prompt's presence head, its fit on frozen features, its
training beside the prompt's supervision, and restoring in several passes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_training import settings

from measr import build_model
from measr.degrade import COMPOSITES, mix_weights, task_kinds
from measr.training.checkpoint import CHECKPOINT_NAME
from measr.training.presence import with_presence_head
from measr.training.prompt import IGNORED, PromptTargets
from measr.training.trainer import Trainer

KINDS = ("clean", "noise", "rain", "haze", "blur", "lowlight")


def test_composites_are_tasks_of_a_mix_labelled_with_every_kind_they_hold() -> None:
    weights = mix_weights("eight+composites")
    assert set(COMPOSITES) <= set(weights)
    assert sum(weights[spec] for spec in COMPOSITES) == pytest.approx(0.2)
    assert task_kinds("lowlight+noise:15") == ("lowlight", "noise")
    assert task_kinds("darkscene") == ("noise",) and task_kinds("clean") == ("clean",)
    heavier = mix_weights("eight+composites:composites=3")
    assert heavier["haze+rain"] == pytest.approx(3 * weights["haze+rain"] / (0.8 + 0.6))
    targets = PromptTargets.for_tasks(["noise25", "lowlight+noise:15", "clean"], KINDS)
    assert targets.kinds.tolist() == [1, IGNORED, 0]
    assert targets.present.tolist() == [
        [0, 1, 0, 0, 0, 0],
        [0, 1, 0, 0, 0, 1],
        [1, 0, 0, 0, 0, 0],
    ]


def test_adding_the_head_changes_no_restored_pixel() -> None:
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    upgraded = with_presence_head(model).eval()
    assert upgraded.config.presence_head and upgraded.task_prompt.presence is not None
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before, after = model(x), upgraded(x)
    assert torch.equal(before.image, after.image)
    assert before.prompt.presence_logits is None
    assert after.prompt.presence_logits is not None
    assert after.prompt.presence_logits.shape == (1, len(KINDS))


def test_a_checkpoint_from_before_the_head_resumes_with_the_head_trained(
    photos: Path, tmp_path: Path
) -> None:
    config = settings(photos, tasks="eight+composites", prompt_weight=0.1, steps=2)
    trainer = Trainer(config, tmp_path)
    assert trainer.model.config.presence_head
    trainer.run()
    # The checkpoint as a run from before the head wrote it.
    path = tmp_path / CHECKPOINT_NAME
    state = torch.load(path, weights_only=True)
    for key in ("model", "ema"):
        state[key] = {k: v for k, v in state[key].items() if "presence." not in k}
    optimizer = state["optimizer"]
    head = optimizer["param_groups"].pop()["params"]
    for index in head:
        optimizer["state"].pop(index, None)
    torch.save(state, path)
    resumed = Trainer(config.resumed(steps=4, minutes=None), tmp_path, resume=True)
    head_before = resumed.model.task_prompt.presence.weight.detach().clone()  # type: ignore[union-attr]
    resumed.run()
    assert resumed.step == 4
    assert not torch.equal(resumed.model.task_prompt.presence.weight, head_before)  # type: ignore[union-attr]
