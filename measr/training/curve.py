"""Where the long run is heading (issue 37): its learning curve per validation set, a trend
fitted on its latest validations, and what that trend reaches at a budget of CPU-hours.

The curve is `long-run/curve.jsonl` (every quick validation of the run: 2 photos per folder and
task, 192 px centre crops, fixed seeds; `measr.training.long_run`). Each set's trend is a least-
squares line of PSNR against log2 of the patches seen, over the latest validations, so its slope
is dB per doubling of the training; extended to the patches the run will have seen at the
budget (at its own rate of patches per CPU-hour), it says where the set is heading if nothing
changes. Beside each set: the damaged input's score and the shipped default's on the same crops.

    python -m measr.training.curve long-run [--last 6] [--since STEP] [--budget 30]
        [--markdown FILE] [--png FILE] [--no-default]

The quick set is not the ship rule's (every validation photo): the figures show direction,
not what an export would score.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from measr.degrade import mix_weights
from measr.manifest import find_entry
from measr.training.export import score
from measr.training.long_run import CURVE_NAME, HandoffState
from measr.training.validation import default_validation_set, evaluate
from measr.weights import load_model

# Validations the trend is fitted on by default: the last 1,200 steps at the run's 200.
LATEST = 6


@dataclass(frozen=True)
class Trend:
    """PSNR = intercept + slope * log2(patches): `slope` is dB per doubling of the patches."""

    slope: float
    intercept: float

    def at(self, patches: float) -> float:
        return self.intercept + self.slope * math.log2(patches)


def fit_trend(points: Sequence[tuple[float, float]]) -> Trend | None:
    """The least-squares trend of (patches, PSNR) points; None with fewer than 3 or without
    two different patch counts."""
    if len(points) < 3:
        return None
    xs = [math.log2(patches) for patches, _ in points]
    ys = [psnr for _, psnr in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    return Trend(slope, mean_y - slope * mean_x)


def read_curve(path: Path) -> list[dict]:
    """The curve's validations, in order of step."""
    lines = path.read_text().splitlines()
    return sorted((json.loads(line) for line in lines if line.strip()), key=lambda p: p["step"])


@dataclass(frozen=True)
class SetCourse:
    """One validation set's course: its latest score, its trend and where the trend leads."""

    name: str
    latest: float
    trend: Trend | None
    projected: float | None


def latest(curve: Sequence[dict], last: int = LATEST, since: int = 0) -> list[dict]:
    """The validations a trend fits: the `last` ones, none before step `since`."""
    return [point for point in curve[-last:] if point["step"] >= since]


def courses(
    curve: Sequence[dict], budget_patches: float, last: int = LATEST, since: int = 0
) -> list[SetCourse]:
    """Each set's course over the validations `latest` picks."""
    recent = latest(curve, last, since)
    names = list(recent[-1]["val_psnr"]) if recent else []
    result = []
    for name in names:
        points = [(p["patches"], p["val_psnr"][name]) for p in recent if name in p["val_psnr"]]
        trend = fit_trend(points)
        projected = None if trend is None else trend.at(budget_patches)
        result.append(SetCourse(name, points[-1][1], trend, projected))
    return result


def budget_patches(state: HandoffState, budget_cpu_hours: float) -> float:
    """The patches the run will have seen at `budget_cpu_hours`, at its rate so far."""
    totals = state.totals
    if totals.cpu_hours <= 0:
        return float(totals.patches)
    return totals.patches / totals.cpu_hours * max(budget_cpu_hours, totals.cpu_hours)


def references(state: HandoffState, default: bool = True) -> dict[str, dict[str, float]]:
    """The damaged input's PSNR on the quick set's crops, and the shipped default's (framed as
    `measr restore` runs it), by set."""
    settings = state.settings
    if not settings.get("val"):
        return {}
    items = default_validation_set(
        Path(settings["val"]), list(mix_weights(settings["tasks"])), settings["val_crop"],
        settings["val_per_task"],
    )  # fmt: skip
    scores = {"input": evaluate(items, lambda x: x)}
    if default:
        entry = find_entry(None)
        scores["default"] = score(load_model(entry.file, entry), items)
    return {kind: {name: s[0] for name, s in by_set.items()} for kind, by_set in scores.items()}


