"""Train one configuration for a time budget on the device machine, bringing its EMA weights
back in $OUT every few minutes, so that a call cut off at its limit still returns them.

Run by scripts/device/gpu_run.sh (which says what each setting is for); `--help` lists them.
Every save writes, under --out:
  CONFIG_ema.safetensors    fp16 EMA weights with their provenance (steps, GPU minutes, init),
                            split into CONFIG_ema.safetensors.partNN files just under 16 MiB
                            when larger (the device tool brings back files of at most 16 MiB);
  CONFIG_metrics.jsonl      the run's metrics (loss, patches/s) so far;
  CONFIG_scores.jsonl       one line per save: the EMA weights' PSNR/SSIM on the --val photos.
Back on the CPU, scripts/device/ship_back.sh joins the parts and applies the ship rule.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from measr.manifest import find_entry
from measr.training.export import lineage_totals
from measr.training.trainer import METRICS_NAME, StepRecord, TrainConfig, Trainer
from measr.weights import read_metadata, save_weights

# Under the 16 MiB the device tool brings back per file, and large enough that `full`'s fp16
# weights (60.4 MiB) take four parts: with its log, metrics, scores and the throughput figures
# that is the eight files a call may bring back.
PART_BYTES = 16 * 2**20 - 2**16


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="small")
    parser.add_argument("--minutes", type=float, required=True, help="training time budget")
    parser.add_argument("--steps", type=int, default=10**7, help="stop sooner after N steps")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-4, help="peak rate at --lr-reference-batch")
    parser.add_argument("--lr-reference-batch", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--tasks", default="five")
    parser.add_argument("--prompt-weight", type=float, default=0.1)
    parser.add_argument("--init", default="default", help="weights file, 'default' or ''")
    parser.add_argument("--data", type=Path, required=True, help="folder of clean photos")
    parser.add_argument("--val", type=Path, required=True, help="validation root")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--run-dir", type=Path, default=Path("/tmp/measr-runs"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--save-minutes", type=float, default=2.0)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    return parser.parse_args()


def init_weights(choice: str) -> str | None:
    """The weights to start from: a file, the manifest's default ('default'), or none ('')."""
    if not choice:
        return None
    return str(find_entry(None).file) if choice == "default" else choice


def settings(args: argparse.Namespace) -> TrainConfig:
    init = init_weights(args.init)
    return TrainConfig(
        config=args.config, tasks=args.tasks, data=[str(args.data)], val=str(args.val),
        val_crop=192, val_per_task=0, steps=args.steps, batch=args.batch, patch=args.patch,
        lr=args.lr, lr_reference_batch=args.lr_reference_batch, warmup=args.warmup,
        workers=args.workers, init=init, log_every=args.log_every, val_every=10**9,
        checkpoint_minutes=10**6, time_budget_minutes=args.minutes, device=args.device,
        prompt_weight=args.prompt_weight, degrade_on_device=True, compile=args.compile,
        channels_last=args.channels_last,
    )  # fmt: skip


def provenance(trainer: Trainer) -> dict[str, str]:
    """What the weights are: this run's steps and device minutes, and the lineage from init."""
    c = trainer.config
    own = {
        "steps": str(trainer.step),
        "cpu_hours": "0.00",  # device time is counted in gpu_minutes
        "train_tasks": c.tasks,
        "batch": str(c.batch * trainer.dist.world),
        "patch": str(c.patch),
        "prompt_weight": f"{c.prompt_weight:g}",
        "device": str(trainer.device),
        "data": Path(c.data[0]).name,
    }
    minutes = trainer.wall_seconds / 60
    if not c.init:
        return {**own, "gpu_minutes": f"{minutes:.2f}"}
    init = read_metadata(c.init)
    lineage = lineage_totals(own, init)
    before = float(lineage.pop("gpu_minutes", "0"))
    own["init"] = f"{Path(c.init).stem}({init.get('steps', '?')}steps)"
    if "long_run_step" in init:  # a stretch of the long run: `long_run.py --adopt` takes it back
        own["long_run_from_step"] = init["long_run_step"]
    return {**own, **lineage, "gpu_minutes": f"{before + minutes:.2f}"}


def write_parts(source: Path, out_dir: Path) -> list[Path]:
    """Copy `source` into out_dir whole, or as NAME.partNN pieces of PART_BYTES when larger
    (rejoin with `cat NAME.part* > NAME`); older copies and pieces are removed first."""
    for old in out_dir.glob(f"{source.name}*"):
        old.unlink()
    if source.stat().st_size <= PART_BYTES:
        return [Path(shutil.copy(source, out_dir / source.name))]
    parts = []
    with open(source, "rb") as handle:
        for number, chunk in enumerate(iter(lambda: handle.read(PART_BYTES), b"")):
            part = out_dir / f"{source.name}.part{number:02d}"
            part.write_bytes(chunk)
            parts.append(part)
    return parts


def save(trainer: Trainer, out_dir: Path) -> None:
    """Bring the EMA weights, the metrics and the EMA's validation scores to out_dir."""
    name = trainer.config.config
    weights = trainer.run_dir / f"{name}_ema.safetensors"
    save_weights(trainer.ema.module, weights, half=True, metadata=provenance(trainer))  # type: ignore[arg-type]
    write_parts(weights, out_dir)
    shutil.copy(trainer.run_dir / METRICS_NAME, out_dir / f"{name}_metrics.jsonl")
    scores = {task: [round(p, 3), round(s, 4)] for task, (p, s) in trainer.validate().items()}
    line = {"step": trainer.step, "minutes": round(trainer.wall_seconds / 60, 2), "val": scores}
    with open(out_dir / f"{name}_scores.jsonl", "a") as handle:
        handle.write(json.dumps(line) + "\n")


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    # The run folder is scratch on the device (what comes back is written to --out): each call
    # trains a new run there, so one left by an earlier call on a warm machine goes first.
    scratch = args.run_dir / args.config
    shutil.rmtree(scratch, ignore_errors=True)
    trainer = Trainer(settings(args), scratch)
    saved_at = time.monotonic()

    def progress(record: StepRecord) -> None:
        nonlocal saved_at
        print(args.config, record.to_json(), flush=True)
        if time.monotonic() - saved_at >= args.save_minutes * 60:
            save(trainer, args.out)
            saved_at = time.monotonic()

    trainer.run(progress)
    save(trainer, args.out)
    done = {"steps": trainer.step, "minutes": round(trainer.wall_seconds / 60, 2)}
    print(args.config, "done", json.dumps(done), flush=True)


if __name__ == "__main__":
    main()
