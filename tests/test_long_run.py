"""The long run: real damage among the samples, stretches that go on from a hand-off, a
stretch that stops on time or on a signal without disturbing the schedule."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_training import losses, settings
from tiny_weights import smooth_photo

from measr.errors import MeasrError
from measr.training.curve import fit_trend, report
from measr.training.data import TrainingSamples
from measr.training.long_run import (
    CURVE_NAME,
    STATE_NAME,
    WEIGHTS_NAME,
    HandoffState,
    Totals,
    adopt,
    continue_settings,
    write_handoff,
)
from measr.training.schedule import warmup_cosine
from measr.training.sources import FrameBurst, motion_blur_from_frames
from measr.training.trainer import StepRecord, Trainer, fft_amplitude_loss, grid_loss
from measr.weights import load_model, read_metadata, save_weights


@pytest.fixture(scope="module")
def burst(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 frames of a bright bar moving 2 px a frame across a dark background (in the middle
    of the frame, so that every 64 px window holds some of it)."""
    root = tmp_path_factory.mktemp("burst")
    for i in range(16):
        frame = np.full((80, 96, 3), 20, np.uint8)
        frame[:, 32 + 2 * i : 34 + 2 * i] = 240
        cv2.imwrite(str(root / f"{i:06d}.png"), frame)
    return root


def test_frames_are_averaged_in_linear_light() -> None:
    dark, bright = np.zeros((4, 4, 3), np.float32), np.ones((4, 4, 3), np.float32)
    blurred = motion_blur_from_frames([dark, bright])
    # Half the light of white is 0.5 ** (1 / 2.2) = 0.73 in display values, not 0.5.
    np.testing.assert_allclose(blurred, 0.5 ** (1 / 2.2), rtol=1e-5)
    np.testing.assert_allclose(motion_blur_from_frames([bright] * 7), 1.0)


def test_a_burst_sample_is_a_smeared_bar_and_its_sharp_centre_frame(burst: Path) -> None:
    samples = TrainingSamples([burst], "five", 64, seed=0, real=[("blur", burst)], real_share=1)
    blur_index = samples.tasks.index("blur")
    drawn = [samples[i] for i in range(40)]
    blurred = [(d, c) for d, c, task in drawn if task == blur_index]
    assert blurred, "no blur sample among 40 at a fifth each"
    for degraded, clean in blurred:
        # The sharp frame is the two flat levels; the average of 7-13 frames smears the bar
        # over 7-13 times as many pixels.
        assert len(np.unique(np.round(clean.numpy() * 255))) <= 2
        lit_sharp = int((clean.numpy() > 0.1).sum())
        lit_blurred = int((degraded.numpy() > 0.1).sum())
        assert lit_blurred >= 3 * lit_sharp > 0 or lit_sharp == 0


def test_real_damage_changes_only_the_samples_of_its_task(photos: Path, burst: Path) -> None:
    plain = TrainingSamples([photos], "five", 64, seed=3)
    mixed = TrainingSamples([photos], "five", 64, seed=3, real=[("blur", burst)], real_share=0.5)
    blur = plain.tasks.index("blur")
    others = [i for i in range(30) if plain[i][2] != blur]
    assert len(others) > 10
    for i in others:
        for a, b in zip(plain[i], mixed[i], strict=True):
            assert np.array_equal(np.asarray(a), np.asarray(b))


def test_a_burst_needs_enough_frames(tmp_path: Path) -> None:
    with pytest.raises(MeasrError, match="at least 13 consecutive frames"):
        FrameBurst([tmp_path / f"{i}.png" for i in range(5)])


def test_real_damage_for_a_task_outside_the_mix_is_refused(photos: Path, burst: Path) -> None:
    with pytest.raises(MeasrError, match="does not name a task"):
        settings(photos, real=[f"blur={burst}"]).check()  # the mix is `three`: no blur
    settings(photos, tasks="five", real=[f"blur={burst}"]).check()


