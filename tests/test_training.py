"""Training: the loss falls, a killed run resumes exactly, validation and export work."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from tiny_weights import smooth_photo
from typer.testing import CliRunner

from measr.cli.app import app
from measr.errors import ExitCode, MeasrError
from measr.manifest import read_manifest, sha256_of
from measr.training.export import export_run
from measr.training.trainer import METRICS_NAME, StepRecord, TrainConfig, Trainer
from measr.weights import load_model


@pytest.fixture(scope="module")
def val_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("val")
    (root / "kodak24" / "clean").mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(2):
        cv2.imwrite(str(root / "kodak24" / "clean" / f"k{i}.png"), smooth_photo(rng, 80))
    return root


def settings(photos: Path, **overrides: object) -> TrainConfig:
    base = dict(
        config="tiny", tasks="three", data=[str(photos)], steps=6, batch=2, patch=64,
        warmup=2, workers=0, log_every=1, checkpoint_minutes=1e9, deterministic=True, threads=1,
        prompt_weight=0.0, early_patch=0,  # the mechanics, not measr train's default recipe
    )  # fmt: skip
    base.update(overrides)
    return TrainConfig(**base)  # type: ignore[arg-type]


def losses(run_dir: Path) -> list[tuple[int, float]]:
    lines = (run_dir / METRICS_NAME).read_text().splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, lines)]


@pytest.mark.slow  # 40 steps of training (the resume tests train a few)
def test_short_training_lowers_the_loss(photos: Path, tmp_path: Path) -> None:
    config = settings(photos, steps=40, batch=4, lr=2e-3, warmup=3, log_every=5, seed=3)
    Trainer(config, tmp_path).run()
    logged = [loss for _, loss in losses(tmp_path)]
    assert len(logged) == 8
    assert np.mean(logged[-2:]) < 0.8 * np.mean(logged[:2])


class SimulatedStopError(Exception):
    pass


def test_killed_run_resumes_with_identical_losses(photos: Path, tmp_path: Path) -> None:
    Trainer(settings(photos, checkpoint_steps=3), tmp_path / "straight").run()

    def stop_after_four(record: StepRecord) -> None:
        if record.step == 4:
            raise SimulatedStopError  # between checkpoints: step 4 is lost, step 3 is saved

    interrupted = tmp_path / "interrupted"
    with pytest.raises(SimulatedStopError):
        Trainer(settings(photos, checkpoint_steps=3), interrupted).run(stop_after_four)
    resumed = Trainer(settings(photos, checkpoint_steps=3), interrupted, resume=True)
    assert resumed.step == 3
    resumed.run()
    assert losses(interrupted) == losses(tmp_path / "straight")


def test_validation_is_logged_and_export_lists_the_weights(
    photos: Path, val_root: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    config = settings(photos, steps=2, val=str(val_root), val_crop=64, val_every=2)
    Trainer(config, run).run()
    last = json.loads((run / METRICS_NAME).read_text().splitlines()[-1])
    assert set(last["val_psnr"]) == {"noise15", "noise25", "noise50", "rain", "haze"}
    assert all(np.isfinite(v) for v in last["val_psnr"].values())

    manifest = tmp_path / "weights.txt"
    result = export_run(run, "tiny-test", tmp_path / "weights", manifest=manifest)
    (entry,) = read_manifest(manifest)
    assert entry.name == "tiny-test" and entry.sha256 == sha256_of(entry.file)
    assert entry.fields["steps"] == "2" and entry.fields["config"] == "tiny"
    assert set(entry.validation_scores()) == set(last["val_psnr"])
    assert entry.fields["dtype"] == ("float16" if result.half else "float32")
    assert load_model(entry.file).config.name == "tiny"

    continued = tmp_path / "continued"
    Trainer(settings(photos, steps=3, init=str(entry.file)), continued).run()
    export_run(continued, "tiny-more", tmp_path / "weights", manifest=manifest)
    more = next(e for e in read_manifest(manifest) if e.name == "tiny-more")
    assert more.fields["init"] == "tiny-test(2steps)" and more.fields["steps_total"] == "5"
    own_hours = float(more.fields["cpu_hours"]) + float(entry.fields["cpu_hours"])
    assert float(more.fields["cpu_hours_total"]) == pytest.approx(own_hours, abs=0.011)


@pytest.mark.slow  # two `measr train` processes, one killed
def test_sigkilled_cli_run_resumes_with_identical_losses(photos: Path, tmp_path: Path) -> None:
    """A real `measr train` process killed with SIGKILL mid-run, then resumed with --resume."""
    common = [
        sys.executable, "-m", "measr.cli.app", "train", "--config", "tiny", "--tasks", "three",
        "--data", str(photos), "--steps", "12", "--batch", "2", "--patch", "64", "--warmup", "2",
        "--workers", "0", "--log-every", "1", "--checkpoint-steps", "2", "--deterministic",
        "--threads", "1",
    ]  # fmt: skip
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run([*common, "--out", str(straight)], check=True, capture_output=True)
    process = subprocess.Popen([*common, "--out", str(killed)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        metrics = killed / METRICS_NAME
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 5:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    subprocess.run([*common, "--out", str(killed), "--resume"], check=True, capture_output=True)
    assert losses(killed) == losses(straight)


def test_time_budget_ends_the_run_and_counts_across_resumes(photos: Path, tmp_path: Path) -> None:
    """`--minutes`: the schedule runs on the run's own training time, which a resume keeps."""
    config = settings(photos, steps=100_000, time_budget_minutes=0.02, deterministic=False)
    run = tmp_path / "budget"
    first = Trainer(config, run)
    first.run()
    assert 0 < first.step < 100_000 and first.wall_seconds >= 0.02 * 60
    assert losses(run)[-1][0] == first.step  # the last step is logged
    resumed = Trainer(config, run, resume=True)
    resumed.run()
    assert resumed.step == first.step


