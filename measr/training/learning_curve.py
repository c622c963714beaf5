"""The learning-curve bench (issue 33): named recipes trained for the same CPU budget from the
same start, their EMA weights scored every few CPU-minutes on a fixed, quick validation subset,
so that the curves of validation PSNR against CPU-minutes compare.

The budget is CPU time, not wall time: the process's and its data workers', less the time spent
scoring, so that a busy machine slows a recipe down without shortening its training. A recipe
is a name and the `TrainConfig` fields it changes (`RECIPES`, data); the bench supplies what all
recipes share (model configuration, start, data, threads). Each scoring is appended to
OUT/RECIPE/curve.jsonl as it happens, so a run cut short still leaves its curves.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from measr import atomic
from measr.degrade import mix_weights
from measr.errors import MeasrError
from measr.evaluation.reports import write_csv, write_json, write_text
from measr.training.trainer import StepRecord, TrainConfig, Trainer, process_cpu_seconds
from measr.training.validation import ValidationItem, default_validation_set

# Every recipe is scored on the tasks of the `six` mix (clean photos included), whatever it
# trains on, so that the curves compare task by task.
VALIDATION_TASKS = tuple(mix_weights("six"))
CURVE_NAME = "curve.jsonl"
SETTINGS_NAME = "recipe.json"

# Today's long-run recipe (long-run/state.json), which every recipe starts from: a constant rate
# (the cosine runs over a million steps), the prompt's supervision, EMA decay 0.995. The warm-up
# is shortened from the long run's 50 steps to 20: a 45 CPU-minute budget is about 140 steps
# of `small` at batch 8 on one thread (docs/learning-curves.md).
LONG_RUN_SETTINGS: dict[str, Any] = {
    "tasks": "six:rain=2,blur=2",
    "steps": 1_000_000,
    "batch": 8,
    "patch": 128,
    "lr": 2e-4,
    "warmup": 20,
    "prompt_weight": 0.1,
    "ema_decay": 0.995,
    "early_patch": 0,  # pinned: `measr train`'s defaults are now the chosen recipe's
    "early_patch_fraction": 0.0,
}


@dataclass(frozen=True)
class Recipe:
    """A named way to train: the `TrainConfig` fields it changes from `LONG_RUN_SETTINGS`, and
    whether its rate decays (cosine) over the CPU budget instead of staying at its peak."""

    name: str
    description: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    anneal: bool = False


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe("base", "today's long-run recipe: lr 2e-4, batch 8, 128 px"),
        Recipe("lr1e-3-cosine", "lr 1e-3", {"lr": 1e-3}, anneal=True),
        Recipe("lr5e-5", "lr 5e-5, a quarter of base's: a fine-tune's rate", {"lr": 5e-5}),
        Recipe("fft-loss", "L1 plus 0.1 x L1 of FFT amplitudes", {"fft_loss_weight": 0.1}),
        Recipe(
            "grid-loss",
            "L1 plus 1 x L1 of the error's grid at 2 and 8 px (docs/pattern.md)",
            {"grid_loss_weight": 1.0},
        ),
        Recipe(
            "grid-loss-lr5e-5",
            "lr5e-5 plus 1 x L1 of the error's grid at 2 and 8 px",
            {"lr": 5e-5, "grid_loss_weight": 1.0},
        ),
        Recipe(
            "early-patch64",
            "64 px patches for the first half of the budget, then 128",
            {"early_patch": 64, "early_patch_fraction": 0.5},
        ),
        Recipe(
            "weak-tasks", "rain and blur weighted 3x (2x in base)", {"tasks": "six:rain=3,blur=3"}
        ),
        Recipe("batch16", "batch 16", {"batch": 16}),
        Recipe(
            "lean",
            "the lean configuration (one block a stage at full resolution), from the start's "
            "weights cut to its depth",
            {"config": "lean"},
        ),
    )
}


@dataclass(frozen=True)
class Bench:
    """What every recipe of one comparison shares: the network, its start, the data, the CPU
    budget and how often and on what the EMA weights are scored."""

    out: Path
    data: list[str]
    val: Path
    config: str = "small"
    init: str | None = None  # weights to start from (None: random)
    cpu_minutes: float = 45.0
    score_every: float = 5.0  # CPU-minutes of training between scorings
    val_crop: int = 160
    val_per_task: int = 2
    threads: int = 1
    workers: int = 0
    seed: int = 0
    # Recompute activations in the backward pass, for every recipe alike: a peak of 5.0 GB
    # instead of 9.9 for `small` at batch 8, 128 px, for a second forward pass's CPU.
    activation_checkpointing: bool = False

    def train_config(self, recipe: Recipe) -> TrainConfig:
        """The recipe's settings for this bench. The trainer neither validates (the bench
        scores) nor checkpoints before the end."""
        settings = {"config": self.config, **LONG_RUN_SETTINGS, **recipe.overrides}
        shared = dict(
            init=self.init, data=list(self.data), seed=self.seed,
            threads=self.threads, workers=self.workers, log_every=1, val=None,
            checkpoint_minutes=1e9, activation_checkpointing=self.activation_checkpointing,
        )  # fmt: skip
        return TrainConfig(**{**settings, **shared})

    def validation_set(self) -> list[ValidationItem]:
        items = default_validation_set(
            self.val, list(VALIDATION_TASKS), self.val_crop, self.val_per_task
        )
        if not items:
            raise MeasrError(
                f"no validation photos in '{self.val}'", "pass the ../shared/data/val folder"
            )
        return items


class BudgetTrainer(Trainer):
    """A `Trainer` that stops when `budget_s` seconds of training CPU are spent; what runs in
    its `not_training` blocks (scoring, reports) is left out. With `anneal`, the learning
    rate's cosine follows the budget as it follows a time budget; without, the run's schedule
    stands (a constant rate for the recipes' million steps). Early patches follow the budget."""

    def __init__(
        self,
        config: TrainConfig,
        run_dir: Path,
        budget_s: float,
        items: list[ValidationItem],
        anneal: bool = False,
    ) -> None:
        self.budget_s, self.items, self.anneal = budget_s, items, anneal
        self._cpu_start, self._scoring_cpu = process_cpu_seconds(), 0.0
        super().__init__(config, run_dir)
        self._cpu_start = process_cpu_seconds()  # building the network is not training

    def training_cpu(self) -> float:
        """CPU seconds spent training so far (scoring left out)."""
        return process_cpu_seconds() - self._cpu_start - self._scoring_cpu

    def spent(self) -> float:
        """The share of the budget spent, in [0, 1]."""
        return min(self.training_cpu() / self.budget_s, 1.0)

    def progress(self) -> float:
        own = super().progress()
        return max(own, self.spent()) if self.anneal else own

    def finished(self) -> bool:
        return self.spent() >= 1.0 or super().finished()

    def patch(self) -> int:
        """`early_patch` for the first `early_patch_fraction` of the budget (not of the run's
        progress, which a constant rate's million steps hold near 0), then `patch`."""
        c = self.config
        early = c.early_patch and self.spent() < c.early_patch_fraction
        return c.early_patch if early else c.patch

    def validation_items(self) -> list[ValidationItem]:
        return self.items

    @contextmanager
    def not_training(self) -> Iterator[None]:
        """A block whose CPU time (scoring, reports) is left out of the budget."""
        start = process_cpu_seconds()
        try:
            yield
        finally:
            self._scoring_cpu += process_cpu_seconds() - start


@dataclass
class CurvePoint:
    """One scoring of a recipe's EMA weights."""

    recipe: str
    step: int
    patches: int
    cpu_minutes: float  # of training, scoring left out
    wall_minutes: float  # since the recipe started, scoring included
    lr: float
    loss: float | None  # mean loss of the steps since the last scoring (None at the start)
    psnr: dict[str, float]
    ssim: dict[str, float]

    @property
    def mean_psnr(self) -> float:
        return float(np.mean(list(self.psnr.values())))


OnScore = Callable[[CurvePoint], None]


def run_recipe(
    recipe: Recipe,
    bench: Bench,
    items: list[ValidationItem],
    on_score: OnScore | None = None,
    notes: Mapping[str, Any] | None = None,
) -> list[CurvePoint]:
    """Train `recipe` for the bench's CPU budget from its start, scoring the EMA weights at
    the start, every `score_every` CPU-minutes and at the end; each point is appended to
    OUT/RECIPE/curve.jsonl, then passed to `on_score`. OUT/RECIPE/recipe.json holds the
    recipe's settings and `notes` (the command, the machine)."""
    config = bench.train_config(recipe)
    run_dir = bench.out / recipe.name
    if (run_dir / CURVE_NAME).exists():
        raise MeasrError(
            f"'{run_dir / CURVE_NAME}' exists: recipe '{recipe.name}' was run into this folder",
            "pass another --out, or delete that recipe's folder to run it again",
        )
    budget_s = bench.cpu_minutes * 60
    trainer = BudgetTrainer(config, run_dir, budget_s, items, recipe.anneal)
    write_json(run_dir / SETTINGS_NAME, {**recipe_settings(recipe, bench, config), **(notes or {})})
    points: list[CurvePoint] = []
    wall_start = time.monotonic()
    losses: list[float] = []

    def record(lr: float) -> None:
        cpu, wall = trainer.training_cpu(), time.monotonic() - wall_start
        with trainer.not_training():
            scores = trainer.validate()
            point = CurvePoint(
                recipe=recipe.name,
                step=trainer.step,
                patches=trainer.step * config.batch,
                cpu_minutes=round(cpu / 60, 3),
                wall_minutes=round(wall / 60, 3),
                lr=lr,
                loss=float(np.mean(losses)) if losses else None,
                psnr={task: round(s[0], 3) for task, s in scores.items()},
                ssim={task: round(s[1], 4) for task, s in scores.items()},
            )
            losses.clear()
            points.append(point)
            with open(run_dir / CURVE_NAME, "a") as handle:
                handle.write(json.dumps(dataclasses.asdict(point)) + "\n")
            if on_score:
                on_score(point)

    def progress(step: StepRecord) -> None:
        losses.append(step.loss)
        # The first mark of score_every past the last scoring (a step may outlast several).
        due = (math.floor(points[-1].cpu_minutes / bench.score_every) + 1) * bench.score_every
        if trainer.training_cpu() >= due * 60 or trainer.finished():
            record(step.lr)

    record(trainer.learning_rate())
    trainer.run(progress)
    if points[-1].step != trainer.step:  # the budget ran out while the next batch loaded
        record(trainer.optimizer.param_groups[0]["lr"])
    return points


def recipe_settings(recipe: Recipe, bench: Bench, config: TrainConfig) -> dict[str, Any]:
    """What OUT/RECIPE/recipe.json says of a recipe's run."""
    return {
        "recipe": recipe.name,
        "description": recipe.description,
        "overrides": dict(recipe.overrides),
        "anneal": recipe.anneal,
        "cpu_minutes": bench.cpu_minutes,
        "score_every": bench.score_every,
        "val": str(bench.val),
        "val_crop": bench.val_crop,
        "val_per_task": bench.val_per_task,
        "train_config": dataclasses.asdict(config),
    }


# -- the report --------------------------------------------------------------------------------


def read_curves(out: Path) -> dict[str, list[CurvePoint]]:
    """Every recipe's points so far in OUT, by recipe name (sorted)."""
    curves = {}
    for path in sorted(out.glob(f"*/{CURVE_NAME}")):
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        if lines:
            curves[path.parent.name] = [CurvePoint(**json.loads(line)) for line in lines]
    return curves


def curve_tasks(curves: Mapping[str, list[CurvePoint]]) -> list[str]:
    """The tasks scored, in the order of the first point that has them all."""
    tasks: list[str] = []
    for points in curves.values():
        for point in points:
            tasks += [task for task in point.psnr if task not in tasks]
    return tasks


def table_rows(curves: Mapping[str, list[CurvePoint]]) -> list[dict[str, Any]]:
    """One row per scoring: recipe, progress, mean PSNR and PSNR per task."""
    tasks = curve_tasks(curves)
    return [
        {
            "recipe": name,
            "cpu_minutes": p.cpu_minutes,
            "step": p.step,
            "patches": p.patches,
            "wall_minutes": p.wall_minutes,
            "lr": p.lr,
            "loss": None if p.loss is None else round(p.loss, 5),
            "mean_psnr": round(p.mean_psnr, 3),
            **{task: p.psnr.get(task) for task in tasks},
        }
        for name, points in curves.items()
        for p in points
    ]


def markdown_table(curves: Mapping[str, list[CurvePoint]]) -> str:
    """The last scores of each recipe (with the change since its start), then every scoring."""
    tasks = curve_tasks(curves)
    header = ["recipe", "CPU-min", "steps", "patches", "mean", *tasks]

    def row(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    def scores(point: CurvePoint, start: CurvePoint | None = None) -> list[str]:
        values = [point.mean_psnr, *(point.psnr.get(t, float("nan")) for t in tasks)]
        if start is None:
            return [f"{v:.2f}" for v in values]
        before = [start.mean_psnr, *(start.psnr.get(t, float("nan")) for t in tasks)]
        return [f"{v:.2f} ({v - b:+.2f})" for v, b in zip(values, before, strict=True)]

    def progress(point: CurvePoint) -> list[str]:
        return [f"{point.cpu_minutes:.1f}", str(point.step), str(point.patches)]

    rule = row(["---"] * len(header))
    lines = [
        "Validation PSNR (dB) of the EMA weights at each recipe's last scoring, the end of its "
        "budget once it has run (change since its start):",
        "",
        row(header),
        rule,
    ]
    lines += [row([name, *progress(ps[-1]), *scores(ps[-1], ps[0])]) for name, ps in curves.items()]
    lines += ["", "Every scoring:", "", row(header), rule]
    lines += [row([name, *progress(p), *scores(p)]) for name, ps in curves.items() for p in ps]
    return "\n".join(lines) + "\n"


def plot_curves(curves: Mapping[str, list[CurvePoint]], path: Path) -> None:
    """A PNG of PSNR against CPU-minutes: the mean, then one panel per task; one line per
    recipe. Needs matplotlib (`pip install matplotlib`, part of measr's dev extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        raise MeasrError(
            "the learning-curve plot needs matplotlib", "pip install matplotlib"
        ) from None
    panels = ["mean", *curve_tasks(curves)]
    columns = 4
    rows = -(-len(panels) // columns)
    figure, axes = pyplot.subplots(
        rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False, constrained_layout=True
    )
    for axis, panel in zip(axes.flat, panels, strict=False):
        for name, points in curves.items():
            values = [p.mean_psnr if panel == "mean" else p.psnr.get(panel) for p in points]
            axis.plot([p.cpu_minutes for p in points], values, marker="o", ms=3, label=name)
        axis.set_title(f"{panel} PSNR (dB)", fontsize=10)
        axis.set_xlabel("training CPU-minutes", fontsize=8)
        axis.tick_params(labelsize=8)
        axis.grid(alpha=0.3)
    for axis in axes.flat[len(panels) :]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize=8)
    with atomic.replacing(path) as temporary:
        figure.savefig(temporary, format="png", dpi=80)
    pyplot.close(figure)


REPORT_STEM = "curves"


def write_report(out: Path, plot: bool = True) -> dict[str, list[CurvePoint]]:
    """OUT/curves.md, .csv, .json (and .png with `plot`) from every recipe's points so far."""
    curves = read_curves(out)
    if not curves:
        return curves
    settings = {
        name: json.loads((out / name / SETTINGS_NAME).read_text())
        for name in curves
        if (out / name / SETTINGS_NAME).is_file()
    }
    write_text(out / f"{REPORT_STEM}.md", markdown_table(curves))
    write_csv(out / f"{REPORT_STEM}.csv", table_rows(curves))
    write_json(
        out / f"{REPORT_STEM}.json",
        {
            name: {
                "settings": settings.get(name),
                "points": [dataclasses.asdict(p) | {"mean_psnr": p.mean_psnr} for p in points],
            }
            for name, points in curves.items()
        },
    )
    if plot:
        plot_curves(curves, out / f"{REPORT_STEM}.png")
    return curves
