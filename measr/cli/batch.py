"""`measr batch IN_DIR OUT_DIR`: restore a folder, resumable and safe to interrupt."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.text import Text

from measr.cli import INTERRUPTED
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
    batch_table,
    progress_bar,
    restore_line,
    stderr,
    stdout,
    warn_if_untrained,
)
from measr.engine import Restorer
from measr.engine.backends import CLI_DEFAULT_BACKEND
from measr.engine.options import RuntimeOptions
from measr.engine.strength import FULL_STRENGTH
from measr.errors import printable
from measr.jobs.batch import (
    LOG_NAME,
    BatchInterrupted,
    BatchJob,
    BatchReport,
    FileResult,
    check_paths,
    parse_shard,
    plan_jobs,
    run_batch,
)


def batch(
    # readable=False: measr explains unreadable folders itself (exit 4), not Typer (exit 2).
    in_dir: Annotated[
        Path,
        typer.Argument(metavar="IN_DIR", readable=False, help="Folder of images (recursive)."),
    ],
    out_dir: Annotated[
        Path,
        typer.Argument(
            metavar="OUT_DIR", readable=False, help="Results go here, under the same paths."
        ),
    ],
    include: Annotated[
        list[str] | None,
        typer.Option(metavar="GLOB", help="Only paths or names matching (repeatable)."),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(metavar="GLOB", help="Leave out paths or names matching (repeatable)."),
    ] = None,
    suffix: Annotated[str, typer.Option(help="Added to each output's stem.")] = "",
    ext: Annotated[
        str | None, typer.Option(help="Output format, e.g. png (default: the input's).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Redo outputs that exist.")
    ] = False,
    replace_originals: Annotated[
        bool,
        typer.Option(
            "--replace-originals",
            help="With --overwrite and OUT_DIR = IN_DIR: write over the original photos "
            "(refused otherwise; the originals are lost).",
        ),
    ] = False,
    quality: Annotated[int, typer.Option(help="JPEG/WebP quality of the outputs, 1-100.")] = 95,
    log: Annotated[
        Path | None,
        typer.Option(
            readable=False, help=f"JSON-lines log, appended (default: OUT_DIR/{LOG_NAME})."
        ),
    ] = None,
    shard: Annotated[
        str, typer.Option(metavar="I/N", help="Take files I, I+N, I+2N... of the sorted list.")
    ] = "0/1",
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
    force: ForceOption = False,
    max_memory: MaxMemoryOption = None,
    passes: PassesOption = "auto",
) -> None:
    """Restore every image below IN_DIR into OUT_DIR. Existing outputs are skipped, so an
    interrupted run resumes; a bad file is reported and the rest go on (exit code 1)."""
    jobs = plan_jobs(
        in_dir,
        out_dir,
        include=include or (),
        exclude=exclude or (),
        suffix=suffix,
        ext=ext,
        shard=parse_shard(shard),
    )
    log = log or out_dir / LOG_NAME
    check_paths(jobs, log, overwrite=overwrite, replace_originals=replace_originals)
    runtime = RuntimeOptions(weights, device, threads, half, compile, backend, float32)
    restorer = open_restorer(runtime)
    warn_if_untrained(restorer)
    console = stderr()
    # Piped or redirected, a line per photo (the bar is drawn on a terminal only).
    lines = None if stdout().is_terminal else stdout()
    with progress_bar(console) as progress:
        task = progress.add_task("restoring", total=len(jobs))

        def show(result: FileResult) -> None:
            if result.status == "failed":
                what = f"failed: {printable(result.job.relative)}: {result.error}"
                progress.console.print(Text(what, style="red"), soft_wrap=True)
            elif lines is not None:
                lines.print(result_line(result, restorer), soft_wrap=True)
            progress.advance(task)

        # A second line for the tiles of a photo restored in several (hidden otherwise).
        tiles = progress.add_task("", total=None, visible=False)

        def show_tiles(job: BatchJob, done: float, total: int) -> None:
            if done == 0:  # a new photo: restart the count and the clock
                what = f"  {escape(job.relative)}: {total} tiles"  # a name, not markup
                progress.reset(tiles, total=total, description=what, visible=total > 1)
            else:
                progress.update(tiles, completed=done, visible=total > 1 and done < total)

        try:
            report = run_batch(
                restorer,
                jobs,
                options=restore_options(
                    tile, tile_overlap, no_shared_context, strength, max_memory, force, passes
                ),
                overwrite=overwrite,
                quality=quality,
                log_path=log,
                on_result=show,
                on_tiles=show_tiles,
            )
        except BatchInterrupted as interruption:
            progress.stop()
            finish(interruption.report, interrupted=True)
            raise typer.Exit(INTERRUPTED) from None
    finish(report, interrupted=False)
    raise typer.Exit(int(report.exit_code))


def result_line(result: FileResult, restorer: Restorer) -> Text:
    """A restored photo's sentence, as `measr restore` prints it; or why it was skipped."""
    source, target = printable(str(result.job.source)), printable(str(result.job.target))
    if result.restoration is None or result.size is None:
        return Text(f"Skipped {source}: {result.error or 'output exists'}.")
    strength = result.strength if result.strength is not None else FULL_STRENGTH
    return restore_line(
        source, target, result.size, result.restoration, restorer, strength=strength
    )


def finish(report: BatchReport, *, interrupted: bool) -> None:
    """Print the summary table (and say when the run was stopped)."""
    stdout().print(batch_table(report))
    if report.log_error:
        stderr().print(Text(f"warning: {report.log_error}", style="yellow"), soft_wrap=True)
    if interrupted:
        stderr().print(
            "[yellow]interrupted: finished files are complete, the rest were not started; "
            "run the same command again to resume[/yellow]"
        )
