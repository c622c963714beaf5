"""Every command's --help ends with an example a user can adapt; `measr --help` answers without
importing PyTorch."""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import subprocess
import sys
from typing import Any

import pytest
import typer
from rich.text import Text
from typer.core import TyperGroup, TyperOption
from typer.testing import CliRunner

from measr.cli.app import COMMANDS, app
from measr.training.trainer import TrainConfig

runner = CliRunner()


def command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The path of this command and of every command below it (groups included), each command
    loaded as running it would."""
    paths = [path]
    if isinstance(command, TyperGroup):
        context = typer.Context(command)
        for name in sorted(command.list_commands(context)):
            sub = command.resolve_command(context, [name])[1]
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


# The `measr` command asked for its help, then what it had imported by then.
HELP_THEN_MODULES = """
import sys
sys.argv = ["measr", "--help"]
from measr.cli import main
try:
    main()
except SystemExit:
    pass
print(" ".join(sorted(sys.modules)), file=sys.stderr)
"""


def test_measr_help_lists_every_command_without_importing_pytorch() -> None:
    done = subprocess.run(
        [sys.executable, "-c", HELP_THEN_MODULES],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ | {"COLUMNS": "300"},
    )
    modules = set(done.stderr.split())
    assert "torch" not in modules and "measr.engine" not in modules
    for name, command in COMMANDS.items():
        assert f" {name} " in done.stdout and command.summary() in done.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_listed_summary_is_the_first_paragraph_of_the_commands_own_help(name: str) -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    command = group.resolve_command(typer.Context(group), [name])[1]
    own = command.help if isinstance(command, TyperGroup) else inspect.getdoc(command.callback)
    first_paragraph = " ".join(own.split("\n\n")[0].split())
    assert COMMANDS[name].summary() == first_paragraph != ""


def test_measr_train_defaults_are_the_training_configurations() -> None:
    """Every `measr train` option named like a TrainConfig field defaults to that field's
    default (the ones that default to None are read from TrainConfig when the run starts)."""
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    train = group.resolve_command(typer.Context(group), ["train"])[1]
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    options = {p.name: p.default for p in train.params if p.name in defaults}
    assert len(options) >= 20
    for name, default in options.items():
        assert default in (None, defaults[name]), name


def rendered_help(path: tuple[str, ...], columns: int) -> str:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.stdout


def command_at(path: tuple[str, ...]) -> Any:
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.resolve_command(typer.Context(command), [name])[1]
    return command


def flat(text: str) -> str:
    """Rendered help as one line: panel borders dropped, runs of spaces as one."""
    return " ".join(text.replace("│", " ").split())


def plain(help_text: str) -> str:
    """A help text as the screen shows it (rich markup resolved, source lines joined)."""
    return " ".join(Text.from_markup(" ".join(help_text.split())).plain.split())


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "measr")
def test_help_fits_the_screen_and_cuts_nothing(path: tuple[str, ...], columns: int) -> None:
    """Every line fits; no name or word is cut with an ellipsis; flags show no value type; every
    option's names and whole help text are there, in panels."""
    text = rendered_help(path, columns)
    assert max(len(line) for line in text.splitlines()) <= columns
    assert "…" not in text and "<bool>" not in text
    shown = flat(text)
    command = command_at(path)
    for param in command.params:
        names = [*param.opts, *param.secondary_opts] if isinstance(param, TyperOption) else []
        for name in names:
            assert re.search(rf"(^|[\s,/]){re.escape(name)}($|[\s,])", shown), name
        if param.help:
            assert plain(param.help) in shown, param.name


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "measr")
def test_help_shows_no_source_line_breaks(path: tuple[str, ...]) -> None:
    """On a screen wide enough, each paragraph of a description and each listed command's
    summary is one line: the line breaks of the source code do not show."""
    lines = [line.strip(" │") for line in rendered_help(path, 1000).splitlines()]
    command = command_at(path)
    for paragraph in (command.help or "").split("\n\n"):
        if paragraph.strip():
            assert plain(paragraph) in lines, paragraph
    if isinstance(command, TyperGroup):
        for name in command.list_commands(typer.Context(command)):
            sub = command_at((*path, name))
            summary = plain((sub.help or "").split("\n\n")[0])
            assert any(line.startswith(name) and line.endswith(summary) for line in lines), name


def test_restore_help_groups_its_options_in_panels() -> None:
    text = rendered_help(("restore",), 80)
    for title in ("Arguments", "Options", "Weights and device", "Speed", "Tiles and memory"):
        assert f"╭─ {title} ─" in text, title
    # Each option in its panel: the device's options below its title, not the speed's.
    assert text.index("Weights and device") < text.index("--threads") < text.index("─ Speed ─")
