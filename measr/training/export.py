"""`measr export`: a run's EMA weights -> safetensors (fp16 where lossless) + weights.txt."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from measr.degrade import mix_weights
from measr.manifest import WeightsEntry, sha256_of, upsert_entry
from measr.model import MEASNet, ModelConfig
from measr.model.weights import save_weights
from measr.training.checkpoint import load_checkpoint
from measr.training.trainer import TRAIN_CONFIG_NAME, TrainConfig
from measr.training.validation import default_validation_set, evaluate

# fp16 storage is used only when it moves no validation PSNR by this much (dB).
HALF_TOLERANCE_DB = 0.01


@dataclass
class ExportResult:
    """What `export_run` wrote and measured."""

    entry: WeightsEntry
    half: bool
    scores: dict[str, tuple[float, float]]
    half_scores: dict[str, tuple[float, float]]


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


def score(
    model: MEASNet, config: TrainConfig, val_root: Path | None
) -> dict[str, tuple[float, float]]:
    """Validation (PSNR, SSIM) per task on the run's validation set."""
    root = val_root or (Path(config.val) if config.val else None)
    if root is None:
        return {}
    tasks = list(mix_weights(config.tasks))
    items = default_validation_set(root, tasks, config.val_crop, config.val_per_task)
    with torch.no_grad():
        return evaluate(items, lambda x: model(x).image)


def export_run(
    run_dir: Path,
    name: str,
    out_dir: Path,
    *,
    half: str = "auto",
    default: bool = False,
    manifest: Path | None = None,
    val_root: Path | None = None,
    data_label: str = "",
) -> ExportResult:
    """Write RUN_DIR's EMA weights to OUT_DIR/NAME.safetensors and list them in weights.txt."""
    config = TrainConfig(**json.loads((run_dir / TRAIN_CONFIG_NAME).read_text()))
    model, state = ema_model(run_dir)
    scores = score(model, config, val_root)
    half_scores = score(half_rounded(model), config, val_root) if half == "auto" else {}
    use_half = half == "yes" or (
        half == "auto"
        and all(abs(half_scores[t][0] - scores[t][0]) < HALF_TOLERANCE_DB for t in scores)
    )
    final = half_scores if use_half and half_scores else scores
    fields = {
        "config": model.config.name,
        "tasks": config.tasks,
        "steps": str(state["step"]),
        "patch": str(config.patch),
        "batch": str(config.batch),
        "cpu_hours": f"{state['cpu_seconds'] / 3600:.2f}",
        "wall_hours": f"{state['wall_seconds'] / 3600:.2f}",
        "device": config.device,
        "data": data_label or ",".join(Path(d).name for d in config.data),
        "trained": "yes",
        "dtype": "float16" if use_half else "float32",
        **{f"val.{t}": f"{p:.2f}/{s:.4f}" for t, (p, s) in final.items()},
    }
    if default:
        fields["default"] = "yes"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.safetensors"
    save_weights(model, path, half=use_half, metadata=fields)
    entry = WeightsEntry(name, path, sha256_of(path), fields)
    upsert_entry(entry, manifest)
    return ExportResult(entry, use_half, scores, half_scores)
