"""The `measr` command: thin Typer commands that parse, call the library and render with rich."""

from __future__ import annotations

import signal
import sys
from types import FrameType

from measr.allocator import tune_process

# Exit code of a run stopped by Ctrl-C or SIGTERM (the shell's 128 + SIGINT).
INTERRUPTED = 130


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM stops a run the way Ctrl-C does: cleanly, with exit code 130."""
    raise KeyboardInterrupt


def start_process() -> None:
    """What the `measr` process does before anything else. SIGTERM is handled from the first
    moment: importing a command (PyTorch above all) takes seconds, and a run stopped then must
    say so and exit 130 like any other interrupted run, not die silently with 143. Then memory
    allocation is tuned (`measr.allocator`), before torch is imported and allocates."""
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    tune_process()


def main() -> None:
    """Console-script entry point (also `python -m measr.cli`)."""
    try:
        start_process()
        from measr.cli.app import app  # Typer and rich (the commands load when they run)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(INTERRUPTED) from None
    app()
