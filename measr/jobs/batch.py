"""Restoring a folder of images: which files, where their results go, and a pipeline in which
decoding the next file and encoding the previous one overlap with the network's work.

Safe to interrupt and to run twice at once: outputs are written atomically (measr.io), existing
outputs are skipped (a rerun resumes), and each output being made is claimed with an exclusive
lock on a hidden lock file (filelock: flock on POSIX, msvcrt on Windows), so two runs never work
on the same file, and a killed run's claims vanish with it."""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import json
import os
import stat
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Literal, NoReturn

import numpy as np
from filelock import BaseFileLock, FileLock, Timeout

from measr.atomic import leftover_temporaries
from measr.engine.damage import DamageReading
from measr.engine.options import RestoreOptions
from measr.engine.restorer import Restoration, Restorer
from measr.engine.routing import RoutingSummary
from measr.errors import ExitCode, ImageWriteError, MeasrError, quoted
from measr.io import (
    Image,
    check_output,
    check_quality,
    is_input_path,
    is_supported_path,
    read_image,
    write_image,
)
from measr.io.oserrors import explain
from measr.jobs.writes import Write, check_writes, make_folders

LOG_NAME = "measr-batch.jsonl"
LOCK_SUFFIX = ".measr-lock"
# A lock is named by a hash of its output's name, so that it fits the file system's 255-byte
# limit whenever the output does; a short readable prefix says whose lock it is.
_LOCK_NAME_PREFIX_CHARS = 32
_LOCK_HASH_HEX_DIGITS = 16
# Files decoded ahead of the network and results waiting to be encoded: enough to hide the
# I/O behind the compute, few enough to bound the memory held by decoded images.
PIPELINE_DEPTH = 2
# What a suffix or an extension must not hold: it would make the output's name a path.
_NOT_IN_A_NAME = {"/", os.sep, os.altsep or "/", "\0"}
# Opening the log must not wait for a reader of a named pipe; Windows has neither.
_NO_WAIT = getattr(os, "O_NONBLOCK", 0)

Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class BatchJob:
    """One input file and the output it becomes."""

    source: Path
    target: Path
    relative: str  # the source's path below the input folder, as posix text


# Hears of the tiles of the file being restored: (job, tiles done, tiles in all).
TileProgress = Callable[[BatchJob, float, int], None]


@dataclass(frozen=True)
class FileResult:
    """What happened to one file."""

    job: BatchJob
    status: Status
    seconds: float = 0.0  # restoration time (decoding and encoding overlap with other files)
    error: str | None = None
    routing: RoutingSummary | None = None
    damage: DamageReading | None = None
    strength: float | None = None  # the blend with the input, for restored files
    # For restored files: how (tiles, backend, precision; its pixels dropped) and the size.
    restoration: Restoration | None = None
    size: tuple[int, int] | None = None  # (height, width)

    def to_log(self) -> dict[str, Any]:
        """One JSON-lines record."""
        return {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "path": self.job.relative,
            "output": str(self.job.target),
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "strength": self.strength,
            "error": self.error,
            "damage": self.damage.to_dict() if self.damage else None,
            "left_as_is": self.restoration.left_as_is if self.restoration else None,
            "passes": [p.to_dict() for p in self.restoration.passes] if self.restoration else [],
            "routing": self.routing.to_dict() if self.routing else None,
        }


@dataclass
class BatchReport:
    """Every file's result, and the run's wall time."""

    results: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0
    log_error: str | None = None  # why the log is incomplete, when it is

    def count(self, status: Status) -> int:
        """How many files ended with this status."""
        return sum(1 for r in self.results if r.status == status)

    @property
    def exit_code(self) -> ExitCode:
        """1 when any file failed (or the log could not be kept), else 0."""
        failed = self.count("failed") or self.log_error
        return ExitCode.SOME_FILES_FAILED if failed else ExitCode.OK


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a batch: nothing partial was left, the log is flushed; carries
    the report of what was finished."""

    def __init__(self, report: BatchReport) -> None:
        super().__init__()
        self.report = report


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' as (I, N): this run takes the files whose index in the sorted list is I mod N."""
    index, _, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise MeasrError(f"--shard must be I/N with 0 <= I < N, got '{text}'", "e.g. --shard 0/4")
    return i, n


