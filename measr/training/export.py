"""`measr export`: a run's EMA weights -> safetensors (fp16 where lossless) + weights.txt."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from measr.atomic import temporary_path
from measr.degrade import mix_weights
from measr.errors import MeasrError, quoted
from measr.manifest import (
    COMPUTED_KEYS,
    PROVENANCE_KEYS,
    SCORE,
    WeightsEntry,
    check_listable,
    check_name,
    clean_value,
    field_problem,
    find_entry,
    sha256_of,
    upsert_entry,
)
from measr.model import MEASNet, ModelConfig
from measr.training.checkpoint import load_checkpoint
from measr.training.trainer import TrainConfig
from measr.training.validation import (
    ValidationItem,
    default_validation_set,
    evaluate,
    framed,
)
from measr.weights import load_model, read_metadata, save_weights

# fp16 storage is used only when it moves no validation PSNR by this much (dB).
HALF_TOLERANCE_DB = 0.01
# The ship rule: new weights replace the default when their mean PSNR over the validation sets
# both are scored on is higher and no set falls by more than this (dB).
MAX_SET_DROP_DB = 0.3
# How the weights may be stored: fp16 where it is lossless, fp16, or float32.
HALF_CHOICES = ("auto", "yes", "no")


@dataclass(frozen=True)
class ShipDecision:
    """New weights against the default, set by set, on every validation photo."""

    candidate: dict[str, tuple[float, float]]
    default: dict[str, tuple[float, float]]
    default_name: str

    @property
    def sets(self) -> list[str]:
        """The sets both were scored on (a set only one knows, e.g. clean, is not compared)."""
        return [t for t in self.candidate if t in self.default]

    def change(self, task: str) -> float:
        return self.candidate[task][0] - self.default[task][0]

    @property
    def mean_change(self) -> float:
        return sum(self.change(t) for t in self.sets) / max(len(self.sets), 1)

    @property
    def worst(self) -> tuple[str, float]:
        task = min(self.sets, key=self.change)
        return task, self.change(task)

    @property
    def ships(self) -> bool:
        return bool(self.sets) and self.mean_change > 0 and self.worst[1] >= -MAX_SET_DROP_DB

    def reason(self) -> str:
        task, drop = self.worst
        verdict = "ships" if self.ships else "does not ship"
        return (
            f"{verdict}: mean {self.mean_change:+.3f} dB over {len(self.sets)} sets against "
            f"'{self.default_name}', worst {task} {drop:+.3f} dB (rule: mean up, none below "
            f"-{MAX_SET_DROP_DB} dB)"
        )


@dataclass
class ExportResult:
    """What `export_run` wrote and measured."""

    entry: WeightsEntry
    half: bool
    scores: dict[str, tuple[float, float]]
    half_scores: dict[str, tuple[float, float]]
    decision: ShipDecision | None = None


def ema_model(run_dir: Path) -> tuple[MEASNet, dict]:
    """The run's EMA network (fp32, eval mode) and its checkpoint state."""
    state = load_checkpoint(run_dir)
    model = MEASNet(ModelConfig.from_json(state["model_config"]))
    prefix = "module."
    weights = {k[len(prefix) :]: v for k, v in state["ema"].items() if k.startswith(prefix)}
    model.load_state_dict(weights)
    return model.eval(), state


def half_rounded(model: MEASNet) -> MEASNet:
    """A copy whose floating-point weights went through float16 and back."""
    copy = MEASNet(model.config)
    copy.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    return copy.eval()


@dataclass(frozen=True)
class Scoring:
    """Which validation set export scores the weights on: by default every photo (the ship
    rule is decided on all of them, not on the few a run validates on as it trains)."""

    tasks: str
    val_root: Path | None
    crop: int = 192
    per_task: int = 0

    def items(self, tasks: str | None = None) -> list[ValidationItem]:
        """The validation photos of a task mix (this scoring's by default); none without a
        validation root."""
        if self.val_root is None:
            return []
        mix = list(mix_weights(tasks or self.tasks))
        return default_validation_set(self.val_root, mix, self.crop, self.per_task)


