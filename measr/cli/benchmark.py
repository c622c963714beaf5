"""`measr benchmark quality` and `measr benchmark speed`: thin commands over `measr.evaluation`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich import box
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from measr.cli.options import (
    DeviceOption,
    PassesOption,
    TileOption,
    WeightsOption,
    open_restorer,
    parse_passes,
)
from measr.cli.render import stderr, stdout, warn_if_untrained
from measr.engine.options import RuntimeOptions
from measr.errors import MeasrError
from measr.evaluation import (
    BASELINES,
    DEFAULT_METHODS,
    METHOD_NAMES,
    QualityProgress,
    QualityReport,
    SpeedProgress,
    SpeedReport,
    Status,
    build_methods,
    parse_method_names,
    parse_set,
    run_quality,
    run_speed,
    to_markdown,
    write_csv,
    write_json,
    write_text,
)
from measr.evaluation.methods import MEASR
from measr.evaluation.prompt import (
    NamingReport,
    PromptReport,
    name_other_sources,
    presence_naming,
    read_whole_photos,
    run_prompt_report,
    softmax_naming,
)
from measr.evaluation.quality import quality_markdown
from measr.evaluation.sets import SET_EXAMPLES, SET_SYNTAX, list_items
from measr.evaluation.speed import Mode
from measr.jobs.writes import Write, check_destination, check_writes
from measr.model import NAMED_REQUIREMENTS
from measr.training.validation import (
    composite_items,
    other_source_items,
    prompt_validation_items,
    prompt_validation_set,
)

benchmark_app = typer.Typer(
    help="Measure restoration quality (PSNR/SSIM against clean images) and speed.",
    epilog="Example: measr benchmark speed --configs small --sizes 256,512",
    no_args_is_help=True,
)

SET_HELP = (
    f"A set as {SET_SYNTAX} (repeatable). A folder with degraded/ and clean/ is paired (SPEC "
    "optional: it names the task for the baselines); any other folder holds clean images that "
    f"are degraded with SPEC using fixed per-image seeds; {SET_EXAMPLES}."
)


T = TypeVar("T")
E = TypeVar("E", bound=Enum)


# What `measr benchmark speed` measures unless told: `small` only, two sizes (the library's
# defaults, `full` up to 2048 px, take hours on two CPU cores).
SPEED_CONFIGS = ("small",)
SPEED_SIZES = (256, 512)
SPEED_MODES = (Mode.REFERENCE, Mode.MEASR)


def listing(values: Sequence[object]) -> str:
    """Values as a user types them in a list option: 256,512."""
    return ",".join(str(getattr(value, "value", value)) for value in values)


class Device(str, Enum):
    """Where `measr benchmark speed` runs its points."""

    CPU = "cpu"
    CUDA = "cuda"


def comma_list(item: Callable[[str], T]) -> dict[str, Any]:
    """Typer settings for a repeatable list option whose values may also be comma-separated
    (`--sizes 256,512` is `--sizes 256 --sizes 512`): each part is converted by `item`, and a
    part it refuses (ValueError) is a usage error that names the option."""

    def parse(value: str) -> list[T]:
        return [item(part.strip()) for part in value.split(",") if part.strip()]

    def flatten(groups: list[list[T]] | None) -> list[T] | None:
        return None if groups is None else [value for group in groups for value in group]

    return {"parser": parse, "callback": flatten}


def choice(kind: type[E]) -> Callable[[str], E]:
    """An enum member by its value, for `comma_list`; a refusal names the choices."""

    def member(text: str) -> E:
        try:
            return kind(text)
        except ValueError:
            names = ", ".join(str(m.value) for m in kind)
            raise ValueError(f"'{text}' is not one of {names}") from None

    return member


def tile_side(text: str) -> int:
    """A tile side in pixels; none, the engine's own choice, is 0 here (no tile has 0 px)."""
    return 0 if text.lower() == "none" else int(text)


def check_reports(reports: dict[str, Path | None], images: Iterable[Path] = ()) -> None:
    """Before any scoring: each report asked for can be written, on no image of the sets and
    on no other report."""
    writes = [
        Write(path, f"the {flag} report", f"choose another {flag} path")
        for flag, path in reports.items()
        if path is not None
    ]
    check_writes(images, writes)
    for write in writes:
        check_destination(write.path, write.what)


def _quality_cell(report: QualityReport, set_name: str, method: str) -> str:
    score = report.score(set_name, method)
    if score.status is Status.UNAVAILABLE:
        return "[dim]-[/]"  # the footnotes say why
    if score.psnr is None or score.ssim is None or score.seconds_per_image is None:
        return "[dim]n/a[/]"
    cell = f"{score.psnr:.2f}\n{score.ssim:.4f}\n"
    if score.shift is not None:  # one line each: a cell stays narrow enough for 80 columns
        cell += f"a* {score.shift.a:+.1f}\nb* {score.shift.b:+.1f}\n"
    return cell + f"[dim]{score.seconds_per_image:.2f} s[/]"


