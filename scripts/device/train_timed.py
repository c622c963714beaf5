"""Train one configuration for a fixed time on a lent GPU, writing its EMA weights (fp16
safetensors) and metrics to $OUT every two minutes, so that a cut-off call still brings them back.

Usage: python3 scripts/device/train_timed.py CONFIG MINUTES BATCH LR DATA_ROOT OUT [INIT]
(INIT: weights to start from, e.g. the shipped default, with a shorter warm-up; the task mix is
$TRAIN_TASKS, `measr train --tasks` syntax, default five.)
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from measr.training.trainer import METRICS_NAME, StepRecord, TrainConfig, Trainer
from measr.weights import save_weights


def main() -> None:
    config, minutes, batch, lr, data_root, out = sys.argv[1:7]
    init = sys.argv[7] if len(sys.argv) > 7 else None
    data, out_dir = Path(data_root), Path(out)
    run_dir = Path(f"/tmp/runs/{config}")
    settings = TrainConfig(
        config=config, tasks=os.environ.get("TRAIN_TASKS", "five"), data=[str(data / "bsd400")],
        val=str(data / "val"),
        val_crop=192, val_per_task=4, steps=10**7, batch=int(batch), patch=128, lr=float(lr),
        warmup=100 if init else 200, workers=6, init=init, log_every=50, val_every=10**9,
        checkpoint_minutes=2.0,
        time_budget_minutes=float(minutes), device=os.environ.get("MEASR_DEVICE", "cuda"),
    )  # fmt: skip
    trainer = Trainer(settings, run_dir, resume=os.environ.get("RESUME") == "1")
    saved_at = time.monotonic()

    def save() -> None:
        meta = {"steps": str(trainer.step), "gpu_minutes": f"{trainer.wall_seconds / 60:.2f}"}
        target = out_dir / f"{config}_ema.safetensors"
        if config == "full":  # 60 MiB: kept on the machine's disk, fetched by a second call
            target = run_dir / f"{config}_ema.safetensors"
        save_weights(trainer.ema.module, target, half=True, metadata=meta)  # type: ignore[arg-type]
        shutil.copy(run_dir / METRICS_NAME, out_dir / f"{config}_metrics.jsonl")

    def progress(record: StepRecord) -> None:
        nonlocal saved_at
        print(config, record.to_json(), flush=True)
        if time.monotonic() - saved_at > 120:
            save()
            saved_at = time.monotonic()

    trainer.run(progress)
    save()
    print(config, "done", json.dumps({"steps": trainer.step, "minutes": trainer.wall_seconds / 60}))


if __name__ == "__main__":
    main()
