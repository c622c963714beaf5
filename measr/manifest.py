"""The weights manifest, `weights.txt`: the one list of shipped weights, with their checksums.

Format: one entry per line, `NAME FILE SHA256 key=value ...`; `#` starts a comment. FILE is
relative to the manifest's folder. Values contain no spaces (use `_` or `,`). Known keys:
`config`, `tasks`, `steps`, `cpu_hours`, `gpu_minutes`, `data`, `trained` (yes/no), `default`
(yes on one entry), and `val.<task>=<psnr>/<ssim>` per validation task.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from measr.atomic import write_text
from measr.errors import WeightsError

MANIFEST_ENV = "MEASR_WEIGHTS_MANIFEST"
MANIFEST_NAME = "weights.txt"
# Where a wheel keeps the manifest and the weights it lists, inside the package (setup.py
# copies them there at build time; a checkout has no such folder).
SHIPPED_FOLDER = "shipped"
# How long an update waits for another one (another `measr export`) to finish with the manifest.
UPDATE_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class WeightsEntry:
    """One line of the manifest."""

    name: str
    file: Path
    sha256: str
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def is_default(self) -> bool:
        return self.fields.get("default") == "yes"

    @property
    def is_trained(self) -> bool:
        return self.fields.get("trained", "yes") == "yes"

    def validation_scores(self) -> dict[str, tuple[float, float]]:
        """{task: (psnr, ssim)} from the `val.<task>` fields."""
        scores = {}
        for key, value in self.fields.items():
            if key.startswith("val."):
                psnr, _, ssim = value.partition("/")
                scores[key[4:]] = (float(psnr), float(ssim or "nan"))
        return scores

    def to_line(self) -> str:
        extras = " ".join(f"{k}={v}" for k, v in self.fields.items())
        return f"{self.name} {self.file.as_posix()} {self.sha256} {extras}".rstrip()


def default_manifest_path() -> Path:
    """`$MEASR_WEIGHTS_MANIFEST`, else the copy a wheel carries as package data, else the
    `weights.txt` of the checkout measr runs from."""
    override = os.environ.get(MANIFEST_ENV)
    if override:
        return Path(override)
    package = Path(__file__).resolve().parent
    shipped = package / SHIPPED_FOLDER / MANIFEST_NAME
    return shipped if shipped.exists() else package.parent / MANIFEST_NAME


def parse_line(line: str, root: Path) -> WeightsEntry | None:
    """One manifest line as an entry (None for blank and comment lines)."""
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    parts = text.split()
    if len(parts) < 3 or len(parts[2]) != 64:
        raise WeightsError(
            f"malformed weights.txt line: '{line.strip()}'", "expected NAME FILE SHA256"
        )
    extras = dict(p.split("=", 1) for p in parts[3:] if "=" in p)
    return WeightsEntry(parts[0], root / parts[1], parts[2].lower(), extras)


def read_manifest(path: Path | None = None) -> list[WeightsEntry]:
    """All entries of the manifest (empty when there is none)."""
    path = path or default_manifest_path()
    if not path.exists():
        return []
    entries = (parse_line(line, path.parent) for line in path.read_text().splitlines())
    return [e for e in entries if e is not None]


def find_entry(name: str | None, path: Path | None = None) -> WeightsEntry:
    """The entry called `name`, or the default entry when `name` is None."""
    entries = read_manifest(path)
    if not entries:
        raise WeightsError(
            "no weights are listed in weights.txt",
            "train and export some with `measr train` and `measr export`, or pass --weights FILE",
        )
    if name is None:
        defaults = [e for e in entries if e.is_default]
        return defaults[0] if defaults else entries[0]
    for entry in entries:
        if entry.name == name:
            return entry
    raise WeightsError(
        f"no weights called '{name}' in weights.txt",
        f"choose one of {', '.join(e.name for e in entries)} (see `measr models`)",
    )


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(entry: WeightsEntry) -> None:
    """Refuse a weights file that is missing or whose checksum differs from the manifest."""
    if not entry.file.exists():
        raise WeightsError(
            f"weights file '{entry.file}' listed as '{entry.name}' is missing",
            "restore it from the repository (git checkout / git lfs pull) or re-export it",
        )
    actual = sha256_of(entry.file)
    if actual != entry.sha256:
        raise WeightsError(
            f"weights '{entry.file}' do not match their checksum in weights.txt "
            f"(expected {entry.sha256[:12]}..., got {actual[:12]}...)",
            "the file is corrupt or was replaced: restore it, or re-export it with `measr export`",
        )


def upsert_entry(entry: WeightsEntry, path: Path | None = None) -> None:
    """Add an entry to the manifest, replacing any entry of the same name; keep comments.
    When the new entry is the default, no other entry stays default. Two updates at once take
    turns (a lock file beside the manifest), so neither loses the other's entry."""
    path = path or default_manifest_path()
    try:
        with FileLock(update_lock_path(path), timeout=UPDATE_WAIT_SECONDS):
            _rewrite_with(entry, path)
    except Timeout:
        raise WeightsError(
            f"{path} is being updated by another process, for {UPDATE_WAIT_SECONDS:.0f} s now",
            "wait for the other `measr export` to finish, then export again",
        ) from None


def update_lock_path(path: Path) -> Path:
    """The hidden lock file that serialises updates of the manifest at `path`."""
    return path.with_name(f".{path.name}.lock")


def _rewrite_with(entry: WeightsEntry, path: Path) -> None:
    """`upsert_entry`'s read, change and atomic write, under its lock."""
    lines = path.read_text().splitlines() if path.exists() else [_HEADER]
    kept = []
    for line in lines:
        existing = parse_line(line, path.parent)
        if existing is None:
            kept.append(line)
        elif existing.name != entry.name:
            if entry.is_default and existing.is_default:
                fields = {k: v for k, v in existing.fields.items() if k != "default"}
                existing = WeightsEntry(existing.name, existing.file, existing.sha256, fields)
            kept.append(_relative_line(existing, path.parent))
    kept.append(_relative_line(entry, path.parent))
    write_text(path, "\n".join(kept) + "\n")


def _relative_line(entry: WeightsEntry, root: Path) -> str:
    file = Path(os.path.relpath(entry.file.resolve(), root.resolve()))
    return WeightsEntry(entry.name, file, entry.sha256, entry.fields).to_line()


_HEADER = "# measr weights manifest: NAME FILE SHA256 key=value ... (see measr/manifest.py)"
