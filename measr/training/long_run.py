"""The long run: one training run that goes on from one stretch of work to the next, on
whatever machine (docs/training.md, "The long run").

Its full state (checkpoint with optimiser, metrics) lives in a run folder outside the work tree.
What a new machine needs to go on lives in the repository, in the hand-off folder: the EMA
weights (float16, overwritten each time), `state.json` (the step reached, which fixes the data
position and the schedule, the totals of patches and CPU-hours, and the settings the next
stretch trains with) and `curve.jsonl` (every validation of the run, for its learning curve).

    measr train --out RUN_DIR --continue-from HANDOFF [--minutes M]   # a stretch
    python -m measr.training.long_run RUN_DIR HANDOFF                  # after it: the hand-off
    python -m measr.training.long_run --adopt WEIGHTS HANDOFF          # a lent GPU's stretch

A stretch resumes RUN_DIR where it holds a checkpoint, else starts there from the hand-off's
weights at its step (`continue_settings`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from measr.atomic import replacing
from measr.errors import MeasrError
from measr.training.checkpoint import CHECKPOINT_NAME
from measr.training.export import ema_model, run_provenance
from measr.training.trainer import METRICS_NAME, TrainConfig
from measr.weights import CONFIG_KEY, load_model, read_config, read_metadata, save_weights

WEIGHTS_NAME = "ema.safetensors"
STATE_NAME = "state.json"
CURVE_NAME = "curve.jsonl"
# Written into a run folder that a stretch started from the hand-off: the totals before it.
BASE_NAME = "long-run-base.json"


@dataclass
class Totals:
    """What the run has done over all its stretches."""

    step: int = 0
    patches: int = 0
    cpu_hours: float = 0.0
    wall_hours: float = 0.0
    stretches: int = 0
    gpu_minutes: float = 0.0  # the run's own, on lent GPUs (`adopt`)


@dataclass
class HandoffState:
    """`state.json`: the run's totals and the settings its next stretch trains with."""

    totals: Totals = field(default_factory=Totals)
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, handoff: Path) -> HandoffState:
        path = handoff / STATE_NAME
        try:
            raw = json.loads(path.read_text())
            return cls(Totals(**raw["totals"]), dict(raw["settings"]))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise MeasrError(f"cannot read the long run's state '{path}': {error}") from None

    def save(self, handoff: Path) -> None:
        handoff.mkdir(parents=True, exist_ok=True)
        text = json.dumps(dataclasses.asdict(self), indent=1) + "\n"
        with replacing(handoff / STATE_NAME) as temporary:
            temporary.write_text(text)


def continue_settings(run_dir: Path, handoff: Path) -> tuple[TrainConfig, bool]:
    """The settings that continue the run, and whether they resume RUN_DIR: its own where it
    holds a checkpoint, else a new stretch there from the hand-off (its weights, at its step,
    with its settings), remembering the totals it starts from."""
    if (run_dir / CHECKPOINT_NAME).is_file():
        return TrainConfig.load(run_dir), True
    state = HandoffState.load(handoff)
    settings = TrainConfig(**state.settings)
    settings.init = str(handoff / WEIGHTS_NAME)
    settings.start_step = state.totals.step
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / BASE_NAME).write_text(json.dumps(dataclasses.asdict(state.totals)))
    return settings, False


def patches_at(step: int, settings: TrainConfig, base: Totals) -> int:
    """Patches the run has seen by `step` of a stretch that began at `settings.start_step`."""
    return base.patches + (step - settings.start_step) * settings.batch


def write_handoff(run_dir: Path, handoff: Path) -> HandoffState:
    """Write the run folder's EMA weights (float16), its totals and its validations into the
    hand-off folder; the settings of the next stretch are the run folder's."""
    model, checkpoint = ema_model(run_dir)
    settings = TrainConfig.load(run_dir)
    base = Totals()
    if (run_dir / BASE_NAME).is_file():
        base = Totals(**json.loads((run_dir / BASE_NAME).read_text()))
    step = int(checkpoint["step"])
    totals = Totals(
        step=step,
        patches=patches_at(step, settings, base),
        cpu_hours=round(base.cpu_hours + checkpoint["cpu_seconds"] / 3600, 3),
        wall_hours=round(base.wall_hours + checkpoint["wall_seconds"] / 3600, 3),
        stretches=base.stretches + 1,
        gpu_minutes=base.gpu_minutes,
    )
    # The next stretch is a new run folder: its own settings, not this folder's resume-only ones.
    next_settings = dataclasses.replace(settings, init=None, start_step=0, time_budget_minutes=0)
    state = HandoffState(totals, dataclasses.asdict(next_settings))
    metadata = {
        **run_provenance(settings, checkpoint),  # the lineage's totals, as `measr export` reads
        "long_run_step": str(step),
        "long_run_patches": str(totals.patches),
        "long_run_cpu_hours": str(totals.cpu_hours),
    }
    handoff.mkdir(parents=True, exist_ok=True)
    save_weights(model, handoff / WEIGHTS_NAME, half=True, metadata=metadata)
    append_curve(run_dir, settings, handoff / CURVE_NAME, base)
    state.save(handoff)
    return state


