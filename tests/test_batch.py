"""`measr batch`: mirrored paths, filters, names, resuming, bad files, the log, shards, locks,
runs killed or interrupted mid-way that leave nothing partial and resume, and two runs at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from tiny_weights import write_picture, write_weights
from typer.testing import CliRunner, Result

from measr import Restorer, build_model
from measr.cli.app import app
from measr.engine.options import RestoreOptions
from measr.io import read_image
from measr.jobs.batch import (
    LOG_NAME,
    BatchReport,
    claim,
    lock_path,
    plan_jobs,
    release,
    run_batch,
)
from measr.manifest import MANIFEST_ENV

runner = CliRunner()


@pytest.fixture
def photos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """IN/a.png, IN/sub/b.jpg, IN/sub/deeper/c.png and a text file, with weights listed."""
    monkeypatch.setenv(MANIFEST_ENV, str(write_weights(tmp_path)))
    root = tmp_path / "in"
    write_picture(root / "a.png", 40, 50, seed=1)
    write_picture(root / "sub" / "b.jpg", 30, 20, seed=2)
    write_picture(root / "sub" / "deeper" / "c.png", 64, 64, channels=1, seed=3)
    (root / "notes.txt").write_text("not an image")
    return root


def batch(*args: str | Path) -> Result:
    return runner.invoke(app, ["batch", *map(str, args), "--threads", "1"])


def outputs(folder: Path) -> set[str]:
    """Relative paths of the images below a folder."""
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name != LOG_NAME
    }


def log_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_results_mirror_the_input_tree_and_are_logged(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = batch(photos, out)
    assert result.exit_code == 0, result.output
    assert outputs(out) == {"a.png", "sub/b.jpg", "sub/deeper/c.png"}
    assert read_image(out / "sub/deeper/c.png").is_gray
    assert (read_image(out / "a.png").height, read_image(out / "a.png").width) == (40, 50)
    records = log_records(out / LOG_NAME)
    assert [r["status"] for r in records] == ["done"] * 3
    assert {r["path"] for r in records} == {"a.png", "sub/b.jpg", "sub/deeper/c.png"}
    assert all(r["seconds"] > 0 and r["error"] is None for r in records)
    assert set(records[0]["routing"]["pixel_usage"]) == {"encoder1", "encoder2", "encoder3"}
    damage = records[0]["damage"]
    assert damage["found"] and sum(damage["probabilities"].values()) == pytest.approx(1, abs=1e-3)
    assert "done" in result.stdout and "skipped" in result.stdout  # the summary table


def test_include_exclude_suffix_and_ext(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert batch(photos, out, "--include", "*.png", "--exclude", "sub/deeper/*").exit_code == 0
    assert outputs(out) == {"a.png"}
    renamed = tmp_path / "renamed"
    assert batch(photos, renamed, "--suffix", "_r", "--ext", "png").exit_code == 0
    assert outputs(renamed) == {"a_r.png", "sub/b_r.png", "sub/deeper/c_r.png"}


def test_existing_outputs_are_skipped_unless_overwrite(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    batch(photos, out)
    before = {p: (out / p).stat().st_mtime_ns for p in outputs(out)}
    again = batch(photos, out)
    assert again.exit_code == 0
    assert {p: (out / p).stat().st_mtime_ns for p in outputs(out)} == before
    assert [r["status"] for r in log_records(out / LOG_NAME)[3:]] == ["skipped"] * 3
    batch(photos, out, "--overwrite", "--include", "a.png")
    assert (out / "a.png").stat().st_mtime_ns != before["a.png"]


def test_a_bad_file_is_reported_and_the_others_are_written(photos: Path, tmp_path: Path) -> None:
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    result = batch(photos, out)
    assert result.exit_code == 1
    assert "broken.png" in result.stderr and "Traceback" not in result.output
    assert outputs(out) == {"a.png", "sub/b.jpg", "sub/deeper/c.png"}
    failed = [r for r in log_records(out / LOG_NAME) if r["status"] == "failed"]
    assert [r["path"] for r in failed] == ["broken.png"] and failed[0]["error"]


def test_shards_split_the_sorted_files(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert batch(photos, out, "--shard", "0/2").exit_code == 0
    first = outputs(out)
    assert batch(photos, out, "--shard", "1/2").exit_code == 0
    assert first == {"a.png", "sub/deeper/c.png"}  # indices 0 and 2 of the sorted list
    assert outputs(out) == {"a.png", "sub/b.jpg", "sub/deeper/c.png"}
    assert batch(photos, out, "--shard", "2/2").exit_code == 2


def test_an_output_claimed_by_a_live_run_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "x.png"
    held = claim(target)
    assert held is not None
    assert claim(target) is None  # held: another run must leave this output alone
    release(target, held)
    assert not lock_path(target).exists()
    again = claim(target)
    assert again is not None
    release(target, again)


def test_a_lock_file_left_by_a_killed_run_is_taken_over(tmp_path: Path) -> None:
    target = tmp_path / "x.png"
    lock_path(target).write_text("")  # what SIGKILL leaves: the file, without its flock
    held = claim(target)
    assert held is not None
    release(target, held)
    assert not lock_path(target).exists()


def test_temporary_files_left_by_a_killed_run_are_removed(photos: Path, tmp_path: Path) -> None:
    """What SIGKILL or a power cut during a write leaves (a hidden half-written temporary file,
    a lock without its flock) is cleared by the next run, for new and finished outputs alike."""
    out = tmp_path / "out"
    half_written = out / ".a.png.0123456789ab.tmp"
    half_written.parent.mkdir(parents=True)
    half_written.write_bytes(b"\x89PNG\r\n\x1a\n half")
    assert batch(photos, out, "--exclude", "sub/*").exit_code == 0
    assert not half_written.exists()
    beside_finished = out / ".a.png.fedcba987654.tmp"  # a killed --overwrite of a.png
    beside_finished.write_bytes(b"half")
    lock_path(out / "a.png").write_text("")
    assert batch(photos, out).exit_code == 0
    assert [p.name for p in out.rglob(".*")] == []


def test_two_runs_into_one_folder_share_the_work(tmp_path: Path) -> None:
    """Each output is made by exactly one run; the other skips it; nothing is left behind."""
    source, out = tmp_path / "in", tmp_path / "out"
    for i in range(6):
        write_picture(source / f"img{i}.png", 40, 40, seed=i)
    torch.manual_seed(0)
    restorer = Restorer(build_model("tiny"), device="cpu", threads=1)
    jobs = plan_jobs(source, out)
    reports: list[BatchReport] = []
    runs = [
        threading.Thread(target=lambda: reports.append(run_batch(restorer, jobs))) for _ in range(2)
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    done = [r.job.relative for report in reports for r in report.results if r.status == "done"]
    assert sorted(done) == sorted(job.relative for job in jobs)  # each file once
    assert sum(report.count("failed") for report in reports) == 0
    assert all(read_image(job.target).width == 40 for job in jobs)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def default_sigint() -> None:
    """In the child: a runner that started the tests in the background may have set SIGINT to
    'ignore', which the child would inherit, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# How long a test waits for something a `measr` process does (start-up, one image, stopping)
