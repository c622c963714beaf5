"""The quality benchmark: every method on every image of every set, scored with the protocol of
`measr.evaluation.metrics`. A library: it returns a report and never prints."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

import numpy as np

from measr.evaluation.baselines import BASELINES, CHEAP_BASELINES
from measr.evaluation.methods import MEASR, Method
from measr.evaluation.metrics import (
    PROTOCOL,
    ColourShift,
    MetricProtocol,
    colour_shift,
    psnr,
    ssim,
)
from measr.evaluation.pattern import PeriodicPattern, flat_blocks, periodic_pattern
from measr.evaluation.sets import EvalSet, list_items, load_item


class Status(str, Enum):
    """Whether a method produced scores on a set, and if not, why not."""

    OK = "ok"
    NOT_APPLICABLE = "not applicable"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class ImageScore:
    """One method on one image."""

    set_name: str
    method: str
    image: str
    psnr: float
    ssim: float
    seconds: float
    shift: ColourShift
    pattern: PeriodicPattern | None = None  # None: the clean image has no flat block


@dataclass(frozen=True)
class MethodScore:
    """One method on one set: mean PSNR (dB), SSIM, colour shift and periodic pattern over
    `count` images and the mean time of a restoration; None where the status is not OK, with the
    reason in `note`."""

    set_name: str
    method: str
    status: Status
    psnr: float | None
    ssim: float | None
    count: int
    seconds_per_image: float | None
    note: str = ""
    shift: ColourShift | None = None
    pattern: PeriodicPattern | None = None

    def row(self) -> dict[str, Any]:
        """One flat row (the CSV): the shift as shift_red ... shift_b and the pattern as
        pattern_period2, pattern_period8, empty when not OK."""
        row = {**asdict(self), "status": self.status.value}
        del row["shift"], row["pattern"]
        blank = dict.fromkeys(ColourShift(0, 0, 0, 0, 0, 0).flat())
        row |= self.shift.flat() if self.shift is not None else blank
        return row | pattern_columns(self.pattern)


def pattern_columns(pattern: PeriodicPattern | None) -> dict[str, float | None]:
    """The pattern's amplitudes as CSV columns (empty without flat blocks)."""
    if pattern is None:
        return {"pattern_period2": None, "pattern_period8": None}
    return {
        "pattern_period2": round(pattern.period2, 3),
        "pattern_period8": round(pattern.period8, 3),
    }


@dataclass(frozen=True)
class SetSummary:
    """What a set was: its name, where its degraded images came from, its spec, its size, and
    the periodic pattern of its clean images themselves (the level a restoration should keep)."""

    name: str
    source: str
    spec: str | None
    count: int
    clean_pattern: PeriodicPattern | None = None


@dataclass(frozen=True)
class Margin:
    """measr against one cheap baseline on one set: mean PSNR of each (dB)."""

    set_name: str
    baseline: str
    measr: float
    baseline_psnr: float

    @property
    def margin(self) -> float:
        """dB by which measr is above the baseline (negative: below)."""
        return self.measr - self.baseline_psnr


@dataclass(frozen=True)
class QualityProgress:
    """Sent after each image: which set, which image, how far along the set."""

    set_name: str
    image: str
    done: int
    total: int


