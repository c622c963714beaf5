"""Every kind of damage named: the prompt's presence head, its fit on frozen features, its
training beside the prompt's supervision, and restoring in several passes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_training import settings
from tiny_weights import smooth_photo
from typer.testing import CliRunner

from measr import build_model
from measr.cli.app import app
from measr.degrade import COMPOSITES, apply_degradation, mix_weights, spec_kinds, task_kinds
from measr.engine import Restorer
from measr.engine.damage import PRESENT, DamageReading
from measr.engine.harm import kind_left_as_is
from measr.engine.options import MAX_PASSES, RestoreOptions
from measr.errors import MeasrError
from measr.io import image_from_array, write_image
from measr.jobs.batch import LOG_NAME
from measr.model import MEASNet
from measr.training.checkpoint import CHECKPOINT_NAME
from measr.training.presence import fit_presence_head, with_presence_head
from measr.training.prompt import PromptTargets
from measr.training.trainer import Trainer
from measr.weights import save_weights

KINDS = ("clean", "noise", "rain", "haze", "blur", "lowlight")


def last_layer(model: MEASNet) -> torch.nn.Linear:
    """The presence head's last layer (the one that gives each kind its logit)."""
    assert model.task_prompt.presence is not None
    return [m for m in model.task_prompt.presence.modules() if isinstance(m, torch.nn.Linear)][-1]


def test_composites_are_tasks_of_a_mix_labelled_with_every_kind_they_hold() -> None:
    weights = mix_weights("eight+composites")
    assert set(COMPOSITES) <= set(weights)
    assert sum(weights[spec] for spec in COMPOSITES) == pytest.approx(0.2)
    assert task_kinds("lowlight+noise:15") == ("lowlight", "noise")
    assert task_kinds("darkscene") == ("noise",) and task_kinds("clean") == ("clean",)
    heavier = mix_weights("eight+composites:composites=3")
    assert heavier["haze+rain"] == pytest.approx(3 * weights["haze+rain"] / (0.8 + 0.6))
    targets = PromptTargets.for_tasks(["noise25", "lowlight+noise:15", "clean"], KINDS)
    assert targets.shares.tolist() == [
        [0, 1, 0, 0, 0, 0],
        [0, 0.5, 0, 0, 0, 0.5],
        [1, 0, 0, 0, 0, 0],
    ]
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
    head = last_layer(resumed.model)
    head_before = head.weight.detach().clone()
    resumed.run()
    assert resumed.step == 4
    assert not torch.equal(head.weight, head_before)


def photo(seed: int, size: int = 96) -> np.ndarray:
    """A generated photo-like RGB image, float32 in [0, 1]."""
    bgr = smooth_photo(np.random.default_rng(seed), size)
    return np.ascontiguousarray(bgr[:, :, ::-1], dtype=np.float32) / 255


def fitted_tiny() -> MEASNet:
    """The tiny network (untrained: it restores nearly as the identity) with its presence head
    fitted on generated photos that are clean, dark, noisy, hazy, or dark and noisy."""
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    specs = ["none", "lowlight", "noise:40", "haze", "lowlight+noise:40", "haze+noise:40"]
    features, present = [], []
    for seed in range(32):
        for spec in specs:
            degraded = apply_degradation(photo(seed), spec, np.random.default_rng(seed))
            x = torch.from_numpy(degraded.transpose(2, 0, 1).copy())[None]
            with torch.no_grad():
                features.append(model.task_prompt.pooled_features(x)[0])
            kinds = spec_kinds(spec) or ("clean",)
            present.append([float(kind in kinds) for kind in KINDS])
    return fit_presence_head(model, torch.stack(features), torch.tensor(present))


@pytest.fixture(scope="module")
def restorer() -> Restorer:
    return Restorer(fitted_tiny(), device="cpu", threads=1, backend="torch")


def test_a_dark_noisy_photo_is_named_dark_and_noisy(restorer: Restorer) -> None:
    rng = np.random.default_rng(99)
    dark_noisy = apply_degradation(photo(100), "lowlight+noise:40", rng)
    damage = restorer.restore(dark_noisy).damage
    assert damage is not None and damage.presence is not None
    assert {kind for kind, _ in damage.named()} == {"lowlight", "noise"}
    words = damage.words()
    assert "low light" in words and " and noise " in words and "(sigma ~" in words
    assert damage.to_dict()["named"] == [kind for kind, _ in damage.named()]
    assert set(damage.to_dict()["presence"]) == set(KINDS)
    clean = restorer.read_damage(photo(101))
    assert clean is not None and clean.named() == [] and clean.words().startswith("looks clean")


def test_auto_passes_stop_after_one_pass_on_a_clean_photo(restorer: Restorer) -> None:
    clean = photo(102)
    restoration = restorer.restore(clean, passes=None)
    assert len(restoration.passes) == 1
    assert restoration.passes[0].after is None  # nothing found: no second look
    assert np.array_equal(restoration.pixels, restorer.restore(clean, passes=1).pixels)
    assert RestoreOptions().passes is None  # auto is the default


def always_finding(restorer: Restorer, *kinds: str) -> Restorer:
    """The restorer with a prompt that finds `kinds` in every photo: it is never satisfied."""
    model = copy.deepcopy(restorer.model)
    head = last_layer(model)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([9.0 if kind in kinds else -9.0 for kind in KINDS]))
    return Restorer(model, device="cpu", threads=1, backend="torch")


