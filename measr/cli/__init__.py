"""The `measr` command: thin Typer commands that parse, call the library and render with rich."""

from __future__ import annotations

import signal
import sys
from types import FrameType

# Exit code of a run stopped by Ctrl-C or SIGTERM (the shell's 128 + SIGINT).
INTERRUPTED = 130


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM stops a run the way Ctrl-C does: cleanly, with exit code 130."""
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point. SIGTERM is handled from the first moment: importing the
    commands (PyTorch above all) takes seconds, and a run stopped then must say so and exit
    130 like any other interrupted run, not die silently with 143."""
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        from measr.cli.app import app  # the slow import, after the handler is in place
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(INTERRUPTED) from None
    app()
