"""`measr models`: the weights listed in weights.txt, and whether their files are intact."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from measr.cli.render import stdout
from measr.errors import WeightsError
from measr.manifest import WeightsEntry, default_manifest_path, read_manifest, verify


def file_state(entry: WeightsEntry) -> Text:
    """'ok' when the file is there and matches its checksum, else what is wrong, in red."""
    try:
        verify(entry)
    except WeightsError:
        problem = "missing" if not entry.file.exists() else "CHECKSUM MISMATCH"
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
    """'task psnr/ssim' per validation task, one per line."""
    scores = entry.validation_scores()
    return "\n".join(f"{t} {p:.2f}/{s:.4f}" for t, (p, s) in scores.items()) or "-"


def models_table(entries: list[WeightsEntry]) -> Table:
    """One row per manifest entry."""
    table = Table(title=f"weights in {default_manifest_path()}", title_justify="left")
    for column in (
        "name",
        "config",
        "tasks",
        "steps",
        "cost",
        "trained",
        "default",
        "val PSNR/SSIM",
        "file",
    ):
        table.add_column(column)
    for entry in entries:
        trained = Text("yes") if entry.is_trained else Text("NO", style="yellow")
        table.add_row(
            entry.name,
            entry.fields.get("config", "?"),
            entry.fields.get("tasks", "-").replace(",", ", "),
            entry.fields.get("steps", "-"),
            cost(entry),
            trained,
            "yes" if entry.is_default else "",
            validation(entry),
            file_state(entry),
        )
    return table


def models() -> None:
    """List the weights in weights.txt: configuration, tasks, training cost, validation scores,
    and whether each file is present with the right checksum."""
    entries = read_manifest()
    if not entries:
        stdout().print(f"no weights listed in {default_manifest_path()}")
        return
    stdout().print(models_table(entries))
