"""The cache of converted networks (OpenVINO IR) in `$MEASR_CACHE`, else `~/.cache/measr`.

An entry is a folder named by a hash of the weights it was converted from (and of what else
shapes the graph), holding the converted files and `sha256.txt`, their checksums as written.
What is loaded is checked against them, byte for byte as it is loaded: a damaged or altered
entry is removed and converted again, never run. The folders are kept where only the user can
write (0700, owned by the user), so that no one else can swap a file and its checksum together;
a folder others could write is made private and emptied first.

An entry is written whole in a temporary folder, `NAME.<pid>@<host>.partial`, then renamed: a
conversion that is killed leaves its temporary folder, which the next conversion removes once
the process that wrote it is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import stat
from collections.abc import Callable
from pathlib import Path

from measr.errors import MeasrError, quoted
from measr.io.oserrors import explain

CACHE_ENV = "MEASR_CACHE"
CHECKSUMS = "sha256.txt"
_PARTIAL = ".partial"


def cache_folder(kind: str) -> Path:
    """`$MEASR_CACHE/KIND` (else `~/.cache/measr/KIND`), created private if missing. A folder
    others could write is made private and emptied (its entries cannot be trusted); one that
    cannot be a folder of this user's is one MeasrError."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "measr")
    folder = root / kind
    hint = f"set {CACHE_ENV} to a folder you can write, or unset it"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
    except OSError as error:
        raise MeasrError(
            f"cannot use the cache folder {quoted(folder)}: {explain(error)[0]}", hint
        ) from None
    if not stat.S_ISDIR(info.st_mode):
        raise MeasrError(f"the cache folder {quoted(folder)} is not a folder", hint)
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise MeasrError(f"the cache folder {quoted(folder)} belongs to another user", hint)
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        os.chmod(folder, 0o700)
        for entry in folder.iterdir():
            remove(entry)
    return folder


def read_entry(target: Path, names: tuple[str, ...]) -> dict[str, bytes] | None:
    """The files `names` of the entry `target`, each read once and matching the checksum
    recorded when it was written; None when the entry is missing, and also when it is
    incomplete or damaged, which is then removed (to be written again)."""
    if not target.is_dir():
        return None
    try:
        recorded = recorded_checksums(target)
        files = {name: (target / name).read_bytes() for name in names}
    except (OSError, ValueError):
        files, recorded = {}, {}
    intact = all(hashlib.sha256(data).hexdigest() == recorded.get(name)
                 for name, data in files.items())  # fmt: skip
    if not files or not intact:
        remove(target)
        return None
    return files


def recorded_checksums(target: Path) -> dict[str, str]:
    """{file name: sha256} from the entry's CHECKSUMS, lines `SHA256  NAME` (as sha256sum)."""
    lines = (target / CHECKSUMS).read_text(encoding="ascii").splitlines()
    return {name: digest for digest, name in (line.split("  ", 1) for line in lines)}


def write_entry(target: Path, write: Callable[[Path], None]) -> None:
    """Make the entry `target`: `write(folder)` fills a fresh temporary folder beside it, the
    checksum of each file is recorded, and the folder is renamed to `target`. Another process
    that made it first wins; temporary folders of conversions that were killed are removed."""
    remove_stale(target.parent)
    partial = target.with_name(f"{target.name}.{os.getpid()}@{socket.gethostname()}{_PARTIAL}")
    remove(partial)
    partial.mkdir(mode=0o700)
    try:
        write(partial)
        lines = [
            f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n"
            for path in sorted(partial.iterdir())
        ]
        (partial / CHECKSUMS).write_text("".join(lines))
        partial.rename(target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        remove(partial)


def remove_stale(folder: Path) -> None:
    """Remove the temporary folders in `folder` of conversions (on this machine) whose
    process is gone."""
    host = socket.gethostname()
    for partial in folder.glob(f"*{_PARTIAL}"):
        owner, _, where = partial.name.removesuffix(_PARTIAL).rpartition("@")
        pid = owner.rpartition(".")[2]
        if where == host and pid.isdigit() and not process_alive(int(pid)):
            remove(partial)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process: alive
        return True
    return True


def remove(path: Path) -> None:
    """Remove a file or folder, if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()