@pytest.mark.parametrize(
    ("saved", "says"),
    [(None, "no training run in"), ("{", "cannot read"), ('{"config": "tiny", "x": 1}', "x")],
)
def test_resuming_a_folder_without_a_readable_run_is_one_error_line(
    tmp_path: Path, saved: str | None, says: str
) -> None:
    if saved is not None:
        (tmp_path / "train.json").write_text(saved)
    result = CliRunner().invoke(app, ["train", "--out", str(tmp_path), "--resume"])
    assert result.exit_code == ExitCode.USAGE, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], result.stderr


def test_a_resumed_run_keeps_its_settings_unless_steps_or_minutes_are_given(
    tmp_path: Path,
) -> None:
    TrainConfig(config="tiny", steps=500, lr=1e-3, time_budget_minutes=30.0).save(tmp_path)
    loaded = TrainConfig.load(tmp_path)
    assert loaded == TrainConfig(config="tiny", steps=500, lr=1e-3, time_budget_minutes=30.0)
    assert loaded.resumed(steps=None, minutes=None) == loaded
    resumed = loaded.resumed(steps=100_000, minutes=0.0)  # the old defaults count when given
    assert (resumed.steps, resumed.time_budget_minutes, resumed.lr) == (100_000, 0.0, 1e-3)


@pytest.mark.parametrize("patch", [60, 56, 100])
def test_patches_the_network_cannot_take_are_refused_before_training(
    photos: Path, patch: int
) -> None:
    with pytest.raises(MeasrError, match="multiple of 8 of at least 64"):
        settings(photos, patch=patch).check()
    settings(photos, patch=64).check()


def test_hidden_files_in_the_training_data_are_left_out(photos: Path, tmp_path: Path) -> None:
    """macOS's `._name.png` companions and hidden folders look like images by name only."""
    data = tmp_path / "data"
    shutil.copytree(photos, data)
    (data / "._p0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (data / ".thumbnails").mkdir()
    (data / ".thumbnails" / "p1.png").write_bytes(b"not a png")
    run = Trainer(settings(data, steps=2), tmp_path / "run")
    run.run()
    assert run.step == 2


def test_the_ship_rule_wants_the_mean_up_and_no_set_down_by_more_than_0_3_db() -> None:
    from measr.training.export import ShipDecision

    default = {"noise25": (26.0, 0.7), "rain": (25.0, 0.8), "haze": (18.0, 0.8)}

    def decide(**changes: float) -> ShipDecision:
        candidate = {t: (p + changes.get(t, 0.0), s) for t, (p, s) in default.items()}
        candidate["clean"] = (40.0, 0.99)  # only the candidate knows it: not compared
        return ShipDecision(candidate, default, "old")

    assert decide(noise25=0.5, rain=-0.25).ships
    assert not decide(noise25=1.5, rain=-0.35).ships  # one set down too far
    assert not decide(noise25=0.1, rain=-0.2).ships  # mean down
    assert decide(haze=0.2).sets == ["noise25", "rain", "haze"]
    assert "worst rain -0.350 dB" in decide(noise25=1.5, rain=-0.35).reason()


@pytest.mark.slow  # two exports, each scored on every photo
def test_export_with_ship_compares_against_the_default_and_ships_by_the_rule(
    photos: Path, val_root: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "weights.txt"
    run = tmp_path / "run"
    Trainer(settings(photos, steps=1), run).run()
    first = export_run(run, "first", tmp_path / "w", half="no", default=True, manifest=manifest)
    assert first.decision is None
    again = export_run(
        run, "again", tmp_path / "w", ship=True, manifest=manifest, val_root=val_root
    )
    assert again.decision is not None and again.decision.default_name == "first"
    assert again.decision.mean_change == pytest.approx(0.0, abs=0.01)  # the same weights
    default = next(e for e in read_manifest(manifest) if e.is_default).name
    assert default == ("again" if again.decision.ships else "first")


def test_validation_scores_the_network_as_measr_restore_runs_it() -> None:
    """Validation and the ship rule frame each image with the engine's mirrored edge margin,
    so they score what `measr restore` gives a user."""
    from tiny_weights import stressed_tiny

    from measr.engine import Restorer
    from measr.evaluation.metrics import psnr
    from measr.training.validation import framed

    model = stressed_tiny()
    pixels = np.random.default_rng(3).random((64, 72, 3), dtype=np.float32)
    x = torch.from_numpy(pixels.transpose(2, 0, 1).copy())[None]
    margin = model.requirements.edge_margin
    assert margin > 0
    with torch.no_grad():
        scored = framed(lambda t: model(t).image, margin)(x)[0].permute(1, 2, 0).numpy()
        bare = model(x).image[0].permute(1, 2, 0).numpy()
    restored = Restorer(model, device="cpu").restore(pixels).pixels  # clipped to 0..1
    assert scored.shape == pixels.shape
    # The engine's own kernels (fused experts) differ from the plain forward by rounding, which
    # the stressed weights amplify where routing ties flip: compare by PSNR.
    framed_psnr = psnr(np.clip(scored, 0, 1), restored)
    bare_psnr = psnr(np.clip(bare, 0, 1), restored)
    assert framed_psnr >= 45.0
    assert framed_psnr > bare_psnr + 10.0  # without the margin the edges differ
