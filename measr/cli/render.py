"""Rich rendering shared by the commands: the error line, the untrained-weights warning, the
restore summary, usage bars and tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from measr.errors import MeasrError, printable, quoted

# Types only: the engine imports PyTorch (seconds), and `measr --help` and the error line must
# not wait for it.
if TYPE_CHECKING:
    from collections.abc import Sequence

    from measr.engine import Restoration, Restorer, RoutingSummary
    from measr.engine.passes import RestorePass
    from measr.jobs.batch import BatchReport

_EIGHTHS = " ▏▎▍▌▋▊▉"


def stdout() -> Console:
    """Results go to stdout (created per call so test runners' captured streams are used)."""
    return Console(highlight=False)


def stderr() -> Console:
    """Errors, warnings and progress go to stderr."""
    return Console(stderr=True, highlight=False)


def progress_bar(console: Console, visible: bool = True) -> Progress:
    """A transient bar for work counted in steps (images of a batch, tiles of a photo): what,
    bar, done/total, elapsed and the estimated time left. Drawn only on a terminal (piped,
    even its empty line would be output), and not at all unless `visible` (--quiet, --json)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not (visible and console.is_terminal),
    )


def print_error(error: MeasrError) -> None:
    """`error: <message> (<hint>; <flag>)` in red, on one line, on stderr: the flag of the value
    at fault, when the error names one."""
    stderr().print(Text(f"error: {error_line(error)}", style="red"), soft_wrap=True)


def error_line(error: MeasrError) -> str:
    """The error's message and hint, with the command-line flag of its value added."""
    if error.option is None:
        return error.one_line()
    flag = "--" + error.option.replace("_", "-")
    return f"{error.message} ({error.hint}; {flag})" if error.hint else f"{error.message} ({flag})"


def untrained_warning(restorer: Restorer) -> Text | None:
    """The notice every run with untrained weights must show, or None for trained weights."""
    if restorer.is_trained is not False:
        return None
    return Text(
        f"using UNTRAINED weights '{restorer.name}': the output shows what the pipeline does, "
        "not restoration quality",
        style="yellow",
    )


def warn_if_untrained(restorer: Restorer) -> None:
    """Print the untrained-weights notice on stderr when it applies."""
    warning = untrained_warning(restorer)
    if warning is not None:
        stderr().print(warning, soft_wrap=True)


def warn_if_unverified(restorer: Restorer) -> None:
    """Say on stderr when the weights came from a file no weights.txt lists: nothing checked
    them against a checksum."""
    if restorer.unverified_file is not None:
        notice = (
            f"warning: weights {quoted(restorer.unverified_file)} are not listed in "
            "weights.txt, so no checksum verified them"
        )
        stderr().print(Text(notice, style="yellow"), soft_wrap=True)


def note(text: str) -> None:
    """`note: <text>` in yellow, on one line, on stderr."""
    stderr().print(Text(f"note: {text}", style="yellow"), soft_wrap=True)


def note_backend(restorer: Restorer) -> None:
    """Say on stderr why another backend than the one asked for runs (e.g. a missing extra),
    and, as they come, what the engine has to tell (a conversion starting, a faster runtime
    missing)."""
    if restorer.backend_note:
        note(restorer.backend_note)
    restorer.on_notice = note


def percent(share: float) -> str:
    """0.413 -> '41%'."""
    return f"{share * 100:.0f}%"


def degradation_mix(summary: RoutingSummary, count: int = 2) -> str:
    """The prompt's dominant atoms: 'atoms 3 (41%), 7 (22%)' (atoms carry no labels)."""
    atoms = ", ".join(f"{atom} ({percent(w)})" for atom, w in summary.dominant_atoms(count))
    return f"atoms {atoms}"


def most_used_experts(summary: RoutingSummary) -> str:
    """Each STP-G-MESE level's two most-selected experts: 'experts L1 2+5, L2 0+1, L3 4+3'."""
    levels = [
        f"L{level.removeprefix('encoder')} {'+'.join(map(str, summary.top_experts(level)))}"
        for level in summary.pixel_usage
    ]
    return "experts " + ", ".join(levels)


def tiling(restoration: Restoration) -> str:
    """'whole' or '9 tiles of 256 px' (with '(no shared context)' when switched off)."""
    if restoration.tile is None:
        return "whole"
    shared = "" if restoration.shared_context else " (no shared context)"
    return f"{restoration.tiles} tiles of {restoration.tile} px{shared}"


def in_pieces(restoration: Restoration) -> str:
    """'as a whole' or 'in 9 tiles of 256 px', for a sentence."""
    return "as a whole" if restoration.tile is None else f"in {tiling(restoration)}"


def gigabytes(size: int) -> str:
    """4_500_000_000 -> '4.5 GB'; under a gigabyte in MB."""
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


# The precisions a restore line names (float32, the usual one, goes unnamed).
PRECISION_WORDS = {"float16": " in fp16", "bfloat16": " in bf16"}
# The runtimes a restore line names (PyTorch, the usual one, goes unnamed).
RUNTIME_NAMES = {"openvino": "OpenVINO", "onnx": "ONNX Runtime"}


def restore_line(
    source: str,
    output: str,
    size: tuple[int, int],
    restoration: Restoration,
    restorer: Restorer,
    *,
    strength: float | None = None,
    routing_map: str | None = None,
) -> Text:
    """The summary of `measr restore` (and of each photo of a piped `measr batch`), one
    sentence a user reads: what was written (the paths as given), how large, how long, on
    what, with which weights, what damage the prompt found, and the strength and routing map
    when asked for."""
    from measr.engine.strength import FULL_STRENGTH  # loaded by now: the restoration used it

    # Names from the file system can hold line breaks and terminal escape sequences.
    source, output = printable(source), printable(output)
    height, width = size
    precision = PRECISION_WORDS.get(restoration.precision, "")
    runtime = RUNTIME_NAMES.get(restoration.backend)
    on = f"{restorer.device} with {runtime}" if runtime else str(restorer.device)
    sentence = (
        f"Restored {source} to {output}: {width}x{height} in {restoration.seconds:.2f} s on "
        f"{on}{precision} ({in_pieces(restoration)}) with weights "
        f"{restorer.name} ({restorer.config.name})"
    )
    if restoration.left_as_is is not None:
        return left_as_is_line(source, output, restoration, restorer)
    if restoration.damage is not None:
        words = restoration.damage.words()
        # "found haze 91 %", "found unsure: ...", but "the photo looks clean (93 %)"
        sentence += f"; the photo {words}" if words.startswith("looks") else f"; found {words}"
    if restoration.passes:
        sentence += passes_words(restoration.passes)
    if strength is not None and strength != FULL_STRENGTH:
        sentence += f"; blended with the input at --strength {strength:g}"
    if routing_map is not None:
        sentence += f"; routing map in {printable(routing_map)}"
    line = Text(sentence + ".")
    if untrained_warning(restorer) is not None:
        line.append(" The weights are UNTRAINED.", style="yellow")
    return line


def passes_words(passes: Sequence[RestorePass]) -> str:
    """What the passes after the first found, and what the prompt reads in the result:
    '; pass 2 found noise 61 % (sigma ~9); after 2 passes the photo looks clean (80 %)'."""
    words = ""
    for number, step in enumerate(passes[1:], 2):
        if step.left_as_is is not None:
            words += f"; pass {number} left it as it is ({step.left_as_is})"
        elif not step.kept:
            words += f"; pass {number} undone (the prompt read its output as more damaged)"
        elif step.found is not None:
            words += f"; pass {number} found {step.found.words()}"
    kept = [step for step in passes if step.kept and step.left_as_is is None]
    if kept and kept[-1].after is not None:
        after = kept[-1].after.words()
        count = f"{len(kept)} pass{'es' if len(kept) > 1 else ''}"
        words += f"; after {count} " + (
            f"the photo {after}" if after.startswith("looks") else f"still {after}"
        )
    return words


def left_as_is_line(source: str, output: str, restoration: Restoration, restorer: Restorer) -> Text:
    """The sentence for a photo left as it is (`measr.engine.harm`): what was found, and that
    these weights do not improve it yet."""
    from measr.engine.damage import KIND_WORDS  # loaded by now: the restoration used it

    kind = restoration.left_as_is or ""
    kind_words = KIND_WORDS.get(kind, kind)
    found = restoration.damage.words() if restoration.damage else kind_words
    gain = restorer.gains.get(kind, 0.0)
    return Text(
        f"Left {source} as it is in {output}: found {found}; the weights {restorer.name} do not "
        f"improve {kind_words} yet ({gain:+.1f} dB against the damaged photos in validation), "
        "so restoring could only make it worse. --force restores it anyway."
    )


def restore_details(restoration: Restoration) -> Text:
    """What `--verbose` adds under the sentence: the memory the plan allowed, the prompt's
    dominant atoms and each level's most-used experts."""
    parts = [f"memory planned {gigabytes(restoration.memory_estimate)}"]
    if restoration.routing is not None:
        parts.append(degradation_mix(restoration.routing))
        parts.append(most_used_experts(restoration.routing))
    return Text("  " + "; ".join(parts), style="dim")


def usage_bar(share: float, width: int) -> str:
    """A horizontal bar `width` characters long at 100%, in eighths of a character."""
    eighths = round(max(0.0, min(share, 1.0)) * width * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[rest] if rest else "")).ljust(width)


