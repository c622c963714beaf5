"""The `measr` application: global options, error handling, and every command registered."""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from measr import __version__
from measr.cli import INTERRUPTED, start_process
from measr.cli.help import HelpGroup, MeasrCommand, print_help
from measr.cli.render import print_error, stderr
from measr.errors import MeasrError


def help_summary(module: str, attribute: str) -> str:
    """The first paragraph of a command's help (its function's docstring, or the `help=` of a
    Typer app), read from its module's source without running the module: running it would
    import PyTorch."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return ""
    for node in ast.parse(Path(spec.origin).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef) and node.name == attribute:
            text = ast.get_docstring(node) or ""
        elif isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == attribute:
            helps = [k.value for k in getattr(node.value, "keywords", []) if k.arg == "help"]
            text = ast.literal_eval(helps[0]) if helps else ""
        else:
            continue
        return " ".join(text.split("\n\n")[0].split())
    return ""


@dataclass(frozen=True)
class LazyCommand:
    """A command of `measr`, imported when it runs or shows its own help: its module imports
    PyTorch (seconds), and `measr --help` lists every command without it."""

    module: str
    # The command's function, or a Typer app holding a group of commands.
    attribute: str
    epilog: str | None = None

    def summary(self) -> str:
        """What `measr --help` says of the command."""
        return help_summary(self.module, self.attribute)

    def load(self, name: str) -> Any:
        """The command itself, as Typer builds it."""
        target = getattr(importlib.import_module(self.module), self.attribute)
        if isinstance(target, typer.Typer):
            # The group and its commands show measr's help (measr.cli.help).
            target.info.cls = HelpGroup
            for info in target.registered_commands:
                if info.cls in (None, TyperCommand):
                    info.cls = MeasrCommand
            group = typer.main.get_command(target)
            group.name = name
            return group
        single = typer.Typer(add_completion=False)
        single.command(name, epilog=self.epilog, cls=MeasrCommand)(target)
        return typer.main.get_command(single)


# Every command's help ends with an example (tests/test_cli_help.py checks each one); a group's
# epilog is its Typer app's.
COMMANDS = {
    "restore": LazyCommand(
        "measr.cli.restore",
        "restore",
        "Example: measr restore photo.jpg -o restored.jpg --strength 0.8 --routing-map experts.png",
    ),
    "batch": LazyCommand(
        "measr.cli.batch",
        "batch",
        "Example: measr batch photos/ restored/ --include '*.jpg' --log restored/log.jsonl",
    ),
    "inspect-experts": LazyCommand(
        "measr.cli.inspect",
        "inspect_experts",
        "Example: measr inspect-experts photos/ --group-by damage --json report.json",
    ),
    "models": LazyCommand("measr.cli.models", "models", "Example: measr models"),
    "import-weights": LazyCommand(
        "measr.cli.import_weights",
        "import_weights",
        "Example: measr import-weights model.pth --config small",
    ),
    "train": LazyCommand(
        "measr.cli.train",
        "train",
        "Example: measr train --out runs/r1 --data /data/bsd400 --val /data/val "
        "--tasks six --minutes 60",
    ),
    "fit-colour": LazyCommand(
        "measr.cli.train",
        "fit_colour",
        "Example: measr fit-colour runs/r1 --data /data/bsd400 --out weights/r1-colour.safetensors",
    ),
    "fit-presence": LazyCommand(
        "measr.cli.train",
        "fit_presence",
        "Example: measr fit-presence weights/small-5task-named.safetensors --data /data/bsd400 "
        "--out weights/named-every-kind.safetensors",
    ),
    "export": LazyCommand(
        "measr.cli.train", "export", "Example: measr export runs/r1 --name my-weights --ship"
    ),
    "benchmark": LazyCommand("measr.cli.benchmark", "benchmark_app"),
}


class MeasrGroup(TyperGroup):
    """The `measr` command group: lists its commands without importing them (`LazyCommand`),
    and turns the errors users can meet into one red line and an exit code, never a
    traceback."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Stand-ins until a command is used; their summaries are read when help is shown.
        self.commands.update({name: TyperCommand(name) for name in COMMANDS})
        self.stubs = set(COMMANDS)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """`measr --help` (measr.cli.help): the stand-ins get their commands' summaries first."""
        for name in self.stubs:
            self.commands[name].short_help = COMMANDS[name].summary()
        print_help(self, ctx)

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        """The command named first in `args`, imported now if it is still a stub."""
        name, command, rest = super().resolve_command(ctx, args)
        if name in self.stubs:
            command = self.commands[name] = COMMANDS[name].load(name)
            self.stubs.discard(name)
        return name, command, rest

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except MeasrError as error:
            print_error(error)
            raise typer.Exit(int(error.exit_code)) from None
        except KeyboardInterrupt:
            stderr().print("[yellow]interrupted[/yellow]")
            raise typer.Exit(INTERRUPTED) from None


app = typer.Typer(
    cls=MeasrGroup,
    help="Restore damaged photos (noise, rain, haze, blur, low light) with one network, MEASNet.",
    epilog="Example: measr restore photo.jpg -o restored.jpg",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def show_version(value: bool) -> None:
    """--version: print and stop."""
    if value:
        typer.echo(f"measr {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=show_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Restore damaged photos (noise, rain, haze, blur, low light) with one network, MEASNet."""


if __name__ == "__main__":  # `python -m measr.cli.app`, the same as `measr`
    start_process()
    app()
