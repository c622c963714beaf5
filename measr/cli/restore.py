"""`measr restore IN...`: restore one image or several (files or glob patterns)."""

from __future__ import annotations

import functools
import glob
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from measr.cli.options import (
    DEFAULT_TILE_OVERLAP,
    BackendOption,
    CompileOption,
    DeviceOption,
    Float32Option,
    ForceOption,
    HalfOption,
    MaxMemoryOption,
    NoSharedContextOption,
    PassesOption,
    StrengthOption,
    ThreadsOption,
    TileOption,
    TileOverlapOption,
    WeightsOption,
    open_restorer,
    restore_options,
)
from measr.cli.render import (
    gigabytes,
    print_error,
    progress_bar,
    restore_details,
    restore_line,
    stderr,
    stdout,
)
from measr.engine import Restoration, Restorer
from measr.engine.backends import CLI_DEFAULT_BACKEND
from measr.engine.options import RestoreOptions, RuntimeOptions
from measr.engine.routing import check_routing_level
from measr.engine.routing_map import render_routing_map
from measr.errors import ExitCode, ImageWriteError, MeasrError, quoted
from measr.io import (
    Image,
    check_output,
    check_quality,
    image_from_array,
    is_input_path,
    read_image,
    write_image,
)
from measr.jobs.inspection import DEFAULT_MAP_LEVEL
from measr.jobs.writes import Write, check_writes

RESTORED_SUFFIX = "_restored"
GLOB_CHARACTERS = frozenset("*?[")
# One input and the file it becomes.
Job = tuple[Path, Path]


@dataclass(frozen=True)
class Output:
    """How results are reported: --quiet, --verbose, --json."""

    quiet: bool = False
    verbose: bool = False
    json: bool = False

    @property
    def shows_progress(self) -> bool:
        return not (self.quiet or self.json)


def default_output(source: Path) -> Path:
    """`<stem>_restored.<ext>` beside the input."""
    return source.with_name(f"{source.stem}{RESTORED_SUFFIX}{source.suffix}")


def expand_inputs(arguments: list[Path]) -> list[Path]:
    """The files named: each argument as it is, or, when it is not a file and holds glob
    characters (a quoted pattern, or a shell that does not expand them), the files it matches
    in name order. A pattern that matches nothing is an error."""
    files: list[Path] = []
    for argument in arguments:
        text = str(argument)
        if argument.exists() or not GLOB_CHARACTERS & set(text):
            files.append(argument)
            continue
        matches = sorted(Path(m) for m in glob.glob(text, recursive=True) if Path(m).is_file())
        if not matches:
            raise MeasrError(f"no file matches {quoted(text)}", "check the pattern", ExitCode.INPUT)
        files.extend(matches)
    return list(dict.fromkeys(files))  # each file once, in order


def ensure_folder(folder: Path) -> None:
    """Create the output folder when only its last level is missing; refuse to create a chain
    of folders (a mistyped -o would otherwise grow folders up to the root)."""
    if folder.is_dir():
        return
    if not folder.parent.is_dir():
        raise ImageWriteError(
            f"folder {quoted(folder.parent)} does not exist",
            "create it first: measr creates only the last folder of -o",
        )
    try:
        folder.mkdir()
    except OSError as error:
        raise ImageWriteError(
            f"cannot create folder {quoted(folder)}: {error.strerror or error}",
            "choose a writable place with -o",
        ) from None


def plan_jobs(sources: list[Path], output: Path | None) -> list[Job]:
    """Where each input goes: -o is the output file for one input, the output folder for
    several (or when it is a folder); by default `<stem>_restored.<ext>` beside each input."""
    several = len(sources) > 1
    if several and output is not None and not output.is_dir() and is_input_path(output):
        raise MeasrError(
            f"-o {quoted(output)} names one image, but {len(sources)} inputs were given",
            "give -o a folder for several inputs, or restore one input at a time",
            ExitCode.USAGE,
        )
    if output is None:
        jobs = [(s, default_output(s)) for s in sources]
    elif several or output.is_dir():
        jobs = [(s, output / default_output(s).name) for s in sources]
    else:
        jobs = [(sources[0], output)]
    return jobs


def check_paths(jobs: list[Job], routing_map: Path | None, *, replace_originals: bool) -> None:
    """No output lands on an input or on another output (`measr.jobs.writes`)."""
    writes = [
        Write(
            target,
            f"the output of {quoted(source)}",
            "choose another -o",
            source,
            clash_hint="restore them into different folders with -o",
        )
        for source, target in jobs
    ]
    if routing_map is not None:
        writes.append(Write(routing_map, "the routing map", "choose another --routing-map"))
    check_writes([source for source, _ in jobs], writes, replace_originals=replace_originals)


def json_record(job: Job, image: Image, restoration: Restoration, restorer: Restorer) -> str:
    """One JSON line for scripts: what was written, how, and what the prompt found."""
    record: dict[str, Any] = {
        "input": str(job[0]),
        "output": str(job[1]),
        "width": image.width,
        "height": image.height,
        "seconds": round(restoration.seconds, 3),
        "device": str(restorer.device),
        "half": restorer.half,
        "backend": restoration.backend,
        "precision": restoration.precision,
        "weights": restorer.name,
        "config": restorer.config.name,
        "trained": restorer.is_trained,
        "tiles": restoration.tiles,
        "tile": restoration.tile,
        "memory_estimate_bytes": restoration.memory_estimate,
        "damage": restoration.damage.to_dict() if restoration.damage else None,
        "left_as_is": restoration.left_as_is,
        "passes": [p.to_dict() for p in restoration.passes],
        "routing": restoration.routing.to_dict() if restoration.routing else None,
    }
    return json.dumps(record)


