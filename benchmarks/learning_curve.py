"""The learning-curve bench (issue 33): validation PSNR per task against training CPU-minutes,
one curve per recipe, every recipe from the same start for the same CPU budget.

    python benchmarks/learning_curve.py --out OUT --data FOLDER [--data FOLDER ...]
        [--recipes base,lr1e-3-cosine,...] [--config small] [--init WEIGHTS]
        [--cpu-minutes 45] [--score-every 5] [--val ../shared/data/val] [--val-crop 160]
        [--val-per-task 2] [--threads 1] [--workers 0] [--jobs 1] [--activation-checkpointing]
    python benchmarks/learning_curve.py --list
    python benchmarks/learning_curve.py --out OUT --report

The budget is CPU time of the training process and its data workers, scoring left out
(measr.training.learning_curve): on a shared machine a recipe trains slower, not less. Recipes
run one after the other in this process, or `--jobs N` at a time, each in a process of its own
with `--threads` threads. Each scoring is appended to OUT/RECIPE/curve.jsonl as it happens, and
OUT/curves.md, .csv, .json and .png are rewritten from all of OUT's recipes after each one, so
a run cut short (or still running) shows its curves so far. The recipes are the table
`RECIPES`; `--list` prints it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

import measr
from measr.errors import MeasrError
from measr.evaluation.speed import cpu_model
from measr.training.learning_curve import (
    RECIPES,
    Bench,
    CurvePoint,
    Recipe,
    run_recipe,
    write_report,
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="folder of the recipes' runs and the report")
    parser.add_argument("--data", action="append", default=[], help="clean photos (repeatable)")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated names")
    parser.add_argument("--config", default="small")
    parser.add_argument("--init", help="weights to start from (default: random)")
    parser.add_argument("--cpu-minutes", type=float, default=45.0, help="budget per recipe")
    parser.add_argument("--score-every", type=float, default=5.0, help="CPU-minutes")
    parser.add_argument("--val", type=Path, default=Path("../shared/data/val"))
    parser.add_argument("--val-crop", type=int, default=160)
    parser.add_argument("--val-per-task", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per recipe")
    parser.add_argument("--workers", type=int, default=0, help="data workers per recipe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--activation-checkpointing", action="store_true", help="half the memory, more CPU"
    )
    parser.add_argument("--jobs", type=int, default=1, help="recipes run at once (processes)")
    parser.add_argument("--list", action="store_true", help="print the recipes and stop")
    parser.add_argument("--report", action="store_true", help="rewrite OUT's report and stop")
    parser.add_argument("--no-plot", action="store_true", help="tables only (no matplotlib)")
    return parser.parse_args(argv)


def chosen_recipes(names: str) -> list[Recipe]:
    recipes = []
    for name in filter(None, (n.strip() for n in names.split(","))):
        if name not in RECIPES:
            raise MeasrError(f"unknown recipe '{name}'", f"use one of {', '.join(RECIPES)}")
        recipes.append(RECIPES[name])
    return recipes


def run_notes(args: argparse.Namespace) -> dict[str, object]:
    """What recipe.json records beside the settings: the command and code, the machine."""
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "commit": commit or None,
        "measr": str(Path(measr.__file__).parent),
        "machine": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def print_point(point: CurvePoint) -> None:
    tasks = "  ".join(f"{task} {value:.2f}" for task, value in point.psnr.items())
    print(
        f"{point.recipe}: {point.cpu_minutes:6.1f} CPU-min  step {point.step:5d}  "
        f"mean {point.mean_psnr:.2f}  {tasks}",
        flush=True,
    )


def run_here(recipes: list[Recipe], bench: Bench, args: argparse.Namespace) -> None:
    """The recipes one after the other in this process, the report after each scoring."""
    items = bench.validation_set()
    notes = run_notes(args)

    def on_score(point: CurvePoint) -> None:
        print_point(point)
        write_report(bench.out, plot=not args.no_plot)

    for recipe in recipes:
        run_recipe(recipe, bench, items, on_score, notes)


def run_in_processes(recipes: list[Recipe], jobs: int) -> int:
    """Each recipe in a process of its own (this command for that recipe), `jobs` at a time;
    the number of those that failed."""
    waiting, running, failed = list(recipes), [], 0
    while waiting or running:
        while waiting and len(running) < jobs:
            recipe = waiting.pop(0)
            # argparse keeps an option's last value: the child runs this one recipe, alone.
            command = [sys.executable, *sys.argv, "--recipes", recipe.name, "--jobs", "1"]
            running.append((recipe, subprocess.Popen(command)))
        time.sleep(1)
        for recipe, process in list(running):
            if process.poll() is not None:
                running.remove((recipe, process))
                if process.returncode:
                    print(f"{recipe.name}: failed (exit {process.returncode})", flush=True)
                    failed += 1
    return failed


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.list:
        for recipe in RECIPES.values():
            schedule = "cosine over the budget" if recipe.anneal else "constant"
            print(f"{recipe.name:16} {recipe.description} ({schedule}) {dict(recipe.overrides)}")
        return 0
    if args.out is None:
        raise MeasrError("no --out folder", "pass --out FOLDER")
    if args.report:
        write_report(args.out, plot=not args.no_plot)
        return 0
    if not args.data:
        raise MeasrError("no training data", "pass --data FOLDER (clean photos)")
    recipes = chosen_recipes(args.recipes)
    bench = Bench(
        out=args.out, data=args.data, val=args.val, config=args.config, init=args.init,
        cpu_minutes=args.cpu_minutes, score_every=args.score_every, val_crop=args.val_crop,
        val_per_task=args.val_per_task, threads=args.threads, workers=args.workers,
        seed=args.seed, activation_checkpointing=args.activation_checkpointing,
    )  # fmt: skip
    if args.jobs > 1 and len(recipes) > 1:
        failed = run_in_processes(recipes, args.jobs)
        write_report(bench.out, plot=not args.no_plot)
        return 1 if failed else 0
    run_here(recipes, bench, args)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except MeasrError as error:
        print(f"error: {error.one_line()}", file=sys.stderr)
        sys.exit(int(error.exit_code))
