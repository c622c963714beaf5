"""Every command's `--help`, drawn by measr rather than by Typer: readable at 80 columns.

Typer lays an option's names, its negation, its type and its help out in five columns, which at
80 columns leaves its help 18 characters and cuts long words and names with an ellipsis. Here
each option is its names and value (`-o, --output OUT`; flags take none) beside its help, which
wraps between words and never loses one; a name too long for the column puts its help on the
next line. Options are grouped in panels by their `rich_help_panel`, and docstrings' paragraphs
are joined into lines as wide as the screen (their source line breaks do not show).
"""

from __future__ import annotations

import inspect
from typing import Any

import typer
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

# The widest names-and-value column; a longer one gets its help on the line below it.
NAMES_WIDTH = 26
OPTIONS_PANEL = "Options"
ARGUMENTS_PANEL = "Arguments"
COMMANDS_PANEL = "Commands"
# What a value is called where the option names no metavar, by Typer's type description.
VALUE_NAMES = {"int": "N", "float": "X", "path": "PATH", "str": "TEXT", "bool": ""}


def paragraphs(text: str) -> list[str]:
    """A help text's paragraphs, each on one line: source line breaks inside a paragraph are
    spaces, blank lines separate paragraphs (Click's convention)."""
    return [" ".join(p.split()) for p in inspect.cleandoc(text).split("\n\n") if p.strip()]


def markup(text: str, style: str = "") -> Text:
    """Help text as Typer reads it (rich markup: `measr\\[openvino]` is a literal bracket)."""
    return Text.from_markup(text, style=style)


def value_name(param: TyperOption | TyperArgument, ctx: typer.Context) -> str:
    """What an option takes, as a user types it: its metavar, else a short name for its type
    ('N', 'PATH'); '' for a flag."""
    if getattr(param, "is_flag", False):
        return ""
    if param.metavar:
        return param.metavar
    described = (param.display_type_rich(ctx=ctx) or "").strip("<>")
    kind = described.split()[0] if described else "str"
    if kind.startswith("list[") and kind.endswith("]"):  # a repeatable option: one value each
        kind = kind[5:-1].lower()
    return VALUE_NAMES.get(kind, kind.upper())


def names(param: TyperOption | TyperArgument, ctx: typer.Context) -> Text:
    """'-o, --output OUT', '--compile / --no-compile', or an argument's 'IN...'."""
    if isinstance(param, TyperArgument):
        shown = param.metavar or param.display_name_raw or ""
        return Text(shown + ("..." if param.nargs != 1 else ""), style="bold cyan")
    short = [o for o in param.opts if not o.startswith("--")]
    long = [o for o in param.opts if o.startswith("--")]
    line = Text(", ".join(short + long), style="bold cyan")
    if param.secondary_opts:
        line.append(" / " + ", ".join(param.secondary_opts), style="bold magenta")
    value = value_name(param, ctx)
    if value:
        line.append(f" {value}", style="yellow")
    return line


def help_text(param: TyperOption | TyperArgument, ctx: typer.Context) -> Text:
    """The parameter's help, then its environment variable, range, default and whether it is
    required, dimmed."""
    text = markup(" ".join(paragraphs(param.help or "")))
    notes = []
    envvar = getattr(param, "envvar", None)
    if envvar and getattr(param, "show_envvar", False):
        notes.append(f"env var: {envvar}")
    limits = param._get_number_range_help_str()
    if limits:
        notes.append(limits.replace("x>=", "at least ").replace("x<=", "at most "))
    default = shown_default(param, ctx)
    if default:
        notes.append(f"default: {default}")
    if param.required:
        notes.append("required")
    for note in notes:
        text.append(f" [{note}]", style="dim")
    return text


def shown_default(param: TyperOption | TyperArgument, ctx: typer.Context) -> str:
    """The default worth showing: none for flags off by default, or for values left unset."""
    if getattr(param, "is_flag", False) and not param.secondary_opts:
        return ""
    value = param._extract_default_help_str(ctx=ctx)
    if value is None or value == "" or value is False:
        return ""
    if param.secondary_opts:  # --compile / --no-compile: name the one that applies
        return (param.opts if value is True else param.secondary_opts)[-1]
    return str(value)


def rows_table(rows: list[tuple[Text, Text]], width: int) -> Group:
    """Names beside their help, the names' column as wide as the widest name that fits (up to
    `NAMES_WIDTH`, or a third of a narrow screen); a longer name stands on its own line above
    its help. Help wraps between words and folds only a word wider than its whole column."""
    fits = min(NAMES_WIDTH, max(12, width // 3))
    column = max((len(n) for n, _ in rows if len(n) <= fits), default=fits)
    parts: list[RenderableType] = []
    grid = None
    for name, text in rows:
        if len(name) > column:
            parts.append(name)
            name, grid = Text(""), None
        if grid is None:
            grid = Table.grid(padding=(0, 2))
            grid.add_column(no_wrap=True, width=column)
            grid.add_column(overflow="fold")
            parts.append(grid)
        grid.add_row(name, text)
    return Group(*parts)


def panel(title: str, rows: list[tuple[Text, Text]], width: int) -> Panel:
    return Panel(rows_table(rows, width - 4), title=title, title_align="left", border_style="dim")


def parameter_panels(command: Any, ctx: typer.Context, width: int) -> list[Panel]:
    """Arguments first, then the options by panel, in the order they are first met."""
    groups: dict[str, list[tuple[Text, Text]]] = {}
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        default_panel = ARGUMENTS_PANEL if isinstance(param, TyperArgument) else OPTIONS_PANEL
        title = getattr(param, "rich_help_panel", None) or default_panel
        groups.setdefault(title, []).append((names(param, ctx), help_text(param, ctx)))
    ordered = sorted(groups.items(), key=lambda item: item[0] != ARGUMENTS_PANEL)
    return [panel(title, rows, width) for title, rows in ordered]


def command_rows(group: TyperGroup, ctx: typer.Context) -> list[tuple[Text, Text]]:
    """Each command of a group and the first paragraph of its help, whole."""
    rows = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        summary = command.short_help or (paragraphs(command.help or "") or [""])[0]
        rows.append((Text(name, style="bold cyan"), markup(" ".join(summary.split()))))
    return rows


def help_renderables(command: Any, ctx: typer.Context, width: int) -> list[RenderableType]:
    """Usage, description, panels and the example, in that order."""
    usage = command.get_usage(ctx).replace("{", "").replace("}", "")
    parts: list[RenderableType] = [Padding(Text(usage, style="bold"), (1, 1, 0, 1))]
    description = paragraphs(command.help or "")
    if description:
        text = Text("\n\n").join(markup(p) for p in description)
        parts.append(Padding(text, (1, 1, 1, 1)))
    parts.extend(parameter_panels(command, ctx, width))
    if isinstance(command, TyperGroup):
        parts.append(panel(COMMANDS_PANEL, command_rows(command, ctx), width))
    if command.epilog:
        parts.append(Padding(markup(" ".join(command.epilog.split())), (1, 1)))
    return parts


def print_help(command: Any, ctx: typer.Context) -> None:
    """Print `command`'s help on stdout at the terminal's width (80 columns when piped)."""
    console = Console(highlight=False)
    console.print(Group(*help_renderables(command, ctx, console.width)))


class MeasrCommand(TyperCommand):
    """A measr command: Typer's, with measr's help (module docstring)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        print_help(self, ctx)


class HelpGroup(TyperGroup):
    """A group of measr commands (`measr benchmark`), with measr's help."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        print_help(self, ctx)