def run_one(
    job: Job,
    opened: Callable[[], Restorer],
    options: RestoreOptions,
    output: Output,
    *,
    overwrite: bool,
    quality: int,
    routing_map: Path | None,
    map_level: str,
) -> None:
    """Restore one file, write it (and its routing map), and report it as asked. The file and
    its output are checked before `opened()` loads the weights, so a bad first input fails at
    once, and before the restoration, so that nothing is computed for an output refused anyway."""
    source, target = job
    image = read_image(source)
    check_output(target, overwrite=overwrite)  # after reading: an animated GIF is named as such
    ensure_folder(target.parent)
    restorer = opened()
    tiles, memory = restorer.expected_use(image.height, image.width, options)
    with progress_bar(stderr(), visible=output.shows_progress) as bar:
        pieces = f"{tiles} tiles" if tiles > 1 else "whole"
        what = f"{escape(source.name)} ({pieces}, about {gigabytes(memory)} planned)"
        task = bar.add_task(what, total=tiles)
        restoration = restorer.restore(
            image.pixels,
            options,
            record_routing=restorer.records_routing or routing_map is not None,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    write_image(target, image.with_pixels(restoration.pixels), quality=quality, overwrite=overwrite)
    if routing_map is not None:
        picture = render_routing_map(
            image.pixels, restoration.expert_maps[map_level], restorer.config.pixel_experts
        )
        write_image(routing_map, image_from_array(picture), overwrite=overwrite)
    if output.json:
        typer.echo(json_record(job, image, restoration, restorer))
    elif not output.quiet:
        size = (image.height, image.width)
        shown_map = None if routing_map is None else str(routing_map)
        line = restore_line(
            str(source),
            str(target),
            size,
            restoration,
            restorer,
            strength=options.strength,
            routing_map=shown_map,
        )
        stdout().print(line, soft_wrap=True)
        if output.verbose:
            stdout().print(restore_details(restoration), soft_wrap=True)


def restore(
    # readable=False: Typer's own check answers an unreadable file with a usage error (exit
    # 2); read_image says "permission denied" with exit code 4, as for every bad input.
    sources: Annotated[
        list[Path],
        typer.Argument(
            metavar="IN",
            readable=False,
            help="Images to restore: files, or glob patterns such as 'photos/*.jpg'.",
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="OUT",
            readable=False,
            help="The output file (one input) or folder (several inputs, or an existing "
            "folder; only its last level is created). Default: <stem>_restored.<ext> beside "
            "each input.",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT if it exists.")
    ] = False,
    replace_originals: Annotated[
        bool,
        typer.Option(
            "--replace-originals",
            help="With --overwrite and -o naming the input: write over the original photo "
            "(refused otherwise; the original is lost).",
        ),
    ] = False,
    quality: Annotated[int, typer.Option(help="JPEG/WebP quality of the output, 1-100.")] = 95,
    routing_map: Annotated[
        Path | None,
        typer.Option(help="Also write a picture of each pixel's top expert (PNG; one input)."),
    ] = None,
    map_level: Annotated[
        str, typer.Option(help="STP-G-MESE level of the routing map.")
    ] = DEFAULT_MAP_LEVEL,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print nothing but errors (no progress bar).")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Also print the memory planned, the prompt's atoms and the experts used.",
        ),
    ] = False,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object per image instead (for scripts)."),
    ] = False,
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    threads: ThreadsOption = None,
    half: HalfOption = False,
    compile: CompileOption = False,
    backend: BackendOption = CLI_DEFAULT_BACKEND,
    float32: Float32Option = False,
    tile: TileOption = None,
    tile_overlap: TileOverlapOption = DEFAULT_TILE_OVERLAP,
    no_shared_context: NoSharedContextOption = False,
    strength: StrengthOption = 1.0,
    max_memory: MaxMemoryOption = None,
    force: ForceOption = False,
    passes: PassesOption = "auto",
) -> None:
    """Restore images; prints one sentence per image: what was written, its size, the time,
    the device, the weights and what damage was found."""
    check_quality(quality)
    jobs = plan_jobs(expand_inputs(sources), output)
    if routing_map is not None and len(jobs) > 1:
        raise MeasrError("--routing-map takes one input", "restore the others without it")
    check_paths(jobs, routing_map, replace_originals=replace_originals)
    if routing_map is not None:
        check_output(routing_map, overwrite=overwrite)
    # A routing map shows what the network does, so the photo is restored to draw it.
    force = force or routing_map is not None
    options = restore_options(
        tile, tile_overlap, no_shared_context, strength, max_memory, force, passes
    )
    runtime = RuntimeOptions(weights, device, threads, half, compile, backend, float32)

    @functools.cache
    def opened() -> Restorer:
        restorer = open_restorer(runtime)
        check_routing_level(restorer.model, map_level)
        return restorer

    report = Output(quiet, verbose, json_output)
    failed: list[MeasrError] = []
    for job in jobs:
        try:
            run_one(
                job,
                opened,
                options,
                report,
                overwrite=overwrite,
                quality=quality,
                routing_map=routing_map,
                map_level=map_level,
            )
        except MeasrError as error:
            if len(jobs) == 1:
                raise
            print_error(error)  # the other files are still restored
            failed.append(error)
    if failed:
        raise typer.Exit(int(failed[0].exit_code))