def test_auto_passes_never_exceed_the_limit(restorer: Restorer) -> None:
    never_satisfied = always_finding(restorer, "noise", "haze")
    restoration = never_satisfied.restore(photo(103), passes=None)
    assert len(restoration.passes) == MAX_PASSES
    assert all(p.kept and p.found is not None for p in restoration.passes)
    for step in restoration.passes:
        assert step.found is not None and {k for k, _ in step.found.named()} == {"noise", "haze"}
    with pytest.raises(MeasrError, match="passes must be 1 to 3 or auto"):
        RestoreOptions(passes=MAX_PASSES + 1)


def test_auto_restores_a_photo_with_one_kind_of_damage_once(restorer: Restorer) -> None:
    noisy_only = always_finding(restorer, "noise")
    auto = noisy_only.restore(photo(104), passes=None)
    assert len(auto.passes) == 1 and auto.passes[0].after is None
    assert np.array_equal(auto.pixels, noisy_only.restore(photo(104), passes=1).pixels)
    assert len(noisy_only.restore(photo(104), passes=2).passes) == 2  # a fixed count runs all


def test_restore_and_batch_say_every_kind_found_and_each_pass(
    restorer: Restorer, tmp_path: Path
) -> None:
    weights = tmp_path / "named.safetensors"
    save_weights(restorer.model, weights)
    folder = tmp_path / "in"
    folder.mkdir()
    dark_noisy = apply_degradation(photo(100), "lowlight+noise:40", np.random.default_rng(99))
    source = folder / "night.png"
    write_image(source, image_from_array(np.rint(dark_noisy * 255).astype(np.uint8)))
    common = ["--weights", str(weights), "--device", "cpu", "--backend", "torch"]
    line = CliRunner().invoke(
        app, ["restore", str(source), "-o", str(tmp_path / "a.png"), "--passes", "auto", *common]
    )
    assert line.exit_code == 0, line.output
    assert "found low light" in line.output and " and noise " in line.output
    assert "after " in line.output and " pass" in line.output
    second = ["restore", str(source), "-o", str(tmp_path / "b.png"), "--json", "--passes", "2"]
    printed = CliRunner().invoke(app, [*second, *common])
    record = json.loads(printed.output.splitlines()[-1])
    assert {"lowlight", "noise"} <= set(record["damage"]["named"])
    assert len(record["passes"]) == 2 and record["passes"][0]["found"]["presence"]
    args = ["batch", str(folder), str(tmp_path / "out"), "--passes", "auto", *common]
    assert CliRunner().invoke(app, args).exit_code == 0
    logged = json.loads((tmp_path / "out" / LOG_NAME).read_text().splitlines()[0])
    assert {"lowlight", "noise"} <= set(logged["damage"]["named"])
    assert 1 <= len(logged["passes"]) <= MAX_PASSES
    refused = CliRunner().invoke(app, ["restore", str(source), "--passes", "4", *common])
    assert refused.exit_code == 2 and "passes must be 1 to 3 or auto" in refused.output


def test_benchmark_prompt_measures_every_kind_named_on_composites(
    restorer: Restorer, tmp_path: Path
) -> None:
    weights = tmp_path / "named.safetensors"
    save_weights(restorer.model, weights)
    clean = tmp_path / "val" / "kodak24" / "clean"
    elsewhere = tmp_path / "other-source"
    for folder, seeds in ((clean, range(2)), (elsewhere, range(7, 10))):
        folder.mkdir(parents=True)
        for seed in seeds:
            pixels = np.rint(photo(200 + seed) * 255).astype(np.uint8)
            write_image(folder / f"p{seed}.png", image_from_array(pixels))
    report = tmp_path / "naming.json"
    args = ["benchmark", "prompt", "--val", str(tmp_path / "val"), "--naming-only"]
    args += ["--photos", str(elsewhere), "--weights", str(weights), "--json", str(report)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "two kinds of damage" in result.output
    assert f"Photos from other sources ({elsewhere})" in result.output
    written = json.loads(report.read_text())
    every = written["every_kind"]
    assert every["photos"] == {"single": 2 * 8, "two": 2 * 6, "composite": 2 * 7}
    assert set(every["composite_all_by_spec"]) == set(COMPOSITES)
    assert 0 <= every["two_all"] <= 1 and every["threshold"] == PRESENT
    # The photos of another source: each single damage of the six mix, and each composite.
    other = written["other_sources"]
    assert other["folders"] == [str(elsewhere)]
    assert other["every_kind"]["photos"] == {"single": 3 * 8, "two": 3 * 6, "composite": 3 * 7}
    assert set(other["whole_photo_accuracy_by_task"]) == {
        "noise15", "noise25", "noise50", "rain", "haze", "blur-synthetic", "lowlight", "clean"
    }  # fmt: skip
    missing = CliRunner().invoke(app, [*args[:-6], "--photos", str(tmp_path / "nowhere")])
    assert missing.exit_code != 0 and "is not a folder" in missing.output


def test_a_photo_named_with_several_kinds_is_left_as_is_only_if_none_improves() -> None:
    softmax = {kind: 1 / len(KINDS) for kind in KINDS}

    def reading(**present: float) -> DamageReading:
        return DamageReading(softmax, None, {kind: present.get(kind, 0.0) for kind in KINDS})

    gains = {"rain": -0.6, "blur": -5.5, "haze": 5.0}
    assert kind_left_as_is(reading(rain=0.9), gains) == "rain"
    assert kind_left_as_is(reading(rain=0.9, blur=0.8), gains) == "rain"
    assert kind_left_as_is(reading(rain=0.9, haze=0.7), gains) is None
    assert kind_left_as_is(reading(clean=0.9), gains) is None
    assert reading(rain=0.9, haze=0.7).words() == "rain 90 % and haze 70 %"