def cell(value: float | None, digits: int = 2, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def report(
    curve: Sequence[dict],
    state: HandoffState,
    budget_cpu_hours: float,
    last: int = LATEST,
    known: Mapping[str, Mapping[str, float]] | None = None,
    since: int = 0,
) -> str:
    """The course of every set as Markdown: input and default beside the run's latest score,
    the trend's dB per doubling, and the trend's score at the budget."""
    known = known or {}
    patches = budget_patches(state, budget_cpu_hours)
    totals = state.totals
    fitted = latest(curve, last, since)
    first = fitted[0]["step"] if fitted else 0
    lines = [
        f"# The long run's course: step {totals.step}, {totals.patches:,} patches, "
        f"{totals.cpu_hours} CPU-hours",
        "",
        f"Trend: PSNR against log2(patches) over the last {len(fitted)} validations "
        f"(from step {first}); at {budget_cpu_hours:g} CPU-hours the run will have seen about "
        f"{patches:,.0f} patches at its rate so far. Quick validation set (dB), not the ship "
        "rule's; a trend across a change of data or recipe is not a forecast.",
        "",
        "| set | input | default | run, latest | dB per doubling | at the budget |",
        "|---|---|---|---|---|---|",
    ]
    for course in courses(curve, patches, last, since):
        slope = None if course.trend is None else course.trend.slope
        lines.append(
            f"| {course.name} | {cell(known.get('input', {}).get(course.name))} | "
            f"{cell(known.get('default', {}).get(course.name))} | {cell(course.latest)} | "
            f"{cell(slope, signed=True)} | {cell(course.projected)} |"
        )
    return "\n".join(lines) + "\n"


def plot(curve: Sequence[dict], path: Path, known: Mapping[str, Mapping[str, float]]) -> None:
    """Each set's PSNR against the patches seen (log scale), input and default dashed."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.ticker import NullFormatter

    names = list(curve[-1]["val_psnr"])
    columns = 4
    rows = math.ceil(len(names) / columns)
    figure, axes = pyplot.subplots(rows, columns, figsize=(4 * columns, 2.6 * rows), squeeze=False)
    for axis, name in zip(axes.flat, names, strict=False):
        points = [(p["patches"], p["val_psnr"][name]) for p in curve if name in p["val_psnr"]]
        axis.plot([x for x, _ in points], [y for _, y in points], marker=".", label="run")
        for kind, style in (("input", ":"), ("default", "--")):
            if name in known.get(kind, {}):
                axis.axhline(known[kind][name], linestyle=style, color="grey", label=kind)
        axis.set_xscale("log")
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_title(name, fontsize=9)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(names) :]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    figure.supxlabel("patches seen")
    figure.supylabel("PSNR, dB (quick validation set)")
    figure.tight_layout()
    figure.savefig(path, dpi=80)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("handoff", type=Path, help="the hand-off folder (long-run)")
    parser.add_argument("--last", type=int, default=LATEST, help="validations the trend fits")
    parser.add_argument("--since", type=int, default=0, help="none before this step")
    parser.add_argument("--budget", type=float, default=30.0, help="CPU-hours to project to")
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--png", type=Path, default=None)
    parser.add_argument("--no-default", action="store_true", help="skip the default's scores")
    args = parser.parse_args(argv)
    state = HandoffState.load(args.handoff)
    curve = read_curve(args.handoff / CURVE_NAME)
    known = references(state, default=not args.no_default)
    text = report(curve, state, args.budget, args.last, known, args.since)
    if args.markdown is not None:
        args.markdown.write_text(text)
    if args.png is not None:
        plot(curve, args.png, known)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
