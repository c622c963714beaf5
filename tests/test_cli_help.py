"""Every command's --help ends with an example a user can adapt."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from measr.cli.app import app

runner = CliRunner()


def command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The path of this command and of every command below it (groups included)."""
    paths = [path]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        paths += command_paths(sub, (*path, name))
    return paths


ALL_COMMANDS = command_paths(typer.main.get_command(app))


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(p) for p in ALL_COMMANDS}
    assert {"restore", "batch", "inspect-experts", "models", "train", "export"} <= names
    assert {"benchmark quality", "benchmark speed", "benchmark prompt"} <= names


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "measr")
def test_help_ends_with_an_example_of_that_command(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    last = [line.strip(" │") for line in result.stdout.splitlines() if line.strip(" │")][-1]
    assert last.startswith("Example: measr "), last
    example = last.removeprefix("Example: measr ")
    if path:  # a command's own example runs that command (a group's may run a sub-command)
        assert example.startswith(" ".join(path)), last