def test_a_continuing_run_warms_up_again_from_its_start_step() -> None:
    assert warmup_cosine(500, 1000, 10, warm_from=500) == pytest.approx(0.1 * 0.5, rel=0.03)
    assert warmup_cosine(509, 1000, 10, warm_from=500) == pytest.approx(
        warmup_cosine(509, 1000, 10)
    )
    assert warmup_cosine(3, 1000, 10) == pytest.approx(0.4)  # a new run as before


def test_stretches_go_on_from_the_hand_off_with_the_run_s_totals(
    photos: Path, tmp_path: Path
) -> None:
    handoff = tmp_path / "handoff"
    first = tmp_path / "machine-a"
    Trainer(settings(photos, steps=1000, warmup=2), first).run(stop_after_minutes=1e-9)
    assert losses(first)[-1][0] == 1  # stopped after its first step
    state = write_handoff(first, handoff)
    assert (state.totals.step, state.totals.patches, state.totals.stretches) == (1, 2, 1)
    assert read_metadata(handoff / WEIGHTS_NAME)["long_run_step"] == "1"

    second = tmp_path / "machine-b"  # a new machine: no run folder, only the hand-off
    config, resume = continue_settings(second, handoff)
    assert not resume and config.start_step == 1 and config.init == str(handoff / WEIGHTS_NAME)
    Trainer(config, second).run(stop_after_minutes=1e-9)
    assert losses(second)[0][0] == 2  # step numbers go on
    state = write_handoff(second, handoff)
    assert (state.totals.step, state.totals.patches, state.totals.stretches) == (2, 4, 2)
    assert HandoffState.load(handoff).settings["start_step"] == 0
    assert json.loads((handoff / STATE_NAME).read_text())["totals"]["step"] == 2

    config, resume = continue_settings(second, handoff)  # the same machine resumes its folder
    assert resume and config.start_step == 1


def test_a_gpu_stretch_from_the_hand_off_becomes_the_run_s(photos: Path, tmp_path: Path) -> None:
    handoff = tmp_path / "handoff"
    Trainer(settings(photos, steps=1000, warmup=2), tmp_path / "cpu").run(stop_after_minutes=1e-9)
    before = write_handoff(tmp_path / "cpu", handoff)  # step 1, batch 2
    gpu = load_model(handoff / WEIGHTS_NAME)
    with torch.no_grad():
        next(gpu.parameters()).add_(0.5)  # what the GPU's training changed
    trained = tmp_path / "tiny_ema.safetensors"
    metadata = {"steps": "3", "batch": "16", "gpu_minutes": "4.5", "long_run_from_step": "1"}
    save_weights(gpu, trained, half=True, metadata=metadata)

    state = adopt(trained, handoff)
    # 48 patches: 24 of the run's own batches of 2, so the next stretch's data follow them
    assert (state.totals.step, state.totals.patches) == (1 + 24, before.totals.patches + 48)
    assert (state.totals.stretches, state.totals.gpu_minutes) == (2, 4.5)
    assert HandoffState.load(handoff).totals == state.totals
    adopted = load_model(handoff / WEIGHTS_NAME).state_dict()
    assert all(torch.equal(adopted[k], v) for k, v in load_model(trained).state_dict().items())
    assert read_metadata(handoff / WEIGHTS_NAME)["long_run_step"] == "25"
    config, _ = continue_settings(tmp_path / "next", handoff)
    assert config.start_step == 25 and config.init == str(handoff / WEIGHTS_NAME)

    with pytest.raises(MeasrError, match="started from step 1 of the long run"):
        adopt(trained, handoff)  # the hand-off has moved on: another branch


def test_a_stretch_continues_the_samples_where_the_run_left_them(
    photos: Path, tmp_path: Path
) -> None:
    samples = Trainer(settings(photos), tmp_path / "a").samples()
    config = settings(photos, start_step=3)
    continued = Trainer(config, tmp_path / "b")
    assert continued.step == 3
    first_batch = next(continued.batches())
    expected = [samples[3 * config.batch + i][0] for i in range(config.batch)]
    assert np.array_equal(first_batch[0].numpy(), np.stack([e.numpy() for e in expected]))


