"""The `measr` command: thin Typer commands that parse, call the library and render with rich."""

# Exit code of a run stopped by Ctrl-C or SIGTERM (the shell's 128 + SIGINT).
INTERRUPTED = 130
