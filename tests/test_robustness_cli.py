"""The hostile-input corpus through the CLI (`measr batch` and `measr restore`), and outputs that
cannot be written: read-only folders, a full disk, a log that fails. Every failure is one line
naming the file and the cause, the batch goes on, nothing partial is left (docs/robustness.md)."""

from __future__ import annotations

import builtins
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile_inputs import (
    BAD_FILES,
    Corpus,
    build_corpus,
    folder_chain,
    permissions_enforced,
    remove_folder_chain,
    rgb_samples,
)
from tiny_weights import write_picture, write_weights
from typer.testing import CliRunner, Result

import measr.io.read as read_module
from measr import Restorer, build_model
from measr.cli.app import app
from measr.engine.restorer import MAX_THREADS
from measr.errors import MeasrError
from measr.io import image_from_array, read_image, write_image
from measr.jobs.batch import LOG_NAME
from measr.manifest import MANIFEST_ENV

runner = CliRunner()
UNREADABLE = "bad/unreadable.png"
# The links and the pipe are made by build_corpus itself, beside the files of BAD_FILES.
BAD_RELATIVES = [*BAD_FILES, "links/broken.png", "links/loop.png", "bad/pipe.png"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """The corpus, built once for the module (nothing in it is written to)."""
    return build_corpus(tmp_path_factory.mktemp("corpus") / "in")


@pytest.fixture(autouse=True)
def tiny_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny checkpoint listed as the default weights."""
    monkeypatch.setenv(MANIFEST_ENV, str(write_weights(tmp_path)))


def measr(*args: str | Path) -> Result:
    """The CLI in-process, on one thread (the machine's cores are shared)."""
    return runner.invoke(app, [*map(str, args), "--threads", "1"])


def deny_reading(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Opening `path` fails as a chmod-000 file does for a normal user, and os.access (which
    command-line parsers ask) says so too. Root (as in CI) reads such files anyway, so the
    refusal is injected there instead."""
    if permissions_enforced(path.parent.parent):
        return

    def guarded_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if os.fspath(file) == os.fspath(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(file))
        return builtins.open(file, *args, **kwargs)

    real_access = os.access

    def guarded_access(file: Any, mode: int, *args: Any, **kwargs: Any) -> bool:
        if os.fspath(file) == os.fspath(path) and mode & (os.R_OK | os.W_OK | os.X_OK):
            return False
        return real_access(file, mode, *args, **kwargs)

    monkeypatch.setattr(read_module, "open", guarded_open, raising=False)
    monkeypatch.setattr(os, "access", guarded_access)


def deny_creating_in(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """`folder` is read-only: chmod 555 where permissions are enforced, else creating a file in
    it (a lock, a temporary image, the log) fails with EACCES, as it would."""
    folder.mkdir(parents=True, exist_ok=True)
    if permissions_enforced(folder):
        folder.chmod(0o555)
        return
    real_open = os.open

    def guarded_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT and Path(os.fspath(path)).parent == folder:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)


def error_lines(result: Result) -> list[str]:
    """stderr without the untrained-weights notice every run with test weights prints."""
    lines = result.stderr.splitlines()
    return [line for line in lines if line.strip() and "UNTRAINED" not in line]


def log_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def hidden_files(folder: Path) -> list[str]:
    """Temporary images and lock files anywhere below `folder`."""
    return [p.name for p in folder.rglob(".*")]


def assert_one_line_per_failure(result: Result, failures: dict[str, str]) -> None:
    """stderr is exactly one 'failed: PATH: ...CAUSE...' line per failed file, no traceback."""
    assert "Traceback" not in result.output
    lines = error_lines(result)
    assert len(lines) == len(failures), "\n".join(lines)
    for relative, cause in failures.items():
        mine = [line for line in lines if line.startswith(f"failed: {relative}: ")]
        assert len(mine) == 1, (relative, lines)
        assert cause in mine[0], mine[0]


# --- the corpus -------------------------------------------------------------------------------


def test_batch_over_the_corpus_reports_each_bad_file_and_restores_the_rest(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deny_reading(monkeypatch, corpus.path(UNREADABLE))
    out = tmp_path / "out"
    result = measr("batch", corpus.root, out)
    assert result.exit_code == 1, result.output
    assert_one_line_per_failure(result, {bad.relative: bad.cause for bad in corpus.bad})
    assert sorted(bad.relative for bad in corpus.bad) == sorted(BAD_RELATIVES)
    for odd in corpus.odd:
        source, restored = read_image(corpus.path(odd.relative)), read_image(out / odd.relative)
        assert (restored.height, restored.width) == odd.size, odd.relative
        assert restored.bit_depth == source.bit_depth, odd.relative
        assert restored.is_gray == source.is_gray, odd.relative
        assert (restored.alpha is None) == (source.alpha is None), odd.relative
    for bad in corpus.bad:
        assert not os.path.lexists(out / bad.relative), bad.relative
    assert hidden_files(out) == []
    records = log_records(out / LOG_NAME)
    assert sorted(r["path"] for r in records if r["status"] == "failed") == sorted(BAD_RELATIVES)
    assert sorted(r["path"] for r in records if r["status"] == "done") == sorted(
        odd.relative for odd in corpus.odd
    )


@pytest.mark.parametrize("relative", BAD_RELATIVES)
def test_restore_of_each_bad_file_is_exit_code_4_on_one_line(
    corpus: Corpus, relative: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    deny_reading(monkeypatch, corpus.path(UNREADABLE))
    before = sorted(corpus.root.rglob("*"))
    result = measr("restore", corpus.path(relative))
    assert result.exit_code == 4, result.output
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    cause = next(bad.cause for bad in corpus.bad if bad.relative == relative)
    assert Path(relative).stem in lines[0] and cause in lines[0], lines[0]  # file or output
    assert "Traceback" not in result.output
    assert sorted(corpus.root.rglob("*")) == before  # nothing written beside it


def test_a_gif_is_restored_when_an_output_format_is_chosen(tmp_path: Path) -> None:
    source = tmp_path / "in"
    write_picture(source / "web.png", 12, 16)
    shutil.move(source / "web.png", source / "web.gif")  # a PNG named .gif reads by content
    result = measr("batch", source, tmp_path / "out", "--ext", "png")
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "out" / "web.png").width == 16


# --- outputs that cannot be written ------------------------------------------------------------


@pytest.fixture
def four_photos(tmp_path: Path) -> Path:
    """IN/a.png, IN/locked/b.png, IN/locked/c.png, IN/z.png."""
    source = tmp_path / "in"
    for i, relative in enumerate(["a.png", "locked/b.png", "locked/c.png", "z.png"]):
        write_picture(source / relative, 24, 20, seed=i)
    return source


def test_a_read_only_output_folder_fails_its_files_and_the_others_go_on(
    four_photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    deny_creating_in(monkeypatch, out / "locked")
    try:
        result = measr("batch", four_photos, out)
        locked = sorted(os.listdir(out / "locked"))
    finally:
        (out / "locked").chmod(0o755)
    assert result.exit_code == 1, result.output
    cause = "permission denied"
    failures = {"locked/b.png": cause, "locked/c.png": cause}
    assert_one_line_per_failure(result, failures)
    assert f"{out / 'locked' / 'b.png'}" in result.stderr  # names the output, not the input
    assert locked == []
    assert read_image(out / "a.png").width == 20 and read_image(out / "z.png").width == 20


def test_an_output_folder_that_is_a_file_fails_its_files(four_photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "locked").write_text("a file where the batch needs a folder")
    result = measr("batch", four_photos, out)
    assert result.exit_code == 1, result.output
    cause = "already exists"
    assert_one_line_per_failure(result, {"locked/b.png": cause, "locked/c.png": cause})
    assert read_image(out / "z.png").height == 24


def test_an_unwritable_log_stops_the_batch_before_it_starts(
    four_photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    deny_creating_in(monkeypatch, out)
    try:
        result = measr("batch", four_photos, out)
    finally:
        out.chmod(0o755)
    assert result.exit_code == 4, result.output
    lines = error_lines(result)
    assert len(lines) == 1 and "cannot write the batch log" in lines[0], lines
    assert LOG_NAME in lines[0] and "permission denied" in lines[0]
    assert list(out.iterdir()) == []


def test_a_log_that_fails_mid_run_is_reported_and_the_outputs_are_written(
    four_photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(descriptor: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full_disk)  # only the log uses os.write
    out = tmp_path / "out"
    result = measr("batch", four_photos, out)
    assert result.exit_code == 1, result.output
    lines = error_lines(result)
    assert len(lines) == 1 and "batch log" in lines[0] and "no space left" in lines[0], lines
    assert len(list(out.rglob("*.png"))) == 4


class HalfWrittenThenFull:
    """A file object that writes half of what it is given, then fails as a full disk does."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def __enter__(self) -> HalfWrittenThenFull:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.close()

    def write(self, data: bytes) -> int:
        self.stream.write(data[: len(data) // 2])
        self.stream.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self) -> None:
        self.stream.flush()

    def fileno(self) -> int:
        return int(self.stream.fileno())


def fill_disk_while_writing(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The disk fills up half-way through writing the temporary file of output `name`."""
    real_open, real_fdopen = os.open, os.fdopen
    victims: set[int] = set()

    def tracking_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        descriptor = real_open(path, flags, *args, **kwargs)
        file_name = Path(os.fspath(path)).name
        if file_name.startswith(f".{name}.") and file_name.endswith(".tmp"):
            victims.add(descriptor)
        return descriptor

    def failing_fdopen(descriptor: int, *args: Any, **kwargs: Any) -> Any:
        stream = real_fdopen(descriptor, *args, **kwargs)
        if descriptor in victims:
            victims.discard(descriptor)
            return HalfWrittenThenFull(stream)
        return stream

    monkeypatch.setattr(os, "open", tracking_open)
    monkeypatch.setattr(os, "fdopen", failing_fdopen)


def test_a_full_disk_fails_the_file_being_written_and_leaves_nothing_partial(
    four_photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_disk_while_writing(monkeypatch, "b.png")
    out = tmp_path / "out"
    result = measr("batch", four_photos, out)
    assert result.exit_code == 1, result.output
    assert_one_line_per_failure(result, {"locked/b.png": "no space left on the disk"})
    assert f"{out / 'locked' / 'b.png'}" in result.stderr
    assert not (out / "locked" / "b.png").exists()
    assert hidden_files(out) == []
    assert len(list(out.rglob("*.png"))) == 3


def test_a_folder_that_cannot_be_listed_stops_the_plan_on_one_line(
    four_photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = four_photos / "locked"
    real_scandir: Callable[..., Any] = os.scandir

    def guarded_scandir(path: Any = ".") -> Any:
        if Path(os.fspath(path)) == private:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", guarded_scandir)  # os.walk lists folders with it
    result = measr("batch", four_photos, tmp_path / "out")
    assert result.exit_code == 4, result.output
    lines = error_lines(result)
    assert len(lines) == 1 and "cannot list the folder" in lines[0], lines
    assert "locked" in lines[0] and "permission denied" in lines[0]
    assert not (tmp_path / "out").exists()


# --- a real small file system ----------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (root with mount rights only, as on the CI machines; skipped elsewhere)."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small file system needs root")
    command = ["mount", "-t", "tmpfs", "-o", "size=64k", "measr-test", str(mount_point)]
    if subprocess.run(command, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], capture_output=True)


def test_a_really_full_disk_fails_the_large_output_and_keeps_the_small_ones(
    small_disk: Path, tmp_path: Path
) -> None:
    source = tmp_path / "in"
    write_picture(source / "a.png", 16, 16, seed=1)
    noise = source / "b_large.png"
    write_image(noise, image_from_array(rgb_samples(200, 200)))
    write_picture(source / "c.png", 16, 16, seed=3)
    assert noise.stat().st_size > 64 * 1024  # cannot fit: the noise survives restoration
    result = measr("batch", source, small_disk)
    assert result.exit_code == 1, result.output
    assert_one_line_per_failure(result, {"b_large.png": "no space left on the disk"})
    assert sorted(p.name for p in small_disk.iterdir()) == ["a.png", "c.png", LOG_NAME]
    assert read_image(small_disk / "c.png").width == 16


# --- names, logs, options and signals (issue 21) ---------------------------------------------


def test_a_line_break_in_a_file_name_cannot_split_or_forge_error_lines(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "notes\nfailed: forged.png").write_text("not an image")
    result = measr("batch", source, tmp_path / "out")
    assert result.exit_code == 1, result.output
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("failed: 'notes\\nfailed: forged.png': "), lines
    assert "text file" in lines[0]
    single = measr("restore", source / "notes\nfailed: forged.png")
    assert single.exit_code == 4, single.output
    assert len(error_lines(single)) == 1 and "notes\\nfailed: forged.png" in single.stderr


def test_escape_codes_in_a_file_name_stay_escaped_in_the_success_line(tmp_path: Path) -> None:
    """Issue 36, case 37: a name holding terminal escape sequences (retitle the window, clear
    the screen, turn red) and a line break reached stdout raw in the "Restored ..." line."""
    name = "a\x1b]0;PWNED\x07\x1b[2J\x1b[31mred\nline.png"
    source = tmp_path / name
    write_picture(source, 8, 8)
    result = measr("restore", source, "-o", tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert result.stdout.count("\n") == 1 and result.stdout.startswith("Restored ")
    assert repr(str(source)) in result.stdout


def unblock_later(fifo: Path, seconds: float) -> threading.Timer:
    """Open the pipe for reading after a while: a writer waiting for a reader (the bug) then
    goes on, so that a regression fails the test instead of hanging it."""
    readers: list[int] = []
    timer = threading.Timer(
        seconds, lambda: readers.append(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
    )
    timer.start()
    return timer


@pytest.mark.parametrize("where", ["--log", "OUT"])
def test_a_named_pipe_as_the_batch_log_is_refused_without_blocking(
    four_photos: Path, tmp_path: Path, where: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    fifo = tmp_path / "log.fifo" if where == "--log" else out / LOG_NAME
    os.mkfifo(fifo)
    options = ["--log", str(fifo)] if where == "--log" else []
    timer = unblock_later(fifo, seconds=30)
    try:
        result = measr("batch", four_photos, out, *options)
    finally:
        timer.cancel()
    assert result.exit_code == 4, result.output
    lines = error_lines(result)
    assert len(lines) == 1 and "cannot write the batch log" in lines[0], lines
    assert "not a regular file" in lines[0]
    assert list(out.rglob("*.png")) == []


def test_batch_into_its_own_folder_never_replaces_the_originals_unless_asked(
    four_photos: Path,
) -> None:
    originals = {p: p.read_bytes() for p in four_photos.rglob("*.png")}
    result = measr("batch", four_photos, four_photos, "--overwrite")
    assert result.exit_code == 2, result.output
    lines = error_lines(result)
    assert len(lines) == 1 and "would be written over itself" in lines[0], lines
    assert "--replace-originals" in lines[0]
    assert {p: p.read_bytes() for p in four_photos.rglob("*.png")} == originals
    assert not (four_photos / LOG_NAME).exists()
    asked = measr("batch", four_photos, four_photos, "--overwrite", "--replace-originals")
    assert asked.exit_code == 0, asked.output
    done = [r for r in log_records(four_photos / LOG_NAME) if r["status"] == "done"]
    assert len(done) == len(originals)


# --- outputs that would land on inputs (issue 36) -----------------------------------------------


def files_below(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def assert_refused(result: Result, exit_code: int, words: str) -> None:
    """One error line saying `words`, with the exit code, and no traceback."""
    assert result.exit_code == exit_code, result.output
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["-o", "out.png", "--routing-map", "photo.png"], "the routing map"),  # case 8
        (["-o", "out.png", "--routing-map", "link.png"], "the same file as"),
        (["-o", "out.png", "--routing-map", "out.png"], "would both be written"),  # case 23
        (["-o", "photo.png"], "would be written over itself"),  # case 24
    ],
)
def test_restore_never_writes_over_its_input_or_its_own_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: list[str], words: str
) -> None:
    monkeypatch.chdir(tmp_path)
    photo = write_picture(tmp_path / "photo.png", 16, 16)
    (tmp_path / "link.png").symlink_to(photo)
    before = files_below(tmp_path)
    assert_refused(measr("restore", photo.name, *options, "--overwrite"), 2, words)
    assert files_below(tmp_path) == before


def test_restore_replaces_the_original_only_when_asked(tmp_path: Path) -> None:
    photo = write_picture(tmp_path / "photo.png", 16, 16)
    original = photo.read_bytes()
    refused = measr("restore", photo, "-o", photo, "--overwrite")
    assert_refused(refused, 2, "--replace-originals")
    assert photo.read_bytes() == original
    asked = measr("restore", photo, "-o", photo, "--overwrite", "--replace-originals")
    assert asked.exit_code == 0, asked.output
    assert photo.read_bytes() != original


@pytest.mark.parametrize(
    ("log", "words"),
    [("in/z.png", "the batch log 'in/z.png' is an input photo"), ("out/a.png", "would both be")],
)
def test_the_batch_log_never_lands_on_a_photo(
    four_photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log: str, words: str
) -> None:  # case 10
    monkeypatch.chdir(tmp_path)
    originals = files_below(four_photos)
    assert_refused(measr("batch", "in", "out", "--log", log), 2, words)
    assert files_below(four_photos) == originals
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("option", "value"), [("--suffix", "/../../escaped"), ("--ext", "png/../../escaped.png")]
)
def test_batch_outputs_never_leave_the_output_folder(
    four_photos: Path, tmp_path: Path, option: str, value: str
) -> None:  # case 42
    before = files_below(tmp_path)
    result = measr("batch", four_photos, tmp_path / "out", option, value)
    assert_refused(result, 2, "the outputs would leave the output folder")
    assert option in error_lines(result)[0]
    assert files_below(tmp_path) == before


def test_batch_walks_a_folder_tree_a_thousand_levels_deep(tmp_path: Path) -> None:  # case 27
    source, out = tmp_path / "in", tmp_path / "out"
    write_picture(folder_chain(source, 1000) / "deep.png", 16, 16)
    write_picture(source / "top.png", 16, 16)
    try:
        result = measr("batch", source, out)
        assert result.exit_code == 0, result.output[-2000:]
        assert out.joinpath(*["d"] * 1000, "deep.png").is_file()
        assert (out / "top.png").is_file()
    finally:  # pytest's own clean-up recurses once a level
        remove_folder_chain(source)
        remove_folder_chain(out)


def test_threads_have_an_upper_bound(tmp_path: Path) -> None:
    source = write_picture(tmp_path / "a.png", 16, 16)
    result = runner.invoke(app, ["restore", str(source), "--threads", "100000"])
    assert result.exit_code == 2, result.output
    assert "--threads" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "a_restored.png").exists()
    with pytest.raises(MeasrError, match="threads must be between 1 and"):
        Restorer(build_model("tiny"), device="cpu", threads=MAX_THREADS + 1)


def test_train_with_zero_steps_is_one_error_line_and_leaves_no_run_folder(tmp_path: Path) -> None:
    write_picture(tmp_path / "photos" / "a.png", 64, 64)
    run = tmp_path / "run"
    options = ["--data", tmp_path / "photos", "--config", "tiny", "--device", "cpu"]
    result = runner.invoke(app, list(map(str, ["train", "--out", run, "--steps", "0", *options])))
    assert result.exit_code == 2, result.output
    lines = error_lines(result)
    assert len(lines) == 1 and "--steps must be at least 1, not 0" in lines[0], lines
    assert "Traceback" not in result.output
    assert not run.exists()


def handles_signal(pid: int, signum: int) -> bool:
    """Whether the process has a handler for `signum` (its bit in /proc/PID/status SigCgt)."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) >> (signum - 1) & 1)


def test_sigterm_while_measr_starts_up_is_a_clean_interruption(tmp_path: Path) -> None:
    """The command spends seconds importing PyTorch; SIGTERM then must not kill it silently
    (exit 143) but stop it as Ctrl-C does."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to see when the handler is in place")
    command = [sys.executable, "-m", "measr.cli", "models"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while process.poll() is None and not handles_signal(process.pid, signal.SIGTERM):
        assert time.monotonic() < deadline, "SIGTERM was never handled"
        time.sleep(0.002)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