def quality_table(report: QualityReport) -> Table:
    """Rows: sets (the image count under the name); columns: methods (PSNR, SSIM, colour shift
    in Lab and seconds per image stacked in each cell); the protocol as caption. No rules
    between columns, so that the seven default methods fit 80 columns."""
    table = Table(
        title="Restoration quality: PSNR (dB), SSIM, colour shift (a*, b* against clean), "
        "seconds per image",
        caption=f"{report.protocol.caption()}; seed {report.seed}",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=0,  # the box puts one space between columns: seven methods in 80 columns
    )
    table.add_column("set")  # its name, and its image count under it: no column for so little
    for method in report.methods:
        table.add_column(method, justify="right")
    for summary in report.sets:
        cells = [_quality_cell(report, summary.name, method) for method in report.methods]
        name = Text(summary.name)
        name.append(f"\nn {summary.count}", style="dim")
        table.add_row(name, *cells)
    return table


def pattern_table(report: QualityReport) -> Table:
    """Rows: sets; columns: the clean images, then the methods; each cell the periodic pattern
    in flat regions at period 2 over period 8 (grey levels), blank without flat blocks."""
    table = Table(
        title="Periodic pattern in flat regions: amplitude at period 2 / 8 px (grey levels)",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=0,
    )
    table.add_column("set")
    for column in ("clean", *report.methods):
        table.add_column(column, justify="right")
    for summary in report.sets:
        patterns = [summary.clean_pattern]
        patterns += [report.score(summary.name, method).pattern for method in report.methods]
        cells = ["" if p is None else f"{p.period2:.2f}\n{p.period8:.2f}" for p in patterns]
        table.add_row(Text(summary.name), *cells)
    return table


def _footnotes(report: QualityReport) -> list[str]:
    """Why some cells are empty: missing packages (with the install hint), and what each
    baseline that did not apply somewhere is for."""
    notes = []
    for score in report.scores:
        if score.status is Status.UNAVAILABLE:
            line = f"{score.method} unavailable: {score.note}"
        elif score.status is Status.NOT_APPLICABLE and score.method in BASELINES:
            line = f"n/a: {score.method} is only for {BASELINES[score.method].for_tasks}"
        else:
            continue
        if line not in notes:
            notes.append(line)
    return notes


@benchmark_app.command(
    epilog="Example: measr benchmark quality --set kodak=/data/kodak24:noise:25 --limit 4"
)
def quality(
    sets: Annotated[list[str], typer.Option("--set", metavar=SET_SYNTAX, help=SET_HELP)],
    methods: Annotated[
        list[str] | None,
        typer.Option(
            **comma_list(str),
            metavar="METHOD,...",
            help=f"Methods to compare, from {', '.join(METHOD_NAMES)} (default: "
            f"{listing(DEFAULT_METHODS)}; cbm3d is slow: about 45 s per 500x500 image on two "
            "CPU cores).",
        ),
    ] = None,
    weights: WeightsOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic degradations.")] = 0,
    limit: Annotated[int | None, typer.Option(min=1, help="At most N images per set.")] = None,
    tile: TileOption = None,
    device: DeviceOption = "auto",
    passes: PassesOption = "auto",
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Write one row per set and method here.")
    ] = None,
    markdown_path: Annotated[
        Path | None, typer.Option("--markdown", help="Write a markdown table here.")
    ] = None,
) -> None:
    """Score methods on sets of images against their clean versions (PSNR/SSIM)."""
    eval_sets = [parse_set(text) for text in sets]
    images = [
        path
        for eval_set in eval_sets
        for item in list_items(eval_set)
        for path in (item.clean, item.degraded)
        if path is not None
    ]
    check_reports({"--json": json_path, "--csv": csv_path, "--markdown": markdown_path}, images)
    names = parse_method_names(methods or DEFAULT_METHODS)
    restorer = open_restorer(RuntimeOptions(weights, device)) if MEASR in names else None
    if restorer is not None:
        warn_if_untrained(restorer)
    chosen = build_methods(
        names, tile=tile, device=device, restorer=restorer, passes=parse_passes(passes)
    )
    with Progress(console=stderr(), transient=True) as progress:
        task = progress.add_task("benchmark", total=None)

        def show(event: QualityProgress) -> None:
            progress.update(
                task, completed=event.done, total=event.total, description=escape(event.set_name)
            )

        report = run_quality(eval_sets, chosen, seed=seed, limit=limit, on_image=show)
    if json_path is not None:
        write_json(json_path, report.to_dict())
    if csv_path is not None:
        write_csv(csv_path, report.rows())
    if markdown_path is not None:
        write_text(markdown_path, quality_markdown(report))
    out = stdout()
    out.print(quality_table(report))
    verdict = report.cheap_verdict()
    if verdict is not None:
        out.print(Text(verdict, style="bold"), soft_wrap=True)
    out.print(pattern_table(report))
    for note in _footnotes(report):
        # Text, not markup: a note such as "pip install measr[baselines]" holds brackets.
        out.print(Text(note, style="dim"), soft_wrap=True)


