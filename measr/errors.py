"""The one exception type users can meet, and the exit codes the CLI maps it to."""

from __future__ import annotations

import os
from enum import IntEnum


class ExitCode(IntEnum):
    """Documented exit codes of the `measr` command."""

    OK = 0
    SOME_FILES_FAILED = 1
    USAGE = 2
    MODEL = 3  # model, weights or device problem
    INPUT = 4  # an input image could not be read or an output not written


class MeasrError(Exception):
    """A problem the user can act on: a message, a hint saying what to do, and an exit code.
    `option` names the value at fault (a parameter such as 'threads'), so that a caller can say
    where it came from (the CLI names its flag); messages speak of values, never of flags."""

    def __init__(
        self,
        message: str,
        hint: str = "",
        exit_code: ExitCode = ExitCode.USAGE,
        *,
        option: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code
        self.option = option

    def one_line(self) -> str:
        """The message and hint on one line, as the CLI prints it."""
        return f"{self.message} ({self.hint})" if self.hint else self.message


class WeightsError(MeasrError):
    """Weights that are missing, corrupt, or made for another configuration."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message, hint, ExitCode.MODEL)


class ImageReadError(MeasrError):
    """An input that is not a readable image."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message, hint, ExitCode.INPUT)


class ImageWriteError(MeasrError):
    """An output that could not be written."""

    def __init__(self, message: str, hint: str = "", *, option: str | None = None) -> None:
        super().__init__(message, hint, ExitCode.INPUT, option=option)


def printable(text: str) -> str:
    """`text` as it is, or, when it holds a line break or another unprintable character, as
    Python's escaped repr: names from the file system must not split a one-line message (or
    forge another line)."""
    return text if text.isprintable() else repr(text)


def quoted(name: object) -> str:
    """A file name in a one-line message: 'name', or its escaped repr (see `printable`)."""
    text = os.fsdecode(name) if isinstance(name, (str, bytes, os.PathLike)) else str(name)
    return f"'{text}'" if text.isprintable() else repr(text)
