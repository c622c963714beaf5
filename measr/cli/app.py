"""The `measr` application: global options, error handling, and every command registered."""

from __future__ import annotations

import signal
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from measr import __version__
from measr.cli import (
    INTERRUPTED,
    batch,
    import_weights,
    inspect,
    models,
    restore,
    stop_on_sigterm,
    train,
)
from measr.cli.benchmark import benchmark_app
from measr.cli.render import print_error, stderr
from measr.errors import MeasrError


class MeasrGroup(TyperGroup):
    """Turns the errors users can meet into one red line and an exit code, never a traceback."""

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


# Every command's help ends with an example (tests/test_cli_help.py checks each one).
app.command(
    "restore",
    epilog="Example: measr restore photo.jpg -o restored.jpg --strength 0.8 "
    "--routing-map experts.png",
)(restore.restore)
app.command(
    "batch",
    epilog="Example: measr batch photos/ restored/ --include '*.jpg' --log restored/log.jsonl",
)(batch.batch)
app.command(
    "inspect-experts",
    epilog="Example: measr inspect-experts photos/ --group-by damage --json report.json",
)(inspect.inspect_experts)
app.command("models", epilog="Example: measr models")(models.models)
app.command("import-weights", epilog="Example: measr import-weights model.pth --config small")(
    import_weights.import_weights
)
app.add_typer(benchmark_app, name="benchmark")
train.register(app)


def main() -> None:
    """Entry point of `python -m measr.cli.app`. The `measr` command starts at
    `measr.cli.main` instead, which handles SIGTERM before the seconds of imports above."""
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    app()


if __name__ == "__main__":
    main()