WHOLE_PHOTO = 1 << 20  # a crop larger than any photo: the whole photo


@benchmark_app.command(epilog="Example: measr benchmark prompt --val /data/val --crop 128")
def prompt(
    val: Annotated[Path, typer.Option(help="Validation root (../shared/data/val layout).")] = Path(
        "../shared/data/val"
    ),
    weights: WeightsOption = None,
    crop: Annotated[
        int,
        typer.Option(min=NAMED_REQUIREMENTS.min_size, help="Centre crop of each photo, pixels."),
    ] = 192,
    per_task: Annotated[
        int, typer.Option(min=0, help="Photos per task and folder (0: all of them).")
    ] = 0,
    device: DeviceOption = "auto",
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    markdown_path: Annotated[
        Path | None, typer.Option("--markdown", help="Write the report as markdown here.")
    ] = None,
    naming_only: Annotated[
        bool,
        typer.Option(
            "--naming-only",
            help="Only the naming of whole photos, single damage and composites (the prompt "
            "alone: minutes, where the crops' routing measures run the network).",
        ),
    ] = False,
    photos: Annotated[
        list[Path] | None,
        typer.Option(
            "--photos",
            help="Also name these clean photos (a folder; repeatable) from sources the "
            "training never saw, with every single damage and composite, reported apart.",
        ),
    ] = None,
) -> None:
    """Does the task prompt name the damage, and do the routers use it? Accuracy, atom entropy,
    task/expert mutual information and a prompt-shuffling test on the validation images; on
    whole photos, with one kind of damage and with several, whether every kind is named."""
    check_reports({"--json": json_path, "--markdown": markdown_path})
    for folder in photos or []:
        if not folder.is_dir():
            raise MeasrError(f"--photos '{folder}' is not a folder", "pass a folder of photos")
    images = [] if naming_only else prompt_validation_set(val, crop, per_task)
    if not naming_only and not images:
        raise MeasrError(f"no validation images under '{val}'", "point --val at the data")
    restorer = open_restorer(RuntimeOptions(weights, device))
    with Progress(console=stderr(), transient=True) as progress:
        task = progress.add_task("reading images", total=len(images) or None)
        report: PromptReport | NamingReport | None = None
        if images:
            report = run_prompt_report(
                restorer.model,
                images,
                restorer.name,
                lambda done, total: progress.update(task, completed=done, total=total),
            )
        progress.update(task, description="naming whole photos", total=None)

        def show(done: int) -> None:
            progress.update(task, completed=done)

        whole = read_whole_photos(
            restorer.model, prompt_validation_items(val, WHOLE_PHOTO, per_task), show
        )
        if not whole:
            raise MeasrError(f"no validation images under '{val}'", "point --val at the data")
        progress.update(task, description="naming whole photos with composite damage")
        composite = read_whole_photos(
            restorer.model, composite_items(val, WHOLE_PHOTO, per_task), show
        )
        accuracy, by_task = softmax_naming(whole)
        every_kind = presence_naming(whole + composite)
        if report is None:
            report = NamingReport(restorer.name, accuracy, by_task, every_kind)
        else:
            report.whole_photo_accuracy, report.whole_photo_accuracy_by_task = accuracy, by_task
            report.every_kind = every_kind
        if photos:
            progress.update(task, description="naming photos from other sources")
            elsewhere = (item for f in photos for item in other_source_items(f, WHOLE_PHOTO))
            report.other_sources = name_other_sources(
                restorer.model, [str(f) for f in photos], elsewhere, show
            )
    if json_path is not None:
        write_json(json_path, report.to_dict())
    if markdown_path is not None:
        write_text(markdown_path, report.markdown())
    stdout().print(report.markdown(), markup=False, highlight=False, soft_wrap=True)


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def speed_table(report: SpeedReport) -> Table:
    """One row per point; the machine and its matmul peaks as caption. No rules between
    columns and the numbers unbroken, so that it reads at 80 columns."""
    peaks = "; ".join(f"{p.device} matmul {p.gflops:.1f} GFLOP/s" for p in report.peaks)
    table = Table(
        title="MEASNet speed",
        caption=f"{report.machine.describe()}\nfloat32 peak: {peaks}; median of "
        f"{report.repeats} runs after {report.warmup} warm-up",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("point")  # "small 512 px tile 256": wraps between words
    table.add_column("run")  # "cpu measr"
    for name in ("MPix/s", "ms", "MiB", "GFLOP/s", "% peak", "x ref"):
        table.add_column(name, justify="right", no_wrap=True)
    for p in report.points:
        run = Text(f"{p.device} {p.mode.value}")
        if p.status != "ok":
            run.append(f": {p.status}", style="red")
            cells: list[str] = ["-"] * 6
        else:
            percent = None if p.fraction_of_peak is None else 100 * p.fraction_of_peak
            cells = [
                _number(p.megapixels_per_second, 3),
                _number(None if p.seconds is None else 1000 * p.seconds, 1),
                _number(p.peak_memory_mib, 1),
                _number(p.achieved_gflops, 1),
                _number(percent, 1),
                _number(p.speed_vs_reference, 2),
            ]
        point = f"{p.config} {p.size} px" + (f" tile {p.tile}" if p.tile else "")
        table.add_row(point, run, *cells)
    return table


@benchmark_app.command(
    epilog="Example: measr benchmark speed --configs small --sizes 256,512 --device cpu"
)
def speed(
    configs: Annotated[
        list[str] | None,
        typer.Option(
            **comma_list(str),
            metavar="NAME,...",
            help=f"Model configurations (default: {listing(SPEED_CONFIGS)}).",
        ),
    ] = None,
    sizes: Annotated[
        list[int] | None,
        typer.Option(
            **comma_list(int),
            metavar="PX,...",
            help=f"Square image sides (default: {listing(SPEED_SIZES)}).",
        ),
    ] = None,
    tiles: Annotated[
        list[int] | None,
        typer.Option(
            **comma_list(tile_side),
            metavar="PX|none,...",
            help="Tile sizes for the engine; none (the default): its own choice.",
        ),
    ] = None,
    device: Annotated[
        list[Device] | None,
        typer.Option(
            **comma_list(choice(Device)),
            metavar="cpu|cuda,...",
            help="Devices (default: cpu, and cuda where CUDA is present).",
        ),
    ] = None,
    modes: Annotated[
        list[Mode] | None,
        typer.Option(
            **comma_list(choice(Mode)),
            metavar="MODE,...",
            help="reference (plain eager forward), measr (the engine), compiled (the engine "
            f"with compiled steps); default: {listing(SPEED_MODES)}.",
        ),
    ] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Timed runs per point (median).")] = 3,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed runs before timing.")] = 1,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="torch CPU threads (default: torch's; 1 on a busy shared CPU)."),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(min=1, help="Seconds allowed per point (default: no limit).")
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Write one row per point here.")
    ] = None,
    markdown_path: Annotated[
        Path | None, typer.Option("--markdown", help="Write a markdown table here.")
    ] = None,
) -> None:
    """Time MEASNet per configuration, size, tile and device, against a plain forward pass and
    the machine's float32 matmul peak."""
    check_reports({"--json": json_path, "--csv": csv_path, "--markdown": markdown_path})
    with Progress(console=stderr(), transient=True) as progress:
        task = progress.add_task("speed", total=None)

        def show(event: SpeedProgress) -> None:
            write_speed_report(event.report, json_path, csv_path, markdown_path)
            point = event.point
            progress.update(
                task,
                completed=event.done,
                total=event.total,
                description=f"{point.config} {point.size}px {point.device} {point.mode.value}",
            )
            # One line per finished point: long runs (minutes per point) show where they are,
            # also in a log file, where the progress bar does not draw.
            rate = point.megapixels_per_second
            result = f"{rate:.3f} MPix/s" if rate is not None else point.status
            progress.console.print(
                f"[{event.done}/{event.total}] {point.config} {point.size}px {point.device} "
                f"{point.mode.value}: {result}",
                markup=False,
                highlight=False,
            )

        report = run_speed(
            configs or SPEED_CONFIGS,
            sizes or SPEED_SIZES,
            [side or None for side in tiles or [0]],
            [d.value for d in device] if device else None,
            modes=modes or SPEED_MODES,
            repeats=repeats,
            warmup=warmup,
            threads=threads,
            timeout_s=timeout,
            on_point=show,
        )
    write_speed_report(report, json_path, csv_path, markdown_path)
    stdout().print(speed_table(report))


def write_speed_report(
    report: SpeedReport, json_path: Path | None, csv_path: Path | None, markdown_path: Path | None
) -> None:
    """The report in each format asked for; rewritten after every point of a run."""
    if json_path is not None:
        write_json(json_path, report.to_dict())
    if csv_path is not None:
        write_csv(csv_path, report.rows())
    if markdown_path is not None:
        write_text(markdown_path, to_markdown(report))