def histogram_cell(share: float, width: int = 6) -> Text:
    """A bar and its percentage for one table cell."""
    return Text.assemble((usage_bar(share, width), "cyan"), f" {share * 100:4.1f}%")


# A usage cell's percentage, ' 41%', and the least room its bar may have.
_USAGE_DIGITS = 4
_USAGE_MIN_BAR = 1


def usage_table(title: str, summary: RoutingSummary, width: int = 80) -> Table:
    """Expert usage of every router: STP-G-MESE levels (pixels, both top-k slots counted) and
    FD-MEE bands (tiles, both top-k slots), one column per expert, each a bar and a whole
    percentage; the bars are as long as `width` columns allow (80 when piped)."""
    from measr.engine.routing import shares  # loaded by now: the summary comes from there

    histograms = {**summary.pixel_usage, **summary.band_usage}
    experts = max(len(h) for h in histograms.values())
    router = max(len("router"), *map(len, histograms))
    # Every column costs its cell, a space either side and a rule; the table one rule more.
    cell = (width - 1 - (router + 3)) // experts - 3
    bar = max(_USAGE_MIN_BAR, cell - 1 - _USAGE_DIGITS)
    caption = (
        "encoder levels: share of per-pixel top-k selections; decoder bands: share of per-tile "
        "top-k choices (not gate-weighted)"
    )
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    table.add_column("router", no_wrap=True, min_width=router)
    for expert in range(experts):
        table.add_column(f"e{expert}", no_wrap=True, justify="right")
    for name, counts in histograms.items():
        cells = [
            Text.assemble((usage_bar(share, bar), "cyan"), f" {share * 100:3.0f}%")
            for share in shares(counts)
        ]
        table.add_row(name, *cells)
    return table


def atom_table(summary: RoutingSummary, limit: int = 10) -> Table:
    """The prompt's atom weights as bars, heaviest first (at most `limit` atoms)."""
    table = Table(title="task prompt: weight of each atom", title_justify="left")
    table.add_column("atom", justify="right")
    table.add_column("weight")
    for atom, weight in summary.dominant_atoms(limit):
        table.add_row(str(atom), histogram_cell(weight, width=30))
    return table


def batch_table(report: BatchReport) -> Table:
    """The end-of-batch summary: how many done, skipped and failed, and the time taken."""
    table = Table(title="measr batch", title_justify="left")
    for column in ("done", "skipped", "failed", "time"):
        table.add_column(column, justify="right")
    failed = report.count("failed")
    table.add_row(
        str(report.count("done")),
        str(report.count("skipped")),
        Text(str(failed), style="red" if failed else ""),
        f"{report.seconds:.1f} s",
    )
    return table