def score(model: MEASNet, items: list[ValidationItem]) -> dict[str, tuple[float, float]]:
    """Validation (PSNR, SSIM) per task of `model` on the items, run as `measr restore` runs it."""
    model.eval()
    with torch.no_grad():
        return evaluate(items, framed(lambda x: model(x).image, model.requirements.edge_margin))


def input_score(items: list[ValidationItem]) -> dict[str, tuple[float, float]]:
    """The damaged inputs' own (PSNR, SSIM) per task on the items: what the weights must beat
    to do any good (`measr.engine.harm`). Sets whose input equals its target (clean photos:
    infinite PSNR) are left out."""
    scores = evaluate(items, lambda x: x)
    return {task: s for task, s in scores.items() if math.isfinite(s[0])}


def ship_decision(
    scores: dict[str, tuple[float, float]], scoring: Scoring, manifest: Path | None = None
) -> ShipDecision:
    """`scores` against the current default of weights.txt, scored now on the same photos
    (the default on its own task mix)."""
    entry = find_entry(None, manifest)
    tasks = entry.fields.get("tasks", scoring.tasks)
    default_scores = score(load_model(entry.file, entry), scoring.items(tasks))
    return ShipDecision(scores, default_scores, entry.name)


def publish(
    model: MEASNet,
    name: str,
    out_dir: Path,
    provenance: dict[str, str],
    scoring: Scoring,
    *,
    half: str = "auto",
    default: bool = False,
    ship: bool = False,
    manifest: Path | None = None,
) -> ExportResult:
    """Score `model`, store it (fp16 when that moves no validation PSNR by HALF_TOLERANCE_DB),
    and add it to weights.txt with its provenance and scores. `default` makes it the default;
    `ship` does when it beats the current default by the ship rule (`ShipDecision`); nothing
    else does, and the provenance cannot set the fields computed here (`COMPUTED_KEYS`).

    The file is written under a temporary name and takes its place only once weights.txt
    lists its checksum (`upsert_entry`), so the file an entry names always matches it."""
    path = out_dir / f"{name}.safetensors"
    check_export(name, half, scoring.tasks)
    check_listable(WeightsEntry(name, path, "0" * 64), manifest)
    model = model.eval()
    items = scoring.items()  # read and degraded once for every score below
    measure = partial(score, items=items)
    scores = measure(model)
    half_scores = measure(half_rounded(model)) if half == "auto" else {}
    use_half = half == "yes" or (
        half == "auto"
        and all(abs(half_scores[t][0] - scores[t][0]) < HALF_TOLERANCE_DB for t in scores)
    )
    final = half_scores if use_half and half_scores else scores
    inputs = input_score(items)
    decision = ship_decision(final, scoring, manifest) if ship else None
    default = default or (decision is not None and decision.ships)
    fields = {
        **{k: clean_value(v) for k, v in provenance.items() if k not in COMPUTED_KEYS},
        "config": model.config.name,
        "tasks": scoring.tasks.replace(" ", ""),
        "trained": "yes",
        "dtype": "float16" if use_half else "float32",
        **{f"val.{t}": f"{p:.2f}/{s:.4f}" for t, (p, s) in final.items()},
        **{f"input.{t}": f"{p:.2f}/{s:.4f}" for t, (p, s) in inputs.items()},
    }
    staged = temporary_path(path)
    try:
        save_weights(model, staged, half=use_half, metadata=fields)
        if default:  # a line of weights.txt, not of the file: another manifest decides its own
            fields["default"] = "yes"
        entry = WeightsEntry(name, path, sha256_of(staged), fields)
        upsert_entry(entry, manifest, staged=staged)
    finally:
        staged.unlink(missing_ok=True)
    return ExportResult(entry, use_half, scores, half_scores, decision)


def check_export(name: str, half: str, tasks: str) -> None:
    """Refuse a name weights.txt cannot hold or that is not a plain file name, a `half` that
    is not one of HALF_CHOICES, and an unknown task mix, before anything is scored."""
    check_name(name)
    if half not in HALF_CHOICES:
        raise MeasrError(
            f"unknown half-precision choice {quoted(half)}",
            f"use {', '.join(HALF_CHOICES)}",
            option="half",
        )
    mix_weights(tasks)