def test_the_curve_keeps_every_validation_once(photos: Path, tmp_path: Path) -> None:
    val = tmp_path / "val" / "kodak24" / "clean"
    val.mkdir(parents=True)
    cv2.imwrite(str(val / "k.png"), smooth_photo(np.random.default_rng(1), 80))
    config = settings(photos, steps=4, val=str(tmp_path / "val"), val_crop=64, val_every=2)
    Trainer(config, tmp_path / "run").run()
    write_handoff(tmp_path / "run", tmp_path / "handoff")
    write_handoff(tmp_path / "run", tmp_path / "handoff")  # again: nothing added twice
    curve = [
        json.loads(line) for line in (tmp_path / "handoff" / CURVE_NAME).read_text().splitlines()
    ]
    assert [point["step"] for point in curve] == [2, 4]
    assert curve[-1]["patches"] == 4 * config.batch and "noise25" in curve[-1]["val_psnr"]


def test_sigterm_stops_after_the_step_with_a_checkpoint_and_resumes_exactly(
    photos: Path, tmp_path: Path
) -> None:
    Trainer(settings(photos), tmp_path / "straight").run()

    def terminate_at_three(record: StepRecord) -> None:
        if record.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    stopped = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        Trainer(settings(photos), stopped).run(terminate_at_three)
    resumed = Trainer(settings(photos), stopped, resume=True)
    assert resumed.step == 3  # no step lost, none half done
    resumed.run()
    assert losses(stopped) == losses(tmp_path / "straight")


def test_the_fft_amplitude_loss_ignores_where_content_is_only_how_much() -> None:
    image = torch.rand(2, 3, 32, 32)
    shifted = torch.roll(image, shifts=(5, 7), dims=(2, 3))  # the same spectrum's amplitudes
    assert fft_amplitude_loss(shifted, image) < 1e-5 < float(torch.abs(shifted - image).mean())
    assert fft_amplitude_loss(image * 0.5, image) > 0.01


def test_the_grid_loss_sees_a_fixed_grid_and_nothing_else() -> None:
    torch.manual_seed(0)
    clean = torch.rand(2, 3, 64, 64)
    rows, cols = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    checker = ((rows + cols) % 2 * 2 - 1).float() * 0.01  # a 2 px grid of amplitude 0.01
    assert grid_loss(clean + checker, clean) > 0.009  # seen at period 2 (and again at 8)
    assert grid_loss(clean + 0.2, clean) < 1e-6  # a uniform offset is no grid
    noise = 0.1 * torch.randn_like(clean)  # noise averages out over the cells
    assert grid_loss(clean + noise, clean) < 0.2 * float(noise.abs().mean())


def test_training_with_the_grid_loss_logs_it_in_the_loss(photos: Path, tmp_path: Path) -> None:
    Trainer(settings(photos, steps=2), tmp_path / "plain").run()
    Trainer(settings(photos, steps=2, grid_loss_weight=100.0), tmp_path / "grid").run()
    plain, grid = losses(tmp_path / "plain"), losses(tmp_path / "grid")
    assert all(np.isfinite(loss) for _, loss in grid)
    assert grid[0][1] > plain[0][1]  # same first batch and weights: the grid term adds


def test_early_patches_are_smaller_then_the_run_s_own(photos: Path, tmp_path: Path) -> None:
    config = settings(photos, steps=4, patch=96, early_patch=64, early_patch_fraction=0.5)
    trainer = Trainer(config, tmp_path)
    sides = []
    for degraded, _clean, _task in trainer.batches():
        sides.append(degraded.shape[-1])
        trainer.step += 1
        if trainer.step == 4:
            break
    assert sides == [64, 64, 96, 96]


def test_a_cpu_budget_ends_the_run_and_drives_its_schedule(photos: Path, tmp_path: Path) -> None:
    config = settings(photos, steps=100_000, cpu_budget_minutes=0.01, deterministic=False)
    trainer = Trainer(config, tmp_path)
    trainer.run()
    assert 0 < trainer.step < 100_000 and trainer.cpu_seconds >= 0.6
    assert trainer.progress() == 1.0


