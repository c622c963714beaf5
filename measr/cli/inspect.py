"""`measr inspect-experts`: which experts MEASNet picks, per task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from measr.atomic import write_text
from measr.cli.options import (
    DEFAULT_TILE_OVERLAP,
    DeviceOption,
    HalfOption,
    NoSharedContextOption,
    ThreadsOption,
    TileOption,
    TileOverlapOption,
    WeightsOption,
    open_restorer,
    restore_options,
)
from measr.cli.render import atom_table, stderr, stdout, usage_table, warn_if_untrained
from measr.engine.options import RuntimeOptions
from measr.errors import ExitCode, MeasrError
from measr.jobs.inspection import (
    DEFAULT_MAP_LEVEL,
    GroupRouting,
    check_paths,
    group_inputs,
    regroup_by_damage,
)
from measr.jobs.inspection import inspect_experts as inspect_routing


def inspect_experts(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            metavar="IMAGES... | FOLDER",
            help="Images, or a folder laid out <task>/<images> (loose images form one group "
            "named after their folder).",
        ),
    ],
    maps: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Write a routing map per image here.")
    ] = None,
    map_level: Annotated[
        str, typer.Option(help="STP-G-MESE level of the routing maps.")
    ] = DEFAULT_MAP_LEVEL,
    group_by: Annotated[
        str,
        typer.Option(
            help="folder: groups are the input folders (tasks you know); damage: groups are "
            "the damage the task prompt detects in each image (for unlabelled photos)."
        ),
    ] = "folder",
    json_out: Annotated[
        str | None,
        typer.Option("--json", metavar="PATH|-", help="Write the routing as JSON ('-': stdout)."),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace the JSON report and routing maps if they exist."),
    ] = False,
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    threads: ThreadsOption = None,
    half: HalfOption = False,
    tile: TileOption = None,
    tile_overlap: TileOverlapOption = DEFAULT_TILE_OVERLAP,
    no_shared_context: NoSharedContextOption = False,
) -> None:
    """Run images with routing capture; print, per task, expert-usage histograms of every
    STP-G-MESE level and FD-MEE band, and the task prompt's atom weights."""
    if group_by not in ("folder", "damage"):
        raise MeasrError(f"--group-by must be folder or damage, not '{group_by}'")
    groups = group_inputs(inputs)
    report_path = None if json_out in (None, "-") else Path(json_out)
    check_paths(groups, maps_dir=maps, map_level=map_level, report=report_path, overwrite=overwrite)
    restorer = open_restorer(RuntimeOptions(weights, device, threads, half))
    warn_if_untrained(restorer)
    report = inspect_routing(
        restorer,
        groups,
        # Routing is what the network does: every photo runs it, even one the weights would
        # leave as it is (`measr.engine.harm`).
        options=restore_options(tile, tile_overlap, no_shared_context, force=True),
        maps_dir=maps,
        map_level=map_level,
        overwrite=overwrite,
        on_image=lambda group, path: stderr().print(Text(f"{group}: {path.name}", style="dim")),
    )
    if group_by == "damage":
        report = regroup_by_damage(report)
    if json_out is not None:
        write_json(report, json_out)
    if json_out != "-":
        show(report)
    failed = [(path, error) for g in report.values() for path, error in g.failed.items()]
    for path, error in failed:
        stderr().print(Text(f"failed: {path}: {error}", style="red"), soft_wrap=True)
    raise typer.Exit(int(ExitCode.SOME_FILES_FAILED if failed else ExitCode.OK))


def as_json(report: dict[str, GroupRouting]) -> dict[str, Any]:
    """The whole report as plain data."""
    return {"groups": {group: routing.to_dict() for group, routing in report.items()}}


def write_json(report: dict[str, GroupRouting], destination: str) -> None:
    """Write the JSON to a file, or to stdout for '-'."""
    text = json.dumps(as_json(report), indent=2)
    if destination == "-":
        typer.echo(text)
    else:
        write_text(destination, text + "\n")


def show(report: dict[str, GroupRouting]) -> None:
    """Per group: the usage table and the prompt's atom weights."""
    console = stdout()
    for group, routing in report.items():
        summary = routing.summary
        if summary is None:
            continue
        title = f"{group}: {len(routing.images)} image(s)"
        console.print(usage_table(title, summary, console.width))
        console.print(atom_table(summary))
        detected = routing.detected()
        if detected:
            found = ", ".join(f"{kind} {count}" for kind, count in detected.items())
            console.print(f"damage found: {found}")
