"""The task prompt names the damage: kinds from grouped atoms, the noise estimate, the
supervision loss, the upgrade of weights trained without it, full-resolution reading, and the
prompt report's measures."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from test_training import settings
from tiny_weights import random_pixels, stressed_tiny

from measr import build_model
from measr.degrade import apply_degradation, mix_weights, parse_spec, task_kind, task_noise_sigma
from measr.engine import Restorer
from measr.engine.damage import DamageReading
from measr.engine.inference import prompt_features
from measr.evaluation.prompt import (
    atom_entropy,
    label_kind,
    mutual_information,
    named_task,
    run_prompt_report,
)
from measr.model import MEASNet
from measr.model.task_prompt import NOISE_SCALE, PromptReading
from measr.training.prompt import PromptTargets, prompt_parameters, supervised_prompt
from measr.training.trainer import TrainConfig, Trainer
from measr.training.validation import ValidationItem


def unsupervised_tiny() -> MEASNet:
    """The tiny network as measr's first weights were built: the paper's unsupervised prompt."""
    config = dataclasses.replace(
        build_model("tiny").config, degradation_kinds=(), prompt_pooling="mean"
    )
    torch.manual_seed(0)
    return MEASNet(config).eval()


def test_kind_probabilities_are_the_summed_weights_of_each_kinds_atoms() -> None:
    model = stressed_tiny()
    prompt = model.task_prompt
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        reading = prompt.read(prompt.pooled_features(x))
    kinds = len(prompt.kinds)
    assert reading.kind_probabilities is not None
    expected = torch.stack(
        [reading.atom_weights[:, k::kinds].sum(dim=1) for k in range(kinds)], dim=1
    )
    torch.testing.assert_close(reading.kind_probabilities, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(reading.kind_probabilities.sum(1), torch.ones(3))
    assert reading.kinds == ("clean", "noise", "rain", "haze", "blur", "lowlight")


@pytest.mark.parametrize(
    ("fine", "context"),
    [(False, False), (True, False), (False, True)],
    ids=["stride-3", "fine-layer", "context"],
)
def test_strips_of_a_large_image_give_the_whole_images_prompt(fine: bool, context: bool) -> None:
    model = stressed_tiny()
    if fine or context:  # cells read on their own, or with overlapping strips: still exact
        config = dataclasses.replace(model.config, prompt_fine_layer=fine, prompt_context=context)
        torch.manual_seed(1)
        model = MEASNet(config).eval()
        if context:  # a context that is not the identity
            for parameter in model.task_prompt.context.parameters():
                torch.nn.init.normal_(parameter, 0, 0.3)
    image = torch.from_numpy(random_pixels(9 * 70 + 4, 9 * 11 + 5))  # 634 x 104, odd sizes
    with torch.no_grad():
        strips = prompt_features(model, image, torch.device("cpu"), torch.float32)
        whole = model.task_prompt.pooled_features(image.permute(2, 0, 1)[None])
    (value,) = strips.values()
    assert value.shape == (1, 64)
    torch.testing.assert_close(value, whole, rtol=1e-4, atol=1e-5)


def test_the_supervision_loss_is_the_cross_entropy_of_the_kind_and_the_noise_error() -> None:
    tasks = list(mix_weights("six"))
    targets = PromptTargets.for_tasks(tasks, ("clean", "noise", "rain", "haze", "blur", "lowlight"))
    logp = torch.log(
        torch.tensor([[0.1, 0.6, 0.1, 0.1, 0.05, 0.05], [0.5, 0.1, 0.1, 0.1, 0.1, 0.1]])
    )
    reading = PromptReading(torch.ones(2, 6) / 6, logp, torch.tensor([30.0, 4.0]))
    task = torch.tensor([tasks.index("noise25"), tasks.index("rain")])
    cross_entropy, noise = targets.loss(reading, task)
    assert float(cross_entropy) == pytest.approx(-(math.log(0.6) + math.log(0.1)) / 2, rel=1e-5)
    error = (30 - 25) / NOISE_SCALE  # only the noise sample has a known sigma; beyond beta
    assert float(noise) == pytest.approx(error - 0.05, rel=1e-5)


def test_a_composite_is_named_by_its_kinds_in_equal_shares() -> None:
    """Noise with haze must not read as noise alone: the softmax is pulled towards both."""
    kinds = ("clean", "noise", "rain", "haze", "blur", "lowlight")
    tasks = ["noise15", "haze+noise:15"]
    targets = PromptTargets.for_tasks(tasks, kinds)
    p = torch.tensor([[0.05, 0.6, 0.05, 0.2, 0.05, 0.05], [0.05, 0.6, 0.05, 0.2, 0.05, 0.05]])
    reading = PromptReading(torch.ones(2, 6) / 6, torch.log(p), None)
    cross_entropy, _ = targets.loss(reading, torch.tensor([0, 1]))
    composite = -(0.5 * math.log(0.6) + 0.5 * math.log(0.2))
    assert float(cross_entropy) == pytest.approx((-math.log(0.6) + composite) / 2, rel=1e-5)
    split = torch.tensor([[0.05, 0.4, 0.05, 0.4, 0.05, 0.05]])
    on_both, _ = targets.loss(
        PromptReading(torch.ones(1, 6) / 6, torch.log(split), None), torch.tensor([1])
    )
    on_noise, _ = targets.loss(
        PromptReading(torch.ones(1, 6) / 6, torch.log(p[:1]), None), torch.tensor([1])
    )
    assert float(on_both) < float(on_noise)


def test_tasks_know_their_kind_and_noise_level() -> None:
    assert [task_kind(t) for t in ("noise50", "clean", "haze")] == ["noise", "clean", "haze"]
    assert task_noise_sigma("noise15") == 15 and task_noise_sigma("clean") == 0
    assert task_noise_sigma("rain") is None
    clean = random_pixels(32, 32)
    rng = np.random.default_rng(0)
    assert np.array_equal(apply_degradation(clean, parse_spec("none"), rng), clean)
    assert mix_weights("six")["clean"] == pytest.approx(0.1)


def test_upgrading_collapsed_weights_restores_exactly_as_before() -> None:
    old = unsupervised_tiny()
    with torch.no_grad():  # routers that matter: random prompt projections and gates
        for name, parameter in old.named_parameters():
            if "gate" in name or "prompt_projection" in name:
                parameter.normal_(0, 0.5)
        old.task_prompt.to_logits.weight.zero_()  # collapsed: the same prompt for every image
    images = torch.rand(4, 3, 64, 64)
    upgraded = supervised_prompt(old, images).eval()
    assert upgraded.config.degradation_kinds and upgraded.config.prompt_pooling == "mean+std"
    with torch.no_grad():
        before = old(images[:2]).image
        after = upgraded(images[:2]).image
        atoms_before = old(images[2:]).prompt.atom_weights
        atoms_after = upgraded(images[2:]).prompt.atom_weights
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(atoms_after, atoms_before)


def test_prompt_only_training_changes_the_prompt_and_nothing_else(
    photos: Path,
    tmp_path: Path,
) -> None:
    config = settings(photos, tasks="six", prompt_weight=1.0, prompt_only=True, steps=3, lr=1e-2)
    trainer = Trainer(config, tmp_path / "run")
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run()
    after = trainer.model.state_dict()
    prompt = {id(p) for p in prompt_parameters(trainer.model)}
    names = {n for n, p in trainer.model.named_parameters() if id(p) in prompt}
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("task_prompt.") for k in changed)
    assert changed <= names


@pytest.mark.parametrize("tasks", ["six", "eight+composites"])
def test_full_training_with_supervision_logs_the_prompt_loss_and_accuracy(
    photos: Path, tmp_path: Path, tasks: str
) -> None:
    """With composites in the mix too: their validation photos hold several kinds, which the
    softmax's naming leaves to the presence measure (it once stopped the long run)."""
    val = tmp_path / "val" / "kodak24" / "clean"
    val.mkdir(parents=True)
    for file in sorted(photos.iterdir())[:2]:
        (val / file.name).write_bytes(file.read_bytes())
    config = settings(
        photos, tasks=tasks, prompt_weight=0.1, prompt_lr_scale=5.0, steps=2,
        val=str(tmp_path / "val"), val_crop=64, val_every=2,
    )  # fmt: skip
    trainer = Trainer(config, tmp_path / "run")
    # the rest, the routers' prompt inputs, and the presence head in a group of its own
    assert [g["lr_scale"] for g in trainer.optimizer.param_groups] == [1.0, 5.0, 1.0]
    records = []
    trainer.run(records.append)
    assert all(r.prompt is not None and r.prompt > 0 for r in records)
    assert records[-1].prompt_accuracy is not None and 0 <= records[-1].prompt_accuracy <= 1
    assert "clean" in (records[-1].validation or {})