@dataclass(frozen=True)
class QualityReport:
    """Every score of one run, with the protocol and seed that make it reproducible."""

    protocol: MetricProtocol
    seed: int
    methods: tuple[str, ...]
    descriptions: tuple[str, ...]  # what each method was, in the order of `methods`
    sets: tuple[SetSummary, ...]
    scores: tuple[MethodScore, ...]
    images: tuple[ImageScore, ...]

    def score(self, set_name: str, method: str) -> MethodScore:
        """The score of one method on one set."""
        for score in self.scores:
            if score.set_name == set_name and score.method == method:
                return score
        raise KeyError(f"no score for method '{method}' on set '{set_name}'")

    def rows(self) -> list[dict[str, Any]]:
        """One row per set and method (the CSV; the clean images' own pattern is in `sets`)."""
        return [score.row() for score in self.scores]

    def cheap_margins(self) -> list[Margin]:
        """measr against every cheap baseline (`baselines.CHEAP_BASELINES`) that ran on a set
        where measr ran, set by set."""
        margins = []
        for summary in self.sets:
            if MEASR not in self.methods:
                break
            ours = self.score(summary.name, MEASR)
            for name in (m for m in self.methods if m in CHEAP_BASELINES):
                theirs = self.score(summary.name, name)
                if ours.psnr is not None and theirs.psnr is not None:
                    margins.append(Margin(summary.name, name, ours.psnr, theirs.psnr))
        return margins

    def cheap_verdict(self) -> str | None:
        """'measr above every cheap baseline on every set: yes', or 'no' with each set that
        loses, to which baseline and by how much; None when no cheap baseline met measr."""
        margins = self.cheap_margins()
        if not margins:
            return None
        sets = len({m.set_name for m in margins})
        head = f"measr above every cheap baseline on every set ({sets} sets with one): "
        losses = [m for m in margins if m.margin <= 0]
        if not losses:
            closest = min(margins, key=lambda m: m.margin)
            return (
                head + f"yes (closest: {closest.set_name}, {closest.margin:+.2f} dB against "
                f"{BASELINES[closest.baseline].title})"
            )
        words = "; ".join(
            f"{m.set_name} {m.margin:+.2f} dB against {BASELINES[m.baseline].title}"
            for m in sorted(losses, key=lambda m: m.margin)
        )
        return head + f"no ({words})"

    def to_dict(self) -> dict[str, Any]:
        """Everything, per-image scores included (the JSON)."""
        return {
            "protocol": self.protocol.to_dict(),
            "seed": self.seed,
            "methods": dict(zip(self.methods, self.descriptions, strict=True)),
            "sets": [asdict(s) for s in self.sets],
            "scores": self.rows(),
            "images": [asdict(i) for i in self.images],
            "cheap_baselines": {
                "verdict": self.cheap_verdict(),
                "margins": [asdict(m) | {"margin": m.margin} for m in self.cheap_margins()],
            },
        }


def _skipped(eval_set: EvalSet, method: Method) -> MethodScore | None:
    """The score row of a method that will not run on this set, or None if it will."""
    reason = method.unavailable()
    if reason is not None:
        return MethodScore(
            eval_set.name, method.name, Status.UNAVAILABLE, None, None, 0, None, reason
        )
    reason = method.not_applicable(eval_set.spec)
    if reason is not None:
        return MethodScore(
            eval_set.name, method.name, Status.NOT_APPLICABLE, None, None, 0, None, reason
        )
    return None


def _mean_score(eval_set: EvalSet, method: str, images: list[ImageScore]) -> MethodScore:
    return MethodScore(
        eval_set.name,
        method,
        Status.OK,
        float(np.mean([i.psnr for i in images])),
        float(np.mean([i.ssim for i in images])),
        len(images),
        float(np.mean([i.seconds for i in images])),
        shift=ColourShift.mean([i.shift for i in images]),
        pattern=PeriodicPattern.mean([i.pattern for i in images]),
    )


def evaluate_set(
    eval_set: EvalSet,
    methods: Sequence[Method],
    *,
    seed: int = 0,
    limit: int | None = None,
    on_image: Callable[[QualityProgress], None] | None = None,
) -> tuple[SetSummary, list[MethodScore], list[ImageScore]]:
    """Scores of every method on one set (methods that do not apply get a row saying why)."""
    items = list_items(eval_set, limit)
    skipped = {m.name: _skipped(eval_set, m) for m in methods}
    running = [m for m in methods if skipped[m.name] is None]
    per_method: dict[str, list[ImageScore]] = {m.name: [] for m in running}
    clean_patterns = []
    for done, item in enumerate(items, start=1):
        degraded, clean = load_item(eval_set, item, seed)
        blocks = flat_blocks(clean)
        clean_patterns.append(periodic_pattern(clean, clean, blocks))
        for method in running:
            start = time.perf_counter()
            restored = method.restore(degraded, eval_set.spec)
            seconds = time.perf_counter() - start
            per_method[method.name].append(
                ImageScore(
                    eval_set.name,
                    method.name,
                    item.name,
                    psnr(restored, clean),
                    ssim(restored, clean),
                    seconds,
                    colour_shift(restored, clean),
                    periodic_pattern(restored, clean, blocks),
                )
            )
        if on_image is not None:
            on_image(QualityProgress(eval_set.name, item.name, done, len(items)))
    scores = [skipped[m.name] or _mean_score(eval_set, m.name, per_method[m.name]) for m in methods]
    summary = SetSummary(
        eval_set.name,
        eval_set.source,
        None if eval_set.spec is None else str(eval_set.spec),
        len(items),
        PeriodicPattern.mean(clean_patterns),
    )
    images = [score for m in running for score in per_method[m.name]]
    return summary, scores, images