# Written by scripts/device/train_timed.py into weights started from a hand-off: its step.
FROM_STEP_KEY = "long_run_from_step"


def adopt(weights: Path, handoff: Path) -> HandoffState:
    """Make weights trained on the run's behalf elsewhere (a lent GPU's stretch,
    scripts/device/gpu_run.sh, started from this hand-off) the run's: they become the hand-off's
    weights, and the totals go on by their patches and GPU minutes; the run's step advances by
    as many of its own batches, so the next stretch's data go on after the GPU's. Refused when
    they did not start from this hand-off's step (the CPU's branch was handed off since: two
    branches cannot both be the run) or are another network."""
    state = HandoffState.load(handoff)
    metadata = read_metadata(weights)
    start = metadata.get(FROM_STEP_KEY)
    if start is None or int(start) != state.totals.step:
        raise MeasrError(
            f"'{weights}' started from step {start} of the long run, and '{handoff}' is at step "
            f"{state.totals.step}",
            "adopt weights that started from this hand-off (scripts/device/gpu_run.sh starts "
            "from the committed one), or keep the CPU's branch",
        )
    model = load_model(weights)
    if model.config != read_config(handoff / WEIGHTS_NAME):
        raise MeasrError(f"'{weights}' is not the long run's network", "adopt the run's own")
    patches = int(metadata["steps"]) * int(metadata["batch"])
    before = float(read_metadata(handoff / WEIGHTS_NAME).get("gpu_minutes", 0))
    own_minutes = float(metadata.get("gpu_minutes", 0)) - before
    totals = dataclasses.replace(
        state.totals,
        step=state.totals.step + math.ceil(patches / int(state.settings["batch"])),
        patches=state.totals.patches + patches,
        stretches=state.totals.stretches + 1,
        gpu_minutes=round(state.totals.gpu_minutes + own_minutes, 2),
    )
    metadata.pop(CONFIG_KEY, None)
    metadata.update(
        long_run_step=str(totals.step),
        long_run_patches=str(totals.patches),
        long_run_cpu_hours=str(totals.cpu_hours),
    )
    save_weights(model, handoff / WEIGHTS_NAME, half=True, metadata=metadata)
    adopted = HandoffState(totals, state.settings)
    adopted.save(handoff)
    return adopted


def append_curve(run_dir: Path, settings: TrainConfig, curve: Path, base: Totals) -> None:
    """Add the run folder's validations not yet in the curve, with the run's totals at each."""
    lines = curve.read_text().splitlines() if curve.exists() else []
    known = {json.loads(line)["step"] for line in lines}
    metrics = (run_dir / METRICS_NAME).read_text().splitlines()
    for record in map(json.loads, filter(None, metrics)):
        if "val_psnr" not in record or record["step"] in known:
            continue
        point = {
            "step": record["step"],
            "patches": patches_at(record["step"], settings, base),
            "wall_hours": round(base.wall_hours + record["elapsed_s"] / 3600, 3),
            "val_psnr": record["val_psnr"],
        }
        if "prompt_accuracy" in record:
            point["prompt_accuracy"] = record["prompt_accuracy"]
        lines.append(json.dumps(point))
    with replacing(curve) as temporary:
        temporary.write_text("".join(f"{line}\n" for line in lines))


def main(argv: list[str]) -> int:
    adopting = argv[:1] == ["--adopt"]
    argv = argv[1:] if adopting else argv
    if len(argv) != 2:
        sys.stderr.write(__doc__ or "")
        return 2
    try:
        if adopting:
            state = adopt(Path(argv[0]), Path(argv[1]))
        else:
            state = write_handoff(Path(argv[0]), Path(argv[1]))
    except MeasrError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    totals = state.totals
    print(
        f"hand-off written to {argv[1]}: step {totals.step}, {totals.patches} patches, "
        f"{totals.cpu_hours} CPU-hours, {totals.gpu_minutes} GPU-minutes, "
        f"{totals.stretches} stretches"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
