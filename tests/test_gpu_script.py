"""The GPU training path, run on the CPU: the throughput step (degradation on the device,
batch-scaled learning rate, losses read only when logged) and scripts/device/gpu_run.sh end to
end with the tiny configuration, then scripts/device/ship_back.sh on what it brought back."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_training import losses
from tiny_weights import smooth_photo

from measr import build_model
from measr.manifest import read_manifest, sha256_of
from measr.training.data import DEGRADE_MARGIN, RecipeSamples, dihedral, on_device
from measr.training.long_run import write_handoff
from measr.training.schedule import batch_scaled_lr
from measr.training.trainer import METRICS_NAME, StepRecord, TrainConfig, Trainer
from measr.weights import load_model, read_metadata, save_weights

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The layout prepare_data.sh makes: train/ photos and a val/ root with Kodak-like photos."""
    root = tmp_path_factory.mktemp("device-data")
    rng = np.random.default_rng(0)
    for folder, count, size in (("train/bsd400/clean", 4, 96), ("val/kodak24/clean", 1, 64)):
        (root / folder).mkdir(parents=True)
        for i in range(count):
            cv2.imwrite(str(root / folder / f"p{i}.png"), smooth_photo(rng, size))
    return root


def settings(data_root: Path, **overrides: object) -> TrainConfig:
    base = dict(
        config="tiny", tasks="five", data=[str(data_root / "train")], steps=3, batch=2,
        patch=64, warmup=2, workers=0, log_every=1, checkpoint_minutes=1e9, threads=1,
        degrade_on_device=True, deterministic=True,
    )  # fmt: skip
    base.update(overrides)
    return TrainConfig(**base)  # type: ignore[arg-type]


class StopError(Exception):
    pass


