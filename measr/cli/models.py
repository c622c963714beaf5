"""`measr models`: the weights listed in weights.txt, and whether their files are intact."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from measr.cli.render import stdout
from measr.errors import WeightsError
from measr.manifest import WeightsEntry, default_manifest_path, read_manifest, verify

# How every entry's val.* figures are measured: as `measr export` scores weights before it lists
# them (`measr.training.export.Scoring`: 192 px centre crops of every validation photo).
VALIDATION_PROTOCOL = (
    "val PSNR (dB)/SSIM: the mean over every validation photo (192 px centre crops, seeded "
    "degradations), as measr export scores weights"
)


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


def validation(entry: WeightsEntry) -> str:
    """'task psnr/ssim' per validation task, comma-separated (the line folds between them)."""
    scores = entry.validation_scores()
    return ", ".join(f"{t} {p:.2f}/{s:.4f}" for t, (p, s) in scores.items()) or "-"


def amounts(steps: str | None, hours: str | None) -> str:
    """'3613 steps, 9.39 CPU-h' from the fields that are there."""
    parts = [f"{steps} steps" if steps else "", f"{hours} CPU-h" if hours else ""]
    return ", ".join(p for p in parts if p)


def training(entry: WeightsEntry) -> Text:
    """What the weights cost, all stages together: '3613 steps, 9.39 CPU-h, 16.95 GPU-min in
    all (the last run 60 steps, 0.48 CPU-h); then the prompt alone 4555 steps, 1.9 CPU-h',
    then whether the weights are trained. An entry without totals shows its one run."""
    fields = entry.fields
    last = amounts(fields.get("steps"), fields.get("cpu_hours"))
    totals = amounts(fields.get("steps_total"), fields.get("cpu_hours_total"))
    gpu = f"{fields['gpu_minutes']} GPU-min" if "gpu_minutes" in fields else ""
    text = ", ".join(p for p in (totals or last, gpu) if p) or "-"
    if totals:
        text += " in all"
        if last and last != totals:
            text += f" (the last run {last})"
    prompt = amounts(fields.get("prompt_steps"), fields.get("prompt_cpu_hours"))
    if prompt:
        text += f"; then the prompt alone {prompt}"
    line = Text(text)
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
    out.print(Text(VALIDATION_PROTOCOL, style="dim"))
    for entry in entries:
        out.print()
        out.print(heading(entry), soft_wrap=True)
        out.print(entry_block(entry))