def note_provenance(notes: list[str]) -> dict[str, str]:
    """Provenance fields from KEY=VALUE notes the user typed: each holds '=', keeps to the
    characters weights.txt allows, and sets none of the fields export computes."""
    fields = {}
    for note in notes:
        key, equals, value = note.partition("=")
        problem = None if equals else f"the note {quoted(note)} is not KEY=VALUE"
        if not problem and (key in COMPUTED_KEYS or key.startswith(("val.", "input."))):
            problem = f"the note {quoted(note)} sets {key}, which export computes"
        problem = problem or field_problem(key, value)
        if problem:
            raise MeasrError(problem, "write each note as KEY=VALUE, e.g. gpu=h100", option="note")
        fields[key] = value
    return fields


def metadata_provenance(metadata: dict[str, str]) -> dict[str, str]:
    """The provenance in a weights file's metadata, which anyone may have written: only the
    known keys (`PROVENANCE_KEYS`) and validation scores that are two numbers, each value
    cut down to the characters weights.txt allows (`clean_value`)."""
    return {
        key: clean_value(value)
        for key, value in metadata.items()
        if key in PROVENANCE_KEYS or (key.startswith("val.") and SCORE.fullmatch(value))
    }


def run_provenance(config: TrainConfig, state: dict) -> dict[str, str]:
    """Manifest fields describing how a run was trained."""
    fields = {
        "steps": str(state["step"] - config.start_step),  # a stretch counts its own steps
        "patch": str(config.patch),
        "batch": str(config.batch),
        "cpu_hours": f"{state['cpu_seconds'] / 3600:.2f}",
        "wall_hours": f"{state['wall_seconds'] / 3600:.2f}",
        "device": config.device,
        "data": ",".join(Path(d).name for d in config.data) or "paired",
    }
    if config.init:
        init = read_metadata(config.init)
        fields["init"] = f"{Path(config.init).stem}({init.get('steps', '?')}steps)"
        fields.update(lineage_totals(fields, init))
    return fields


def lineage_totals(own: dict[str, str], init: dict[str, str]) -> dict[str, str]:
    """Steps and CPU-hours summed over a chain of runs, each started from the previous weights.

    A run started with `--init` continues earlier training; what it cost in all is its own
    figures plus the totals (or, for the first link, the figures) of the weights it started from.
    GPU minutes are carried over unchanged, since CPU runs add none.
    """

    def total(key: str) -> float:
        return float(init.get(f"{key}_total", init.get(key, 0)))

    totals = {
        "steps_total": str(int(own["steps"]) + int(total("steps"))),
        "cpu_hours_total": f"{float(own['cpu_hours']) + total('cpu_hours'):.2f}",
    }
    if "gpu_minutes" in init:
        totals["gpu_minutes"] = init["gpu_minutes"]
    return totals


def export_run(
    run_dir: Path,
    name: str,
    out_dir: Path,
    *,
    half: str = "auto",
    default: bool = False,
    ship: bool = False,
    manifest: Path | None = None,
    val_root: Path | None = None,
) -> ExportResult:
    """Write RUN_DIR's EMA weights to OUT_DIR/NAME.safetensors and list them in weights.txt."""
    config = TrainConfig.load(run_dir)
    model, state = ema_model(run_dir)
    root = val_root or (Path(config.val) if config.val else None)
    scoring = Scoring(config.tasks, root, config.val_crop)
    provenance = run_provenance(config, state)
    return publish(model, name, out_dir, provenance, scoring,
                   half=half, default=default, ship=ship, manifest=manifest)  # fmt: skip


def export_weights_file(
    weights: Path,
    name: str,
    out_dir: Path,
    scoring: Scoring,
    provenance: dict[str, str],
    *,
    half: str = "auto",
    default: bool = False,
    ship: bool = False,
    manifest: Path | None = None,
) -> ExportResult:
    """List an existing weights file (e.g. trained on a lent GPU) in weights.txt, re-scored here.
    Its own provenance (steps, GPU minutes: `metadata_provenance`) is kept."""
    metadata = metadata_provenance(read_metadata(weights))
    return publish(load_model(weights), name, out_dir, {**metadata, **provenance}, scoring,
                   half=half, default=default, ship=ship, manifest=manifest)  # fmt: skip
