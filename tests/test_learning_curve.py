"""The learning-curve bench: recipes trained for a CPU budget, scored along the way, the table
and the plot written."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from tiny_weights import smooth_photo

from measr.errors import MeasrError
from measr.training.learning_curve import (
    RECIPES,
    VALIDATION_TASKS,
    Bench,
    BudgetTrainer,
    Recipe,
    read_curves,
    run_recipe,
    write_report,
)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Training photos, and a validation root of clean photos (synthetic tasks only)."""
    photos = tmp_path_factory.mktemp("photos")
    val = tmp_path_factory.mktemp("val")
    (val / "kodak24" / "clean").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(photos / f"p{i}.png"), smooth_photo(rng, 96))
    for i in range(2):
        cv2.imwrite(str(val / "kodak24" / "clean" / f"k{i}.png"), smooth_photo(rng, 80))
    return photos, val


def tiny_bench(folders: tuple[Path, Path], out: Path, cpu_minutes: float = 0.03) -> Bench:
    photos, val = folders
    return Bench(
        out=out, data=[str(photos)], val=val, config="tiny", cpu_minutes=cpu_minutes,
        score_every=cpu_minutes / 3, val_crop=64, val_per_task=1, threads=1,
    )  # fmt: skip


SMALL_STEPS = {"batch": 2, "patch": 64, "warmup": 1}


def test_two_recipes_give_curves_a_table_and_a_plot(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    bench = tiny_bench(folders, tmp_path)
    recipes = [
        Recipe("constant", "lr 2e-4", SMALL_STEPS),
        Recipe("cosine", "lr 1e-3, annealed", {**SMALL_STEPS, "lr": 1e-3}, anneal=True),
    ]
    items = bench.validation_set()
    for recipe in recipes:
        run_recipe(recipe, bench, items)
    curves = write_report(tmp_path)

    assert list(curves) == ["constant", "cosine"]
    budget = bench.cpu_minutes
    for points in curves.values():
        assert len(points) >= 3  # the start, at least one scoring on the way, the end
        assert points[0].step == 0 and points[0].cpu_minutes < budget / 3
        cpu = [p.cpu_minutes for p in points]
        assert cpu == sorted(cpu) and cpu[-1] >= budget
        assert points[-1].step > points[0].step
        synthetic = {t for t in VALIDATION_TASKS if t != "blur"}  # blur is scored on pairs
        assert all(set(p.psnr) == synthetic for p in points)
    # The same start: both score the same before training.
    assert curves["constant"][0].psnr == curves["cosine"][0].psnr
    # The cosine decays over the CPU budget (each point has the rate of its last step); the
    # constant rate stays at its peak.
    rates = [p.lr for p in curves["cosine"]]
    assert rates == sorted(rates, reverse=True)
    assert rates[0] == pytest.approx(1e-3) and rates[-1] < 0.5e-3
    assert curves["constant"][-1].lr == pytest.approx(2e-4)

    table = (tmp_path / "curves.md").read_text()
    total = sum(len(points) for points in curves.values())
    rows = [line for line in table.splitlines() if line.startswith(("| constant", "| cosine"))]
    assert len(rows) == 2 + total  # the final row of each, then every scoring
    header = (tmp_path / "curves.csv").read_text().splitlines()
    assert header[0].startswith("recipe,cpu_minutes,step") and "rain" in header[0]
    assert len(header) == 1 + total
    report = json.loads((tmp_path / "curves.json").read_text())
    assert report["cosine"]["settings"]["train_config"]["lr"] == 1e-3
    with Image.open(tmp_path / "curves.png") as plot:
        assert plot.format == "PNG" and plot.width > 600


def test_a_recipe_is_not_run_twice_into_one_folder(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "curve.jsonl").write_text("")
    with pytest.raises(MeasrError, match="was run into this folder"):
        run_recipe(RECIPES["base"], tiny_bench(folders, tmp_path), [])
    assert read_curves(tmp_path) == {}


def test_every_named_recipe_is_a_valid_training_setting(folders: tuple[Path, Path]) -> None:
    bench = Bench(out=Path("unused"), data=[str(folders[0])], val=folders[1])
    for recipe in RECIPES.values():
        config = bench.train_config(recipe)
        config.check()
        assert config.config == recipe.overrides.get("config", "small")
        assert config.threads == 1 and config.workers == 0
        assert {k: getattr(config, k) for k in recipe.overrides} == dict(recipe.overrides)


def test_early_patches_last_for_their_share_of_the_cpu_budget(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    bench = tiny_bench(folders, tmp_path)
    recipe = Recipe(
        "early", "64 px for the first half", {"early_patch": 64, "early_patch_fraction": 0.5}
    )
    config = bench.train_config(recipe)
    young = BudgetTrainer(config, tmp_path / "young", budget_s=1e6, items=[])
    spent = BudgetTrainer(config, tmp_path / "spent", budget_s=1e-6, items=[])
    assert (young.patch(), spent.patch()) == (64, 128)
    assert spent.finished() and not young.finished()
