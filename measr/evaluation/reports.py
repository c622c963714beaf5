"""Writing benchmark reports: JSON (everything) and CSV (one row per result), atomically."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from measr import atomic
from measr.errors import ExitCode, MeasrError


def _json_safe(value: Any) -> Any:
    """Infinite and NaN floats as the strings "inf", "-inf", "nan" (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_text(path: str | Path, text: str) -> None:
    """Write a whole file or nothing (`measr.atomic`), its folder created."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, text)
    except OSError as error:
        raise MeasrError(
            f"cannot write '{path}': {error.strerror or error}",
            "choose a writable path",
            ExitCode.INPUT,
        ) from None


def write_json(path: str | Path, document: Mapping[str, Any]) -> None:
    """A report as indented JSON; infinite values (PSNR of identical images) as "inf"."""
    text = json.dumps(_json_safe(document), indent=2, allow_nan=False) + "\n"
    write_text(Path(path), text)


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows of a report as CSV with a header from the first row's keys (None -> empty)."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    write_text(Path(path), buffer.getvalue())