def test_prompt_only_needs_a_prompt_weight() -> None:
    from measr.errors import MeasrError

    with pytest.raises(MeasrError, match="prompt-weight"):
        TrainConfig(config="tiny", data=["x"], prompt_only=True, prompt_weight=0).check()


@pytest.mark.parametrize(
    ("probabilities", "sigma", "words"),
    [
        ({"haze": 0.91, "clean": 0.05, "blur": 0.04}, None, "haze 91 %"),
        ({"noise": 0.97, "clean": 0.03}, 24.4, "noise 97 % (sigma ~24)"),
        ({"clean": 0.93, "blur": 0.07}, 1.0, "looks clean (93 %)"),
        ({"haze": 0.48, "blur": 0.35, "clean": 0.17}, None, "unsure: haze 48 %, blur 35 %"),
        (
            {"haze": 0.72, "noise": 0.26, "clean": 0.02},
            20.0,
            "haze 72 %, also noise 26 % (sigma ~20)",
        ),
        ({"haze": 0.66, "noise": 0.3, "clean": 0.04}, None, "unsure: haze 66 %, noise 30 %"),
        ({"lowlight": 0.8, "clean": 0.2}, None, "low light 80 %"),
    ],
)
def test_the_damage_is_said_in_words(
    probabilities: dict[str, float], sigma: float | None, words: str
) -> None:
    reading = DamageReading(probabilities, sigma)
    assert reading.words() == words
    assert reading.to_dict()["found"] == words


