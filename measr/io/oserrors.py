"""Plain-words causes and hints for the operating-system errors reading and writing can meet."""

from __future__ import annotations

import errno
import os

_CHECK_PATH = "check the path"
_PERMISSIONS = "check the permissions of the file and its folder"

# errno -> (cause, hint). Hints say what the user can do about it.
_EXPLANATIONS: dict[int, tuple[str, str]] = {
    errno.ENOENT: ("no such file or folder", _CHECK_PATH),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", _CHECK_PATH),
    errno.EACCES: ("permission denied", _PERMISSIONS),
    errno.EPERM: ("operation not permitted", _PERMISSIONS),
    errno.EISDIR: ("it is a folder, not a file", "pass a file path"),
    errno.ELOOP: ("too many levels of symbolic links", "fix the symbolic link loop"),
    errno.ENAMETOOLONG: ("the file name is too long", "use a shorter name or path"),
    errno.ENOSPC: ("no space left on the disk", "free some disk space or write elsewhere"),
    errno.EROFS: ("the file system is read-only", "write to another folder"),
    errno.EIO: ("input/output error", "the disk or network share may be failing; retry"),
    errno.EEXIST: ("a file with that name already exists", _CHECK_PATH),
}
if hasattr(errno, "EDQUOT"):
    _EXPLANATIONS[errno.EDQUOT] = ("disk quota exceeded", "free space or ask for more quota")


def one_line(text: str) -> str:
    """Collapse whitespace and newlines (OpenCV messages have them) into single spaces."""
    return " ".join(text.split())


def explain(exc: OSError) -> tuple[str, str]:
    """A short cause and a hint for an OSError, falling back to the system's wording."""
    if exc.errno in _EXPLANATIONS:
        return _EXPLANATIONS[exc.errno]
    if exc.errno is not None:
        return one_line(os.strerror(exc.errno)).lower(), "check the file and try again"
    return one_line(str(exc)) or type(exc).__name__, "check the file and try again"
