"""`measr models`: the weights listed in weights.txt, and whether their files are intact."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from measr.cli.render import stdout
from measr.errors import WeightsError
from measr.manifest import WeightsEntry, default_manifest_path, read_manifest, verify


def file_state(entry: WeightsEntry) -> Text:
    """'ok' when the file is there, a regular file, and matches its checksum, else what is
    wrong, in red."""
    try:
        verify(entry)
    except WeightsError:
        if not entry.file.exists():
            problem = "missing"
        elif not entry.file.is_file():  # a pipe or a device: never read
            problem = "NOT A REGULAR FILE"
        else:
            problem = "CHECKSUM MISMATCH"
        return Text(problem, style="bold red")
    return Text("ok", style="green")


def cost(entry: WeightsEntry) -> str:
    """Training cost: CPU hours and/or GPU minutes, as listed."""
    parts = []
    if "cpu_hours" in entry.fields:
        parts.append(f"{entry.fields['cpu_hours']} CPU-h")
    if "gpu_minutes" in entry.fields:
        parts.append(f"{entry.fields['gpu_minutes']} GPU-min")
    return ", ".join(parts) or "-"


def validation(entry: WeightsEntry) -> str:
    """'task psnr/ssim' per validation task, comma-separated (the line folds between them)."""
    scores = entry.validation_scores()
    return ", ".join(f"{t} {p:.2f}/{s:.4f}" for t, (p, s) in scores.items()) or "-"


def training(entry: WeightsEntry) -> Text:
    """'60 steps, 0.48 CPU-h, 16.95 GPU-min', then whether the weights are trained."""
    steps = entry.fields.get("steps")
    parts = [f"{steps} steps" if steps else "", cost(entry) if cost(entry) != "-" else ""]
    line = Text(", ".join(p for p in parts if p) or "-")
    if entry.is_trained:
        line.append("; trained")
    else:
        line.append("; NOT TRAINED", style="yellow")
    return line


def heading(entry: WeightsEntry) -> Text:
    """The entry's whole name, whether it is the default, and its file's state."""
    line = Text(entry.name, style="bold")
    if entry.is_default:
        line.append("  (default)")
    line.append("  file ")
    return line.append_text(file_state(entry))


def entry_block(entry: WeightsEntry) -> Table:
    """One entry's label/value lines: readable at any width, on a terminal or piped, as the
    values fold between words and nothing is cut."""
    block = Table.grid(padding=(0, 2))
    block.add_column(no_wrap=True)
    block.add_column(overflow="fold")
    block.add_row("  config", entry.fields.get("config", "?"))
    block.add_row("  tasks", entry.fields.get("tasks", "-").replace(",", ", "))
    block.add_row("  training", training(entry))
    block.add_row("  val PSNR/SSIM", validation(entry))
    block.add_row("  file", str(entry.file))
    return block


def models() -> None:
    """List the weights in weights.txt: configuration, tasks, training cost, validation scores,
    and whether each file is present with the right checksum."""
    entries = read_manifest()
    out = stdout()
    if not entries:
        out.print(Text(f"no weights listed in {default_manifest_path()}"))
        return
    out.print(Text(f"weights in {default_manifest_path()}"), soft_wrap=True)
    for entry in entries:
        out.print()
        out.print(heading(entry), soft_wrap=True)
        out.print(entry_block(entry))