def test_a_restoration_says_what_the_prompt_found() -> None:
    restorer = Restorer(stressed_tiny(), device="cpu")
    result = restorer.restore(random_pixels(200, 150), tile=128)
    assert result.damage is not None and result.tiles > 1
    assert sum(result.damage.probabilities.values()) == pytest.approx(1, abs=1e-5)
    old = Restorer(unsupervised_tiny(), device="cpu")
    assert old.restore(random_pixels(64, 64)).damage is None


def test_mutual_information_and_entropy_by_hand() -> None:
    assert mutual_information(np.array([[5.0, 0.0], [0.0, 5.0]])) == pytest.approx(1.0)
    assert mutual_information(np.array([[2.0, 2.0], [3.0, 3.0]])) == pytest.approx(0.0)
    assert atom_entropy(np.full(8, 1 / 8)) == pytest.approx(math.log(8))
    assert named_task("noise", 22.0) == "noise25" and named_task("haze", None) == "haze"
    assert label_kind("haze-its") == "haze" and label_kind("noise15") == "noise"


def test_the_prompt_report_measures_naming_routing_and_shuffling() -> None:
    model = stressed_tiny()
    items = []
    for i in range(3):
        clean = random_pixels(64, 64, seed=i)
        for task, spec in (("noise25", "noise:25"), ("haze", "haze"), ("clean", "none")):
            degraded = apply_degradation(clean, parse_spec(spec), np.random.default_rng(i))
            items.append(ValidationItem(task, f"p{i}", degraded.astype(np.float32), clean))
    report = run_prompt_report(model, items, "stressed-tiny", batch=4)
    assert report.tasks == ["noise25", "haze", "clean"] and report.count["haze"] == 3
    assert report.kind_accuracy is not None and 0 <= report.kind_accuracy <= 1
    assert set(report.mutual_information) >= {"encoder1", "encoder2", "encoder3", "decoder1.low"}
    assert all(
        0 <= v <= report.task_entropy_bits + 1e-9 for v in report.mutual_information.values()
    )
    assert all(0 <= v <= 1 for v in report.same_choice_when_shuffled.values())
    assert "| haze | 3 |" in report.markdown()


def test_the_averaged_weights_keep_the_prompts_kind_mask() -> None:
    """The EMA copy averages parameters, not the network's constants: averaging the kind
    mask's -inf entries made NaN, and the EMA's prompt then named every photo 'clean'."""
    from torch.optim.swa_utils import AveragedModel

    from measr.training.trainer import update_ema

    model = stressed_tiny()
    ema = AveragedModel(model, use_buffers=True)
    for updates in range(3):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(0.01)
        update_ema(ema, model, 0.9, updates)
    averaged = ema.module.task_prompt
    assert torch.equal(averaged.kind_mask, model.task_prompt.kind_mask)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        _, reading = averaged(x)
    assert reading.kind_log_probabilities is not None
    assert torch.isfinite(reading.kind_log_probabilities).all()