# before it gives up: minutes, as a loaded machine takes that long where a quiet one takes
# seconds. The tests wait for the event itself, so a quiet machine does not wait longer.
PROCESS_DEADLINE_S = 600


def run_batch_process(source: Path, out: Path, env: dict[str, str]) -> subprocess.Popen:
    """`measr batch` in a process of its own, started as the console script starts it."""
    command = [sys.executable, "-m", "measr.cli", "batch", str(source), str(out)]
    return subprocess.Popen(
        [*command, "--threads", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=default_sigint,
    )


def wait_for_first_output(out: Path, process: subprocess.Popen) -> None:
    """Until the process has written its first output (fails if it ends first, or if the
    deadline passes)."""
    deadline = time.monotonic() + PROCESS_DEADLINE_S
    while not outputs(out):
        if process.poll() is not None:
            pytest.fail(f"measr batch ended before its first output: {process.stderr.read()!r}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no output from measr batch within {PROCESS_DEADLINE_S} s")
        time.sleep(0.02)


def write_twelve_pictures(source: Path) -> set[str]:
    """IN/img00.png ... IN/img11.png, 160 x 160: enough work to stop a run half-way."""
    names = {f"img{i:02d}.png" for i in range(12)}
    for i, name in enumerate(sorted(names)):
        write_picture(source / name, 160, 160, seed=i)
    return names


def assert_finished_outputs_are_complete(out: Path, names: set[str]) -> set[str]:
    """The outputs of a stopped run: some but not all, each complete; returns them."""
    finished = outputs(out)
    assert 0 < len(finished) < len(names), "the run was not interrupted mid-way"
    for name in finished:
        assert read_image(out / name).width == 160  # complete, decodable
    return finished


def assert_a_rerun_finishes_the_rest(
    source: Path, out: Path, manifest: Path, names: set[str], finished: set[str]
) -> None:
    """Running the same command again makes the missing outputs and leaves the others alone."""
    mtimes = {n: (out / n).stat().st_mtime_ns for n in finished}
    rerun = runner.invoke(
        app, ["batch", str(source), str(out), "--threads", "1"], env={MANIFEST_ENV: str(manifest)}
    )
    assert rerun.exit_code == 0, rerun.output
    assert outputs(out) == names
    assert {n: (out / n).stat().st_mtime_ns for n in finished} == mtimes  # not redone
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # stale locks cleared
    statuses = [r["status"] for r in log_records(out / LOG_NAME)]
    assert statuses.count("skipped") == len(finished)


@pytest.mark.slow  # a second Python process with PyTorch (the SIGINT case runs by default)
def test_a_killed_batch_leaves_nothing_partial_and_a_rerun_resumes(tmp_path: Path) -> None:
    manifest = write_weights(tmp_path)
    source, out = tmp_path / "in", tmp_path / "out"
    names = write_twelve_pictures(source)
    env = {**os.environ, MANIFEST_ENV: str(manifest)}
    process = run_batch_process(source, out, env)
    wait_for_first_output(out, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = assert_finished_outputs_are_complete(out, names)
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert all(n.endswith(".measr-lock") for n in leftovers), leftovers  # no temporary images
    assert_a_rerun_finishes_the_rest(source, out, manifest, names, finished)


@pytest.mark.parametrize(
    "signum",
    [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)],
    ids=["SIGINT", "SIGTERM"],
)
def test_an_interrupted_batch_stops_cleanly_with_exit_code_130_and_resumes(
    tmp_path: Path, signum: int
) -> None:
    """Ctrl-C (SIGINT) and SIGTERM: finished files complete and logged, no temporary file or
    lock left, exit code 130; the same command again does the rest."""
    manifest = write_weights(tmp_path)
    source, out = tmp_path / "in", tmp_path / "out"
    names = write_twelve_pictures(source)
    process = run_batch_process(source, out, {**os.environ, MANIFEST_ENV: str(manifest)})
    wait_for_first_output(out, process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=PROCESS_DEADLINE_S)
    assert process.returncode == 130, stderr
    assert b"interrupted" in stderr and b"Traceback" not in stderr
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files, locks
    finished = assert_finished_outputs_are_complete(out, names)
    records = log_records(out / LOG_NAME)
    assert {r["path"] for r in records} == finished
    assert all(record["status"] == "done" for record in records)
    assert_a_rerun_finishes_the_rest(source, out, manifest, names, finished)


@pytest.mark.slow  # a second Python process with torch: ~5-10 s on the shared test machine
def test_two_batch_processes_into_one_folder_make_each_output_once(tmp_path: Path) -> None:
    """A `measr batch` process and a second one (this test's) on the same folders at once:
    every output is made by one of them (the other skips it), every output is whole, nothing
    temporary is left. (test_two_runs_into_one_folder_share_the_work checks the same with
    two threads in the default run.)"""
    manifest = write_weights(tmp_path)
    source, out = tmp_path / "in", tmp_path / "out"
    names = {f"img{i:02d}.png" for i in range(24)}
    for i, name in enumerate(sorted(names)):
        write_picture(source / name, 72, 64, seed=i)
    process = run_batch_process(source, out, {**os.environ, MANIFEST_ENV: str(manifest)})
    wait_for_first_output(out, process)  # the other process is working: start this one
    here = runner.invoke(
        app, ["batch", str(source), str(out), "--threads", "1"], env={MANIFEST_ENV: str(manifest)}
    )
    _, stderr = process.communicate(timeout=PROCESS_DEADLINE_S)
    assert process.returncode == 0 and here.exit_code == 0, (stderr, here.output)
    records = log_records(out / LOG_NAME)  # both runs append to the same log
    assert sorted(r["path"] for r in records if r["status"] == "done") == sorted(names)
    assert sorted(r["path"] for r in records if r["status"] == "skipped") == sorted(names)
    for name in names:
        assert read_image(out / name).width == 64
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_the_tiles_of_each_photo_are_reported_as_they_are_restored(tmp_path: Path) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    write_picture(source / "big.png", 200, 140, seed=1)
    write_picture(source / "small.png", 40, 40, seed=2)
    torch.manual_seed(0)
    restorer = Restorer(build_model("tiny"), device="cpu", threads=1)
    heard: list[tuple[str, float, int]] = []
    report = run_batch(
        restorer,
        plan_jobs(source, out),
        options=RestoreOptions(tile=128),
        on_tiles=lambda job, done, total: heard.append((job.relative, done, total)),
    )
    assert report.count("done") == 2
    big = [(done, total) for name, done, total in heard if name == "big.png"]
    assert big[0][0] == 0 and big[-1][0] == big[-1][1] > 1
    assert [done for done, _ in big] == sorted(done for done, _ in big)
    small = [(d, t) for name, d, t in heard if name == "small.png"]
    assert small[0] == (0, 1) and small[-1] == (1, 1)  # and fractions of it between


def test_max_memory_caps_the_plan_of_every_photo(photos: Path, tmp_path: Path) -> None:
    assert batch(photos, tmp_path / "out", "--max-memory", "64M").exit_code == 0
    refused = batch(photos, tmp_path / "other", "--max-memory", "lots")
    assert refused.exit_code == 2 and "size such as 4G" in refused.stderr
    assert not (tmp_path / "other").exists()


def test_piped_batch_prints_the_restore_sentence_of_each_photo(
    photos: Path, tmp_path: Path
) -> None:
    """Piped (as CliRunner's output is), a line per photo as it finishes, the same sentence as
    `measr restore` with the paths as given, and the reason for each skipped one; no bar."""
    out = tmp_path / "out"
    result = batch(photos, out, "--strength", "0.5")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("Restored ")]
    assert len(lines) == 3
    assert f"Restored {photos / 'sub' / 'b.jpg'} to {out / 'sub' / 'b.jpg'}: 20x30 in " in (
        result.stdout
    )
    assert all("; blended with the input at --strength 0.5." in line for line in lines)
    assert "eta" not in result.output and not result.stderr.startswith("\n")
    again = batch(photos, out)
    assert again.stdout.count("Skipped ") == 3 and "output exists" in again.stdout
