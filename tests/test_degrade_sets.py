"""The composite validation set and synthetic sets whose target is not the clean photo."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from measr.degrade import COMPOSITES
from measr.errors import MeasrError
from measr.evaluation.sets import composite_sets, list_items, load_item, synthetic_set
from measr.training.data import TrainingSamples
from measr.training.trainer import TrainConfig
from measr.training.validation import composite_validation_set


def write_photos(folder: Path, count: int = 2, size: int = 48) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        small = rng.integers(30, 230, (4, 4, 3)).astype(np.uint8)
        photo = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"photo{i}.png"), photo)
    return folder


def test_the_composite_validation_set_is_fixed_and_labelled_by_spec(tmp_path: Path) -> None:
    write_photos(tmp_path / "kodak24" / "clean")
    first = composite_validation_set(tmp_path, crop=32, per_task=2)
    again = composite_validation_set(tmp_path, crop=32, per_task=2)
    assert [item.task for item in first] == [spec for _ in range(2) for spec in COMPOSITES]
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a.degraded, b.degraded) and np.array_equal(a.clean, b.clean)
        assert a.degraded.shape == a.clean.shape == (32, 32, 3)
        assert np.abs(a.degraded - a.clean).mean() > 0.01


def test_benchmark_sets_of_composites_and_of_dark_scenes(tmp_path: Path) -> None:
    folder = write_photos(tmp_path / "clean", count=1)
    names = [eval_set.name for eval_set in composite_sets(folder)]
    assert names == [f"{tmp_path.name}:{spec}" for spec in COMPOSITES]
    dark = synthetic_set(folder, "dark+camnoise")
    (item,) = list_items(dark)
    degraded, target = load_item(dark, item, seed=0)
    clean = cv2.cvtColor(cv2.imread(str(item.clean)), cv2.COLOR_BGR2RGB) / 255.0
    assert target.mean() < 0.2 < clean.mean()  # a dark scene is scored against itself
    assert abs(float(degraded.mean() - target.mean())) < 0.03


def test_training_samples_of_dark_scenes_have_dark_targets(tmp_path: Path) -> None:
    """In the `eight` mix a dark scene's target is the darkened photo; the other tasks'
    targets are still the clean patch."""
    samples = TrainingSamples([write_photos(tmp_path / "train", size=96)], "eight", 32, 0)
    dark = samples.tasks.index("darkscene")
    found = {"darkscene": 0, "other": 0}
    for index in range(400):
        degraded, target, task = samples[index]
        if task == dark:
            found["darkscene"] += 1
            assert float(target.mean()) < 0.3  # the window is at most 0.19 on average
            assert abs(float(degraded.mean() - target.mean())) < 0.03
        elif samples.tasks[task] == "haze":
            found["other"] += 1
            assert float(target.mean()) > 0.25  # the photos' mean is about 0.5
        if min(found.values()) >= 2:
            return
    raise AssertionError(f"too few dark scenes or haze samples among 400: {found}")


def test_a_device_run_refuses_tasks_with_no_batched_version(tmp_path: Path) -> None:
    data = str(write_photos(tmp_path / "train", count=1))
    with pytest.raises(MeasrError, match="camnoise, darkscene"):
        TrainConfig(data=[data], tasks="eight", degrade_on_device=True).check()
    TrainConfig(data=[data], tasks="eight:camnoise=0,darkscene=0", degrade_on_device=True).check()
    TrainConfig(data=[data], tasks="eight").check()