def run_quality(
    sets: Sequence[EvalSet],
    methods: Sequence[Method],
    *,
    seed: int = 0,
    limit: int | None = None,
    on_image: Callable[[QualityProgress], None] | None = None,
) -> QualityReport:
    """Every method on every set; synthetic sets are degraded with per-image seeds derived from
    `seed`, so two runs with the same seed see the same images."""
    summaries: list[SetSummary] = []
    scores: list[MethodScore] = []
    images: list[ImageScore] = []
    for eval_set in sets:
        summary, set_scores, set_images = evaluate_set(
            eval_set, methods, seed=seed, limit=limit, on_image=on_image
        )
        summaries.append(summary)
        scores.extend(set_scores)
        images.extend(set_images)
    return QualityReport(
        PROTOCOL,
        seed,
        tuple(m.name for m in methods),
        tuple(m.describe() for m in methods),
        tuple(summaries),
        tuple(scores),
        tuple(images),
    )


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def markdown_cells(score: MethodScore) -> tuple[str, str]:
    """'PSNR / SSIM' and the colour shift of one method on one set, blank where not OK."""
    if score.status is not Status.OK or score.psnr is None or score.ssim is None:
        return "", ""
    shift = score.shift.words() if score.shift is not None else ""
    return f"{score.psnr:.2f} / {score.ssim:.3f}", shift


def _pattern_cell(pattern: PeriodicPattern | None) -> str:
    return "" if pattern is None else pattern.words()


def cheap_markdown(report: QualityReport) -> list[str]:
    """Lines: per set, measr's PSNR and each cheap baseline's with measr's margin over it, then
    the verdict; nothing when no cheap baseline met measr."""
    verdict = report.cheap_verdict()
    if verdict is None:
        return []
    margins = report.cheap_margins()
    cheap = [m for m in report.methods if any(x.baseline == m for x in margins)]
    rows = []
    for summary in report.sets:
        mine = {m.baseline: m for m in margins if m.set_name == summary.name}
        if mine:
            ours = next(iter(mine.values())).measr
            cells = [
                f"{mine[b].baseline_psnr:.2f} ({mine[b].margin:+.2f})" if b in mine else ""
                for b in cheap
            ]
            rows.append([summary.name, f"{ours:.2f}", *cells])
    lines = ["measr against the cheap baselines, PSNR (dB) and measr's margin over each:", ""]
    lines += markdown_table(["set", MEASR, *cheap], rows)
    return [*lines, "", f"**{verdict}**", ""]


def quality_markdown(report: QualityReport) -> str:
    """The report as markdown, one row per set and one column per method: 'PSNR / SSIM'; measr
    against the cheap baselines with the verdict; the mean colour shift against the clean
    images; the periodic pattern in flat regions, the clean images' own first (blank where a
    method does not apply or a set has no flat block); the protocol under them."""
    header = ["set", "n", *report.methods]
    scores, shifts, patterns = [], [], []
    for summary in report.sets:
        cells = [markdown_cells(report.score(summary.name, m)) for m in report.methods]
        first = [summary.name, str(summary.count)]
        scores.append([*first, *(c[0] for c in cells)])
        shifts.append([*first, *(c[1] for c in cells)])
        patterns.append(
            [
                *first,
                _pattern_cell(summary.clean_pattern),
                *(_pattern_cell(report.score(summary.name, m).pattern) for m in report.methods),
            ]
        )
    lines = markdown_table(header, scores)
    lines += ["", *cheap_markdown(report)]
    lines += ["Mean colour shift against the clean images (8-bit levels; CIELAB units):", ""]
    lines += markdown_table(header, shifts)
    lines += [
        "",
        "Periodic pattern in flat regions: amplitude at period 2 / 8 px (grey levels; "
        "measr.evaluation.pattern), the clean images' own first:",
        "",
    ]
    lines += markdown_table(["set", "n", "clean", *report.methods], patterns)
    lines += ["", f"{report.protocol.caption()}; seed {report.seed}."]
    return "\n".join(lines) + "\n"