def test_throughput_path_trains_tiny_on_cpu(data_root: Path, tmp_path: Path) -> None:
    """Two steps through the CUDA-minded path on the CPU (degradation on the device, the
    batch-scaled rate, losses read when logged): finite losses, the scaled rate, moved EMA."""
    config = settings(data_root, steps=2, log_every=2, lr_reference_batch=1, deterministic=False)
    trainer = Trainer(config, tmp_path)
    before = [p.detach().clone() for p in trainer.ema.module.parameters()]
    trainer.run()
    ((step, loss),) = losses(tmp_path)
    assert step == 2 and math.isfinite(loss)
    peak = json.loads((tmp_path / METRICS_NAME).read_text())["lr"]
    assert peak == pytest.approx(config.lr * math.sqrt(2), rel=1e-6)  # warm-up reached it
    after = list(trainer.ema.module.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_throughput_path_trains_tiny_on_cuda(data_root: Path, tmp_path: Path) -> None:
    """The same two steps on the GPU: pinned recipe batches, degradation on the GPU, bf16,
    fused AdamW."""
    config = settings(data_root, steps=2, log_every=2, device="cuda", deterministic=False)
    Trainer(config, tmp_path).run()
    ((step, loss),) = losses(tmp_path)
    assert step == 2 and math.isfinite(loss)


@pytest.mark.slow
def test_device_degraded_run_resumes_with_identical_losses(data_root: Path, tmp_path: Path) -> None:
    """The on-device path is as exact on resume as the numpy one: the pixel randomness of a
    step is seeded by the run's seed and the step."""
    Trainer(settings(data_root, checkpoint_steps=2), tmp_path / "straight").run()

    def stop_after_three(record: StepRecord) -> None:
        if record.step == 3:
            raise StopError

    interrupted = tmp_path / "interrupted"
    with pytest.raises(StopError):
        Trainer(settings(data_root, checkpoint_steps=2), interrupted).run(stop_after_three)
    Trainer(settings(data_root, checkpoint_steps=2), interrupted, resume=True).run()
    straight = losses(tmp_path / "straight")
    assert losses(interrupted) == straight
    assert len(straight) == 3 and all(math.isfinite(loss) for _, loss in straight)


def test_device_batch_is_the_patch_of_the_degraded_window(data_root: Path) -> None:
    """A clean task ('none') comes out as the centre patch of its window in its view, and the
    degraded and clean patches of a sample stay aligned."""
    samples = RecipeSamples([data_root / "train"], "six", 64, 0)
    clean_index = next(i for i in range(200) if samples[i][2].key == ("none",))
    batch = RecipeSamples.collate([samples[clean_index], samples[clean_index + 1]])
    degraded, clean, task = on_device(batch, torch.device("cpu"), 64, torch.Generator())
    assert degraded.shape == clean.shape == (2, 3, 64, 64) and task.tolist() == batch.task.tolist()
    assert torch.equal(degraded[0], clean[0])
    core = slice(DEGRADE_MARGIN, DEGRADE_MARGIN + 64)
    window = batch.windows[:1, :, core, core].float() / 255
    assert torch.equal(clean[:1], dihedral(window, batch.views[:1]))


def test_dihedral_views_are_numpy_s_rot90_and_flip() -> None:
    image = torch.rand(1, 3, 5, 5)
    array = image[0].permute(1, 2, 0).numpy()
    for view in range(8):
        turned = np.rot90(array, view // 2)
        expected = turned[:, ::-1] if view % 2 else turned
        got = dihedral(image, [view])[0].permute(1, 2, 0).numpy()
        assert np.array_equal(got, expected)


def test_learning_rate_grows_with_the_square_root_of_the_batch() -> None:
    assert batch_scaled_lr(2e-4, 32, 8) == pytest.approx(4e-4)
    assert batch_scaled_lr(2e-4, 32, 0) == 2e-4


def tiny_default(folder: Path) -> Path:
    """A weights.txt whose default is a fresh tiny model, for the ship rule to compare with."""
    torch.manual_seed(1)
    weights = folder / "tiny-default.safetensors"
    save_weights(build_model("tiny"), weights, metadata={"tasks": "five", "steps": "0"})
    manifest = folder / "weights.txt"
    line = f"tiny-default {weights} {sha256_of(weights)} config=tiny tasks=five default=yes\n"
    manifest.write_text(line)
    return manifest


@pytest.mark.slow
def test_gpu_script_dry_run_on_cpu_brings_back_weights_that_ship_back(
    data_root: Path, tmp_path: Path
) -> None:
    """scripts/device/gpu_run.sh as the device machine runs it (tiny, CPU, two steps): the EMA
    weights with their provenance, metrics and validation scores land in $OUT, and
    ship_back.sh exports them with the ship rule into weights.txt."""
    out = tmp_path / "out"
    out.mkdir()
    manifest = tiny_default(tmp_path)
    env = {
        **os.environ,
        "OUT": str(out), "DATA": str(data_root), "DEVICE": "cpu", "CONFIG": "tiny",
        "STEPS": "2", "BATCH": "2", "PATCH": "64", "WORKERS": "0", "BENCH": "0",
        "INIT": str(manifest.parent / "tiny-default.safetensors"), "LOG_EVERY": "1",
        "SAVE_MINUTES": "0", "PYTHON": sys.executable, "MEASR_WEIGHTS_MANIFEST": str(manifest),
        "OMP_NUM_THREADS": "1",
    }  # fmt: skip
    run = subprocess.run(
        ["bash", "scripts/device/gpu_run.sh", "1"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    weights = out / "tiny_ema.safetensors"
    meta = read_metadata(weights)
    assert meta["steps"] == "2" and meta["train_tasks"] == "five" and meta["device"] == "cpu"
    assert meta["init"] == "tiny-default(0steps)" and meta["steps_total"] == "2"
    assert load_model(weights).config.name == "tiny"
    scores = [json.loads(line) for line in (out / "tiny_scores.jsonl").read_text().splitlines()]
    assert scores[-1]["step"] == 2 and "noise25" in scores[-1]["val"]
    assert len((out / "tiny_metrics.jsonl").read_text().splitlines()) == 2

    parts = tmp_path / "parts"  # a file brought back in pieces is joined first
    parts.mkdir()
    blob = weights.read_bytes()
    (parts / "tiny_ema.safetensors.part00").write_bytes(blob[: len(blob) // 2])
    (parts / "tiny_ema.safetensors.part01").write_bytes(blob[len(blob) // 2 :])
    measr = shutil.which("measr") or f"{sys.executable} -m measr.cli"
    back = subprocess.run(
        ["bash", "scripts/device/ship_back.sh", str(parts), "tiny-gpu", str(data_root / "val"),
         "tiny"],
        cwd=ROOT,
        env={**env, "MEASR": measr, "PYTHON": sys.executable,
             "WEIGHTS_DIR": str(tmp_path / "weights")},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert back.returncode == 0, back.stdout[-2000:] + back.stderr[-2000:]
    assert "ship" in back.stderr + back.stdout
    entry = next(e for e in read_manifest(manifest) if e.name == "tiny-gpu")
    assert entry.fields["steps"] == "2" and "val.noise25" in entry.fields


def test_weights_over_the_part_size_come_back_in_parts_that_join(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = ROOT / "scripts/device/train_timed.py"
    spec = importlib.util.spec_from_file_location("train_timed", script)
    assert spec is not None and spec.loader is not None
    train_timed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_timed)
    monkeypatch.setattr(train_timed, "PART_BYTES", 1000)
    source = tmp_path / "full_ema.safetensors"
    source.write_bytes(np.random.default_rng(0).bytes(2500))
    out = tmp_path / "out"
    out.mkdir()
    (out / "full_ema.safetensors").write_bytes(b"an older whole copy")
    parts = train_timed.write_parts(source, out)
    assert [p.name for p in parts] == [f"full_ema.safetensors.part0{i}" for i in range(3)]
    assert sorted(out.iterdir()) == parts  # the older copy is gone
    assert b"".join(p.read_bytes() for p in parts) == source.read_bytes()
    assert max(p.stat().st_size for p in parts) <= 1000


def test_prepare_data_fills_what_the_device_tool_carries_and_no_more(tmp_path: Path) -> None:
    """The validation subset first, then the training collections in turn, within the budget
    of what may travel (the tracked files count too)."""
    shared = tmp_path / "shared"
    for folder, count in (("train/bsd400/clean", 5), ("train/sunhays80/clean", 5)):
        (shared / folder).mkdir(parents=True)
        for i in range(count):
            (shared / folder / f"{i}.jpg").write_bytes(bytes(1000))
    (shared / "val/kodak24/clean").mkdir(parents=True)
    for i in range(6):
        (shared / "val/kodak24/clean" / f"k{i}.png").write_bytes(bytes(1000))
    work = tmp_path / "work"
    shutil.copytree(ROOT / "scripts", work / "scripts")
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    env = {**os.environ, "BUDGET_BYTES": "7500", "PER_SET": "4"}
    result = subprocess.run(
        ["bash", "scripts/device/prepare_data.sh", str(shared)], cwd=work, env=env,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    data = work / ".device/data"
    assert len(list((data / "val/kodak24/clean").iterdir())) == 4
    trained = sorted(str(p.relative_to(data / "train")) for p in (data / "train").rglob("*.jpg"))
    assert trained == ["bsd400/clean/0.jpg", "bsd400/clean/1.jpg", "sunhays80/clean/0.jpg"]
    assert "3 training photos" in result.stdout


@pytest.mark.slow
def test_a_gpu_stretch_continues_the_long_run_and_comes_back_into_it(
    data_root: Path, tmp_path: Path
) -> None:
    """Without INIT, gpu_run.sh starts from the hand-off with its settings; `long_run.sh adopt`
    then makes what it brought back the run's, and moves the CPU's run folder aside."""
    work = tmp_path / "work"
    shutil.copytree(ROOT / "scripts", work / "scripts")
    cpu_run = tmp_path / "runs" / "long"
    own = settings(data_root, steps=1000, prompt_weight=0.0, early_patch=0)
    Trainer(own, cpu_run).run(stop_after_minutes=1e-9)
    write_handoff(cpu_run, work / "long-run")  # step 1
    out = tmp_path / "out"
    out.mkdir()
    env = {
        **os.environ,
        "OUT": str(out), "DATA": str(data_root), "DEVICE": "cpu", "CONFIG": "tiny",
        "STEPS": "2", "BATCH": "2", "PATCH": "64", "WORKERS": "0", "BENCH": "0",
        "LOG_EVERY": "1", "SAVE_MINUTES": "0", "PYTHON": sys.executable, "OMP_NUM_THREADS": "1",
        "MEASR_LONG_RUN_DIR": str(cpu_run),
    }  # fmt: skip
    env.pop("INIT", None)
    run = subprocess.run(
        ["bash", "scripts/device/gpu_run.sh", "1"], cwd=work, env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "continuing the long run" in run.stdout
    meta = read_metadata(out / "tiny_ema.safetensors")
    assert meta["long_run_from_step"] == "1" and meta["train_tasks"] == "five"

    back = subprocess.run(
        ["bash", "scripts/long_run.sh", "adopt", str(out)], cwd=work, env=env,
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert back.returncode == 0, back.stdout[-2000:] + back.stderr[-2000:]
    totals = json.loads((work / "long-run/state.json").read_text())["totals"]
    assert (totals["step"], totals["patches"], totals["stretches"]) == (3, 2 + 4, 2)
    assert not cpu_run.exists() and list(cpu_run.parent.glob("long-before-gpu-*"))
