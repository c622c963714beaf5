"""Files written whole or not at all: the new content goes to a temporary file beside the target,
is flushed to disk, then renamed over the target in one step. A reader sees the old file or the
new one, never half of one; a writer stopped at any moment leaves the old file (and at worst a
hidden temporary file, which `leftover_temporaries` finds). Each writer has its own temporary
name, so two writing the same file at once do not collide: the last rename wins, whole.

Every file measr writes goes through here: images, weights, checkpoints, reports, weights.txt.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

# A temporary name adds ~20 bytes to the target's; keep it under the usual 255-byte name limit.
_NAME_STEM_BYTES = 200
_TOKEN_BYTES = 6  # the random part of a temporary name, as hex


@contextlib.contextmanager
def replacing(target: str | os.PathLike[str]) -> Iterator[Path]:
    """A fresh temporary path beside `target` for the block to write; when the block ends
    normally the file is synced and renamed over `target`, otherwise deleted. OSErrors reach
    the caller, which knows what to tell the user."""
    target = Path(target)
    temporary = temporary_path(target)
    try:
        yield temporary
        _sync_file(temporary)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_folder(target.parent)


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """`data` as the whole content of `target`, atomically (see the module's docstring)."""
    with replacing(target) as temporary, create(temporary) as stream:
        stream.write(data)


def create(temporary: Path) -> BinaryIO:
    """The temporary file, opened for writing: a new file (never one that exists), with the
    permissions the umask gives, as `open` would."""
    return os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb")


def write_text(target: str | os.PathLike[str], text: str) -> None:
    """`text` as the whole content of `target` in UTF-8, line ends as given, atomically."""
    write_bytes(target, text.encode("utf-8"))


def temporary_path(target: Path) -> Path:
    """A hidden name beside the target (the same folder, so the rename is atomic), unique to
    this writer: `.<name>.<12 hex digits>.tmp`."""
    return target.with_name(f".{_name_stem(target)}.{secrets.token_hex(_TOKEN_BYTES)}.tmp")


def leftover_temporaries(target: str | os.PathLike[str]) -> list[Path]:
    """Temporary files of `target` that a killed writer left behind (SIGKILL, power cut): only
    safe to delete when no other process can be writing `target` at the moment."""
    target = Path(target)
    stem = glob.escape(_name_stem(target))
    return list(target.parent.glob(f".{stem}.{'?' * 2 * _TOKEN_BYTES}.tmp"))


def _name_stem(target: Path) -> str:
    """The start of the target's name that begins its temporary files' names: at most
    _NAME_STEM_BYTES bytes once encoded (a non-ASCII character takes up to 4), cut between
    characters."""
    stem = target.name[:_NAME_STEM_BYTES]
    while len(os.fsencode(stem)) > _NAME_STEM_BYTES:
        stem = stem[:-1]
    return stem


def _sync_file(path: Path) -> None:
    """Flush the written file to disk before the rename publishes it."""
    with open(path, "r+b") as stream:
        os.fsync(stream.fileno())


def _sync_folder(folder: Path) -> None:
    """Persist the rename itself; best effort, as some systems cannot fsync a folder."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