def test_a_new_run_over_an_existing_one_is_refused_and_leaves_it(
    photos: Path, tmp_path: Path
) -> None:
    Trainer(settings(photos, steps=1), tmp_path).run()
    before = (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(MeasrError, match="already holds a training run"):
        Trainer(settings(photos, steps=1), tmp_path)
    assert (tmp_path / "metrics.jsonl").read_text() == before != ""


def test_an_unreadable_training_photo_is_skipped_said_once_and_the_run_goes_on(
    photos: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    shutil.copytree(photos, data)
    (data / "p1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"broken" * 10)
    samples = Trainer(settings(data), tmp_path / "run").samples()
    drawn = [samples[i] for i in range(12)]
    again = [samples[i] for i in range(12)]  # the same samples, from the same photos
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(drawn, again, strict=True))
    said = capfd.readouterr().err
    assert said.count("skipping a training photo") == 1 and "p1.png" in said


def test_a_full_disk_at_a_checkpoint_keeps_the_previous_one(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = Trainer(settings(photos, steps=2), tmp_path)
    trainer.run()
    kept = (tmp_path / "last.pt").read_bytes()

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(MeasrError, match=r"no space left .* the previous checkpoint is kept"):
        trainer.checkpoint()
    assert (tmp_path / "last.pt").read_bytes() == kept
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    ("world", "says"), [("abc", "not a number"), ("2", "not under torchrun"), ("0", "not a")]
)
def test_a_world_size_without_torchrun_is_one_error(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, world: str, says: str
) -> None:
    monkeypatch.setenv("WORLD_SIZE", world)
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(MeasrError, match=says):
        Trainer(settings(photos), tmp_path)


def test_a_patch_no_machine_could_hold_is_refused_before_allocating(
    photos: Path, tmp_path: Path
) -> None:
    with pytest.raises(MeasrError, match=r"would need about .* GB, more than"):
        Trainer(settings(photos, patch=16384), tmp_path)
    assert not (tmp_path / "metrics.jsonl").exists()


def test_a_prompt_only_run_is_not_held_to_the_whole_networks_memory(
    photos: Path, tmp_path: Path
) -> None:
    """The prompt net alone trains at batches the whole network could not hold."""
    big = settings(photos, batch=256, patch=512, prompt_only=True, prompt_weight=1.0)
    Trainer(big, tmp_path)


def test_a_set_s_trend_is_its_db_per_doubling_and_reaches_the_budget() -> None:
    points = [(1000 * 2**k, 20.0 + 0.5 * k) for k in range(4)]  # +0.5 dB per doubling
    trend = fit_trend(points)
    assert trend is not None and trend.slope == pytest.approx(0.5)
    assert trend.at(16000) == pytest.approx(22.0)
    assert fit_trend(points[:2]) is None  # too few to say
    assert fit_trend([(1000, 20.0)] * 3) is None  # no change of patches


def test_the_course_report_projects_each_set_at_the_run_s_own_rate() -> None:
    state = HandoffState(Totals(step=400, patches=3200, cpu_hours=2.0))
    curve = [
        {"step": 200 * k, "patches": 800 * 2**k, "val_psnr": {"noise25": 25.0 + k, "rain": 23.0}}
        for k in range(1, 5)
    ]
    text = report(curve, state, budget_cpu_hours=16.0, known={"input": {"noise25": 20.7}})
    assert "25,600 patches" in text  # 1,600 patches a CPU-hour, 16 CPU-hours
    assert "| noise25 | 20.70 | - | 29.00 | +1.00 | 30.00 |" in text  # one doubling on
    assert "| rain | - | - | 23.00 | +0.00 | 23.00 |" in text
    since = report(curve, state, budget_cpu_hours=16.0, since=600)
    assert "last 2 validations" in since and "| noise25 | - | - | 29.00 | - | - |" in since
