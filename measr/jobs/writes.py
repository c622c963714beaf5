"""The files a command will write, checked before any work: none is a file the command reads,
no two are one file, and a report can be written where it is asked for.

Paths are compared by the place they name (the folder's links resolved, the name as given) and,
where they exist, by the file they are (`stat`, links followed: a link or a hard link to a
photo is that photo). Every command that writes calls `check_writes` once with all its inputs
and outputs: restore (outputs, routing map), batch (outputs, log), inspect-experts (report,
routing maps), benchmark (reports)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from measr.errors import ImageWriteError, MeasrError, quoted

REPLACE_ORIGINALS_HINT = "to replace the originals on purpose, add --replace-originals"


@dataclass(frozen=True)
class Write:
    """A file a command will write: where; how messages name it (`what`: "the routing map");
    what the user can do when it lands on an input (`hint`) or on another write
    (`clash_hint`); the input it is made from (`source`: with `replace_originals` it may
    replace that one); and whether an existing file there is written (`replaces`; False for an
    output that is skipped when it exists)."""

    path: Path
    what: str
    hint: str = "choose another path"
    source: Path | None = None
    replaces: bool = True
    clash_hint: str = "give each its own path"


# A path's place ("place", its folder resolved, its name) or its file ("file", device, inode):
# two paths with a key in common are one file.
Key = tuple[str, str | int, str | int]


class _Keys:
    """The keys of paths: each folder resolved once (a batch's files share a few folders), and
    each path's file looked up once."""

    def __init__(self) -> None:
        self.folders: dict[str, str] = {}

    def place(self, path: Path) -> Key:
        folder, name = os.path.split(os.fspath(path))
        if folder not in self.folders:
            self.folders[folder] = os.path.realpath(folder or os.curdir)
        return "place", self.folders[folder], name

    @staticmethod
    def file(path: Path) -> Key | None:
        """None where nothing is there (or the path is not valid)."""
        try:
            status = os.stat(path)  # links followed: a link to a photo is that photo
        except (OSError, ValueError):
            return None
        return "file", status.st_dev, status.st_ino

    def all(self, path: Path) -> set[Key]:
        file = self.file(path)
        return {self.place(path)} if file is None else {self.place(path), file}


def check_writes(
    reads: Iterable[Path], writes: Sequence[Write], *, replace_originals: bool = False
) -> None:
    """Refuse, as a usage error, a plan in which a file written is a file read (unless it is
    the write's own source and `replace_originals`), or in which two writes are one file."""
    keys = _Keys()
    reads = list(reads)
    read: dict[Key, Path] = {}
    for path in reads:
        read.setdefault(keys.place(path), path)
    files_read = False  # the inputs' files are looked up once a write exists (as on a rerun)
    written: dict[Key, Write] = {}
    for write in writes:
        found = [keys.place(write.path)]
        file = keys.file(write.path)
        if file is not None:
            found.append(file)
            if not files_read:
                for path in reads:
                    if (input_file := keys.file(path)) is not None:
                        read.setdefault(input_file, path)
                files_read = True
        earlier = next((written[k] for k in found if k in written), None)
        if earlier is not None:
            raise _both_written(earlier, write)
        written.update(dict.fromkeys(found, write))
        source = next((read[k] for k in found if k in read), None)
        if source is None or not write.replaces:
            continue
        if write.source is None or not keys.all(write.source) & keys.all(source):
            raise _over_an_input(write, source)
        if not replace_originals:
            raise MeasrError(
                f"{quoted(write.source)} would be written over itself, and the original photo lost",
                f"{write.hint}; {REPLACE_ORIGINALS_HINT}",
            )


def _same_file(path: Path, other: Path) -> str:
    """' (the same file as 'other')' when the two paths are written differently."""
    return "" if path == other else f" (the same file as {quoted(other)})"


def _over_an_input(write: Write, source: Path) -> MeasrError:
    return MeasrError(
        f"{write.what} {quoted(write.path)} is an input photo{_same_file(write.path, source)}: "
        "writing it would destroy the photo",
        write.hint,
    )


def _both_written(earlier: Write, write: Write) -> MeasrError:
    return MeasrError(
        f"{earlier.what} and {write.what} would both be written to "
        f"{quoted(write.path)}{_same_file(write.path, earlier.path)}",
        write.clash_hint,
    )


def check_destination(path: Path, what: str, *, overwrite: bool = True) -> None:
    """Refuse, before the work that fills it, a file that cannot be written at `path`: a
    folder, a path through a file, or (without `overwrite`) an existing file."""
    if path.is_dir():
        raise _cannot_write(path, what, "it is a folder", "give a file name")
    if not overwrite and os.path.lexists(path):
        raise _cannot_write(
            path,
            what,
            "the file already exists",
            "allow replacing it, or choose another name",
            option="overwrite",
        )
    folder = next((p for p in path.parents if os.path.lexists(p)), None)
    if folder is not None and not folder.is_dir():
        problem = f"{quoted(folder)} is a file, not a folder"
        raise _cannot_write(path, what, problem, "choose another path")


def _cannot_write(
    path: Path, what: str, problem: str, hint: str, *, option: str | None = None
) -> ImageWriteError:
    return ImageWriteError(f"cannot write {what} {quoted(path)}: {problem}", hint, option=option)


def make_folders(folder: Path) -> None:
    """Create `folder` and its missing parents, however deep: `Path.mkdir(parents=True)` and
    `os.makedirs` recurse once per missing level, which fails beyond about 1000."""
    missing = []
    while not folder.is_dir() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for level in reversed(missing):
        try:
            level.mkdir()
        except FileExistsError:
            if not level.is_dir():
                raise
