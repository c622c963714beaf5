"""Files are written whole or not at all, also by two writers at once (measr.atomic)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from measr import atomic
from measr.manifest import WeightsEntry, read_manifest, upsert_entry

ROUNDS = 8


def at_once(*jobs: Callable[[], None]) -> None:
    """Run the jobs in threads started together; re-raise the first error any of them met."""
    start = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        start.wait()
        try:
            job()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def test_two_writers_at_once_leave_one_whole_file_and_readers_never_see_half(
    tmp_path: Path,
) -> None:
    target = tmp_path / "report.bin"
    old, first, second = (bytes([value]) * 2**20 for value in (0, 1, 2))
    atomic.write_bytes(target, old)
    seen: list[bytes] = []

    def write(data: bytes) -> Callable[[], None]:
        return lambda: [atomic.write_bytes(target, data) for _ in range(ROUNDS)]

    def read() -> None:
        seen.extend(target.read_bytes() for _ in range(ROUNDS * 4))

    at_once(write(first), write(second), read)
    assert target.read_bytes() in (first, second)
    assert all(content in (old, first, second) for content in seen)
    assert atomic.leftover_temporaries(target) == []


def test_two_exports_listing_weights_at_once_keep_every_entry(tmp_path: Path) -> None:
    """weights.txt updated by two `measr export` runs at the same moment, each adding entries
    of its own: both finish, and every entry of both is listed (they take turns with the
    manifest, so neither writes over a version without the other's latest entry)."""
    manifest = tmp_path / "weights.txt"
    (tmp_path / "w.safetensors").write_bytes(b"weights")

    def export(prefix: str) -> Callable[[], None]:
        entries = [
            WeightsEntry(f"{prefix}{i}", tmp_path / "w.safetensors", "0" * 64, {"config": "tiny"})
            for i in range(ROUNDS)
        ]
        return lambda: [upsert_entry(entry, manifest) for entry in entries]

    at_once(export("a"), export("b"))
    names = {entry.name for entry in read_manifest(manifest)}
    assert names == {f"{prefix}{i}" for prefix in "ab" for i in range(ROUNDS)}
    assert atomic.leftover_temporaries(manifest) == []


def test_a_writer_that_fails_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "last.pt"
    atomic.write_text(target, "old")
    with pytest.raises(RuntimeError), atomic.replacing(target) as temporary:
        temporary.write_text("half of the new")
        raise RuntimeError("stopped while writing")
    assert target.read_text() == "old"
    assert atomic.leftover_temporaries(target) == []


def test_a_temporary_name_fits_the_file_name_limit_however_long_the_target() -> None:
    target = Path("/photos") / ("é" * 127 + ".png")  # 254 bytes in UTF-8
    temporary = atomic.temporary_path(target)
    assert temporary.parent == target.parent
    assert len(temporary.name.encode()) <= 255