def output_extension(ext: str | None, source: Path) -> str:
    """'.png' from 'png' or '.png'; the source's extension when None."""
    if ext is None:
        return source.suffix
    ext = ext if ext.startswith(".") else f".{ext}"
    if not is_supported_path(f"x{ext}"):
        raise MeasrError(f"cannot write '{ext}' files", "use --ext png, jpg, tif, webp or bmp")
    return ext


def matches(relative: str, patterns: Sequence[str]) -> bool:
    """Whether the relative path or the file name matches any glob."""
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(relative, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def refuse_unlistable(error: OSError) -> NoReturn:
    """A folder that cannot be listed stops the plan, since skipping it would silently leave
    its images out."""
    cause, hint = explain(error)
    raise MeasrError(
        f"cannot list the folder {quoted(error.filename)}: {cause}",
        f"{hint}, or move it out of the input folder",
        ExitCode.INPUT,
    )


def list_folder(folder: Path) -> list[os.DirEntry[str]]:
    """The entries of a folder; one that cannot be listed stops the plan."""
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError as error:
        refuse_unlistable(error)


def is_folder(entry: os.DirEntry[str]) -> bool:
    """Whether an entry is a folder, or a link to one (an entry that cannot be examined is
    taken as a file, whose reading then says what is wrong with it)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def folder_identity(path: Path | os.DirEntry[str]) -> tuple[int, int] | None:
    """(device, inode) of a folder, links not followed for an entry; None if it is missing."""
    try:
        status = path.stat(follow_symlinks=False) if isinstance(path, os.DirEntry) else path.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino


def is_skipped(entry: os.DirEntry[str], skipped: tuple[int, int] | None) -> bool:
    """Whether a folder is the one to leave out (a folder that cannot be examined is not: it is
    listed, and says what is wrong with it)."""
    return skipped is not None and folder_identity(entry) == skipped


def find_images(
    root: Path, include: Sequence[str] = (), exclude: Sequence[str] = (), skip: Path | None = None
) -> list[Path]:
    """Image files below `root` (recursive, sorted), filtered by globs; hidden files and
    folders (temporary files, locks) and anything below `skip` (the output folder) are left
    out. Links to folders are not followed (they can loop). The folders are walked from a list,
    not by recursion, so a tree thousands of levels deep is no different."""
    skipped = folder_identity(skip) if skip is not None else None
    found = []
    folders = [root]
    while folders:
        here = folders.pop()
        for entry in list_folder(here):
            if entry.name.startswith("."):
                continue
            if is_folder(entry):
                if not entry.is_symlink() and not is_skipped(entry, skipped):
                    folders.append(here / entry.name)
                continue
            relative = (here / entry.name).relative_to(root).as_posix()
            if not is_input_path(entry.name):
                continue
            if include and not matches(relative, include):
                continue
            if not matches(relative, exclude):
                found.append(here / entry.name)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def plan_jobs(
    in_dir: Path,
    out_dir: Path,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    suffix: str = "",
    ext: str | None = None,
    shard: tuple[int, int] = (0, 1),
) -> list[BatchJob]:
    """The files of this run (shard I of N) and their outputs: the same relative path below
    `out_dir`, the stem with `suffix`, the extension `ext` (default: the input's)."""
    if not in_dir.is_dir():
        raise MeasrError(
            f"input folder '{in_dir}' does not exist or is not a folder",
            "check the path",
            ExitCode.INPUT,
        )
    check_name_part(suffix, "suffix", "_restored")
    check_name_part(ext or "", "ext", "png")
    index, count = shard
    sources = find_images(in_dir, include, exclude, skip=out_dir)[index::count]
    jobs = []
    for source in sources:
        relative = source.relative_to(in_dir)
        name = f"{relative.stem}{suffix}{output_extension(ext, source)}"
        jobs.append(BatchJob(source, out_dir / relative.parent / name, relative.as_posix()))
    return jobs


def check_name_part(text: str, option: str, example: str) -> None:
    """A suffix or an extension is text added to a file name: a path separator in it would
    send the outputs out of the output folder."""
    if _NOT_IN_A_NAME & set(text):
        raise MeasrError(
            f"{quoted(text)} holds a character no file name can hold (a path separator or "
            "NUL): the outputs would leave the output folder",
            f"give only text to add to each file name, e.g. {example}",
            option=option,
        )


def check_paths(
    jobs: Sequence[BatchJob],
    log_path: Path | None,
    *,
    overwrite: bool,
    replace_originals: bool = False,
) -> None:
    """Before any work: no output and not the log lands on an input or on one another. An
    output lands on its own input (OUT_DIR is IN_DIR) only with `overwrite` and
    `replace_originals`; without `overwrite` existing outputs are skipped, never written."""
    writes = [
        Write(
            job.target,
            f"the output of {quoted(job.relative)}",
            "choose another OUT_DIR or add --suffix",
            job.source,
            replaces=overwrite,
            clash_hint="drop --ext, or exclude one of them",
        )
        for job in jobs
    ]
    if log_path is not None:
        writes.append(Write(log_path, "the batch log", "choose another --log"))
    check_writes([job.source for job in jobs], writes, replace_originals=replace_originals)


def unwritable_output(target: Path, error: OSError) -> ImageWriteError:
    """The per-file error for an output whose folder refuses the lock file (read-only, full,
    a file where a folder should be)."""
    cause, hint = explain(error)
    return ImageWriteError(f"cannot write {quoted(target)}: {cause}", hint)


def read_source(job: BatchJob) -> Image:
    """Decode the input, then make sure its output can be written before the network runs
    (GIFs are read but not written). Whether the output exists is the run's to decide (skip
    it, or redo it with overwrite)."""
    image = read_image(job.source)
    check_output(job.target, overwrite=True)
    return image


def lock_path(target: Path) -> Path:
    """The hidden lock file beside `target` that claims it while it is being made: the start
    of its name and a hash of the whole name, short whatever the output's name is."""
    digest = hashlib.sha256(os.fsencode(target.name)).hexdigest()[:_LOCK_HASH_HEX_DIGITS]
    return target.with_name(f".{target.name[:_LOCK_NAME_PREFIX_CHARS]}.{digest}{LOCK_SUFFIX}")


def claim(target: Path) -> BaseFileLock | None:
    """Claim `target` for this run: an exclusive lock on its lock file, without waiting. The
    system drops the lock when its process dies, so the lock file of a killed run is simply
    taken over. Returns the held lock, or None when another live run holds it."""
    make_folders(target.parent)
    # Not thread-local: a claim may be released by another thread than the one that took it.
    lock = FileLock(lock_path(target), thread_local=False)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        return None
    return lock


def release(target: Path, lock: BaseFileLock) -> None:
    """Remove the lock file, then drop the lock, so that no lock file outlives a run that ended
    (where a held file cannot be removed, on Windows, filelock removes it as it lets go)."""
    with contextlib.suppress(OSError):
        lock_path(target).unlink()
    lock.release()


def remove_leftovers(target: Path) -> None:
    """Delete the temporary files a killed run left for `target`. Call it holding the claim:
    then no live run is writing them."""
    for leftover in leftover_temporaries(target):
        with contextlib.suppress(OSError):
            leftover.unlink()


def remove_stale_lock(target: Path) -> None:
    """Delete a lock file (and temporary files) left by a killed run (nobody holds its lock)."""
    if lock_path(target).exists():
        lock = claim(target)
        if lock is not None:
            remove_leftovers(target)
            release(target, lock)


class BatchLog:
    """JSON lines appended with one write() each (O_APPEND), so that two runs logging to the
    same file never interleave within a line.

    A log that cannot be opened stops the batch before it starts; one that fails later (a full
    disk) stops being written, and the failure is kept in `error`: the outputs matter more than
    the log, so the batch goes on."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.descriptor: int | None = None
        self.error: str | None = None
        if path is not None:
            try:
                make_folders(path.parent)
                self.descriptor = open_log(path)
            except OSError as error:
                cause, hint = explain(error)
                raise log_error(path, cause, hint) from None

    def write(self, record: dict[str, Any]) -> None:
        """Append one record."""
        if self.descriptor is not None:
            try:
                os.write(self.descriptor, (json.dumps(record) + "\n").encode())
            except OSError as error:
                self.give_up(error)

    def close(self) -> None:
        """Flush to disk and close."""
        if self.descriptor is not None:
            try:
                os.fsync(self.descriptor)
            except OSError as error:
                self.give_up(error)
            else:
                os.close(self.descriptor)
                self.descriptor = None

    def give_up(self, error: OSError) -> None:
        """Stop logging after a failed write, keeping why."""
        cause, _ = explain(error)
        self.error = f"the batch log '{self.path}' is incomplete: {cause}"
        if self.descriptor is not None:
            os.close(self.descriptor)
            self.descriptor = None


def log_error(path: Path, cause: str, hint: str) -> MeasrError:
    """The error that stops a batch whose log cannot be kept."""
    return MeasrError(f"cannot write the batch log {quoted(path)}: {cause}", hint, ExitCode.INPUT)


def open_log(path: Path) -> int:
    """A descriptor appending to the log file at `path` (created if missing). Only a regular
    file will do: opening a named pipe for writing blocks until someone reads it, so the open
    does not wait (O_NONBLOCK, where there are named pipes), and what it opened is checked."""
    not_regular = log_error(
        path,
        "it is not a regular file (a pipe, device or socket)",
        "pass --log a regular file, or a path that does not exist yet",
    )
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | _NO_WAIT, 0o644)
    except OSError as error:
        if error.errno == errno.ENXIO:  # a pipe nobody reads, or a socket
            raise not_regular from None
        raise
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise not_regular
    if _NO_WAIT:
        os.set_blocking(descriptor, True)
    return descriptor


def describe_error(error: BaseException) -> str:
    """One line for a per-file failure."""
    if isinstance(error, MeasrError):
        return error.one_line()
    return f"{type(error).__name__}: {error}"


class BatchRun:
    """The state of one batch in flight: files decoded ahead, results waiting to be encoded,
    outputs claimed. Every result is recorded (log, callback) from the calling thread."""

    def __init__(
        self,
        restorer: Restorer,
        options: RestoreOptions,
        *,
        overwrite: bool,
        quality: int,
        log: BatchLog,
        on_result: Callable[[FileResult], None] | None,
        on_tiles: TileProgress | None = None,
    ) -> None:
        self.restorer, self.options = restorer, options
        self.overwrite, self.quality = overwrite, quality
        self.log, self.on_result, self.on_tiles = log, on_result, on_tiles
        self.report = BatchReport()
        self.reads: deque[tuple[BatchJob, Future[Image]]] = deque()
        self.writes: deque[tuple[BatchJob, Future[None], FileResult]] = deque()
        self.claimed: dict[Path, BaseFileLock] = {}  # target -> its held lock

    def record(self, result: FileResult) -> None:
        """Keep, log and announce one file's result."""
        self.report.results.append(result)
        self.log.write(result.to_log())
        if self.on_result is not None:
            self.on_result(result)

    def output_exists(self, job: BatchJob) -> bool:
        """Whether the output is there already and must be kept (no --overwrite)."""
        return not self.overwrite and os.path.lexists(job.target)

    def schedule(self, job: BatchJob, readers: ThreadPoolExecutor) -> None:
        """Skip the job if its output exists or another run holds it, else claim it and start
        decoding its input."""
        if self.output_exists(job):
            with contextlib.suppress(OSError):  # tidying only: the output is there
                remove_stale_lock(job.target)  # a run killed between its write and its release
            self.record(FileResult(job, "skipped", error="output exists"))
            return
        try:
            lock = claim(job.target)
        except OSError as error:
            failure = unwritable_output(job.target, error)
            self.record(FileResult(job, "failed", error=describe_error(failure)))
            return
        if lock is None:
            self.record(FileResult(job, "skipped", error="another run is writing this output"))
            return
        self.claimed[job.target] = lock
        remove_leftovers(job.target)
        if self.output_exists(job):  # another run finished it between the check and the claim
            self.finish(FileResult(job, "skipped", error="output exists"))
            return
        self.reads.append((job, readers.submit(read_source, job)))

    def restore_next(self, writer: ThreadPoolExecutor) -> None:
        """Restore the oldest decoded file and hand the result to the writer."""
        job, decoding = self.reads.popleft()
        try:
            image = decoding.result()
            progress = None if self.on_tiles is None else partial(self.on_tiles, job)
            restoration = self.restorer.restore(
                image.pixels,
                self.options,
                record_routing=self.restorer.records_routing,
                progress=progress,
            )
            restored = image.with_pixels(restoration.pixels)
        except Exception as error:  # one bad file must not stop the batch
            self.finish(FileResult(job, "failed", error=describe_error(error)))
            return
        writing = writer.submit(
            write_image, job.target, restored, quality=self.quality, overwrite=self.overwrite
        )
        done = FileResult(
            job,
            "done",
            restoration.seconds,
            routing=restoration.routing,
            damage=restoration.damage,
            strength=self.options.strength,
            restoration=replace(restoration, pixels=np.empty(0), expert_maps={}),
            size=(image.height, image.width),
        )
        self.writes.append((job, writing, done))

    def collect_writes(self, keep: int) -> None:
        """Record finished writes, waiting for the oldest while more than `keep` are pending."""
        while self.writes and (len(self.writes) > keep or self.writes[0][1].done()):
            job, writing, done = self.writes.popleft()
            try:
                writing.result()
            except Exception as error:
                self.finish(FileResult(job, "failed", done.seconds, describe_error(error)))
            else:
                self.finish(done)

    def finish(self, result: FileResult) -> None:
        """Release the output's claim and record the result."""
        release(result.job.target, self.claimed.pop(result.job.target))
        self.record(result)

    def abandon(self) -> None:
        """Stop after an interruption: drop files not yet restored, let results already handed
        to the writer land (each write is atomic), release every claim."""
        for _, decoding in self.reads:
            decoding.cancel()
        self.reads.clear()
        self.collect_writes(keep=0)
        for target, lock in self.claimed.items():
            release(target, lock)
        self.claimed.clear()


def run_batch(
    restorer: Restorer,
    jobs: Sequence[BatchJob],
    *,
    options: RestoreOptions | None = None,
    overwrite: bool = False,
    quality: int = 95,
    log_path: Path | None = None,
    on_result: Callable[[FileResult], None] | None = None,
    on_tiles: TileProgress | None = None,
) -> BatchReport:
    """Restore every job in order, decoding ahead and encoding behind in worker threads;
    `on_result` hears of every file, `on_tiles(job, done, total)` of the tiles of the one being
    restored.

    A file that fails is recorded and the batch goes on. On KeyboardInterrupt (Ctrl-C, or
    SIGTERM turned into one by the caller) it stops cleanly and raises BatchInterrupted."""
    check_quality(quality)
    started = time.perf_counter()
    log = BatchLog(log_path)
    run = BatchRun(
        restorer,
        options or RestoreOptions(),
        overwrite=overwrite,
        quality=quality,
        log=log,
        on_result=on_result,
        on_tiles=on_tiles,
    )
    waiting = deque(jobs)
    try:
        with (
            ThreadPoolExecutor(1, thread_name_prefix="measr-read") as readers,
            ThreadPoolExecutor(1, thread_name_prefix="measr-write") as writer,
        ):
            try:
                while waiting or run.reads:
                    while waiting and len(run.reads) < PIPELINE_DEPTH:
                        run.schedule(waiting.popleft(), readers)
                    if run.reads:
                        run.restore_next(writer)
                    run.collect_writes(keep=PIPELINE_DEPTH)
                run.collect_writes(keep=0)
            except KeyboardInterrupt:
                run.abandon()
                run.report.seconds = time.perf_counter() - started
                raise BatchInterrupted(run.report) from None
    finally:
        log.close()
        run.report.log_error = log.error
    run.report.seconds = time.perf_counter() - started
    return run.report
