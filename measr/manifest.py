"""The weights manifest, `weights.txt`: the one list of shipped weights, with their checksums.

Format: one entry per line, `NAME FILE SHA256 key=value ...`; `#` starts a comment. FILE is
relative to the manifest's folder. Known keys: `config`, `tasks`, `trained` (yes/no),
`dtype`, `default` (yes on one entry) and `val.<task>=<psnr>/<ssim>` per validation task, which
`measr export` computes, and the provenance keys (`PROVENANCE_KEYS`: steps, CPU hours, data...).

Every line measr writes is checked (`line_problem`): names, keys and values keep to a few
characters (`NAME`, `KEY`, `VALUE`), so no value can hold a space, a `#` or a line break and
forge a field or a whole entry. The file is read only when it is a regular file of UTF-8 text
(a byte-order mark is allowed) of at most `MAX_MANIFEST_BYTES`.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from filelock import FileLock, Timeout

from measr.atomic import write_text
from measr.errors import MeasrError, WeightsError, quoted
from measr.io.oserrors import explain

MANIFEST_ENV = "MEASR_WEIGHTS_MANIFEST"
MANIFEST_NAME = "weights.txt"
# Where a wheel keeps the manifest and the weights it lists, inside the package (setup.py
# copies them there at build time; a checkout has no such folder).
SHIPPED_FOLDER = "shipped"
# How long an update waits for another one (another `measr export`) to finish with the manifest.
UPDATE_WAIT_SECONDS = 60.0
# A manifest lists a few entries of about 1 KB each; anything larger is not one.
MAX_MANIFEST_BYTES = 1 << 20
# What weights.txt may hold: an entry's name is also its file's name, so it starts with a letter
# or digit (never '.' or '/') and keeps to the characters every file system allows.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
KEY = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")
VALUE_CHARACTERS = r"A-Za-z0-9_.,:=+()/-"
VALUE = re.compile(rf"[{VALUE_CHARACTERS}]{{1,200}}")
FILE = re.compile(r"[\w.,:+@~()/-]{1,1000}")
SHA256 = re.compile(r"[0-9a-f]{64}")
NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64"
VALUE_RULE = "letters, digits and _ . , : = + ( ) / -, at most 200"
# The fields `measr export` computes itself, which no file's metadata or note may set.
COMPUTED_KEYS = ("config", "tasks", "trained", "dtype", "default")
# How the weights were made, copied from a weights file's metadata into its entry.
PROVENANCE_KEYS = (
    "steps", "patch", "batch", "cpu_hours", "wall_hours", "gpu_minutes", "device", "data",
    "init", "steps_total", "cpu_hours_total", "prompt", "prompt_steps", "prompt_cpu_hours",
    "prompt_wall_hours", "colour_fit", "imported_from",
)  # fmt: skip
# A validation score as `export` writes it: `val.<task>=<psnr>/<ssim>`.
SCORE = re.compile(r"\d{1,3}\.\d{1,4}/(\d\.\d{1,6}|nan)")
# Opening a named pipe for reading blocks until a writer comes: open without waiting, then check.
_NO_WAIT = getattr(os, "O_NONBLOCK", 0)


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
        """{task: (psnr, ssim)} from the `val.<task>` fields (a value that is not two numbers,
        as a hand edit may leave, is left out)."""
        scores = {}
        for key, value in self.fields.items():
            psnr, _, ssim = value.partition("/")
            try:
                score = float(psnr), float(ssim or "nan")
            except ValueError:
                continue
            if key.startswith("val."):
                scores[key[4:]] = score
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
            f"malformed weights.txt line: {quoted(line.strip())}", "expected NAME FILE SHA256"
        )
    extras = dict(p.split("=", 1) for p in parts[3:] if "=" in p)
    return WeightsEntry(parts[0], root / parts[1], parts[2].lower(), extras)


def open_regular(path: Path, what: str, hint: str) -> BinaryIO:
    """`path` opened for reading, when it is a regular file. A named pipe would block the open
    (or the read) until a writer comes, and a device such as /dev/zero never ends, so the open
    does not wait (O_NONBLOCK) and what it opened is checked before a byte is read."""
    try:
        descriptor = os.open(path, os.O_RDONLY | _NO_WAIT)
    except (OSError, ValueError) as error:
        cause = explain(error)[0] if isinstance(error, OSError) else "the path is not valid"
        raise WeightsError(f"cannot read {what} {quoted(path)}: {cause}", hint) from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        kind = "a folder" if stat.S_ISDIR(mode) else "a pipe, device or socket"
        raise WeightsError(f"{what} {quoted(path)} is not a regular file ({kind})", hint)
    if _NO_WAIT:
        os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, "rb")


def manifest_hint(path: Path) -> str:
    """What to do about a manifest that cannot be read."""
    if os.environ.get(MANIFEST_ENV) == str(path):
        return f"set {MANIFEST_ENV} to a weights.txt file, or unset it"
    return "restore weights.txt from the repository (git checkout weights.txt)"


def manifest_text(path: Path) -> str:
    """The manifest's text: a regular file of UTF-8 (a leading byte-order mark, as some editors
    write, is dropped) of at most MAX_MANIFEST_BYTES."""
    hint = manifest_hint(path)
    with open_regular(path, "weights manifest", hint) as stream:
        data = stream.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        raise WeightsError(
            f"weights manifest {quoted(path)} is larger than {MAX_MANIFEST_BYTES >> 20} MiB, "
            "which no list of weights is",
            hint,
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise WeightsError(
            f"weights manifest {quoted(path)} is not UTF-8 text (byte {error.start} is not)", hint
        ) from None


def read_manifest(path: Path | None = None) -> list[WeightsEntry]:
    """All entries of the manifest (empty when there is none)."""
    path = path or default_manifest_path()
    if not os.path.lexists(path):
        return []
    entries = (parse_line(line, path.parent) for line in manifest_text(path).splitlines())
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
    """Hex sha256 of a regular file, read in chunks."""
    digest = hashlib.sha256()
    with open_regular(path, "weights file", _LIST_WEIGHTS_FILES) as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_LIST_WEIGHTS_FILES = "weights.txt lists .safetensors files: fix this entry or re-export it"


def verify(entry: WeightsEntry) -> None:
    """Refuse a weights file that is missing, is not a regular file, or whose checksum differs
    from the manifest."""
    check_present(entry)
    check_checksum(entry, sha256_of(entry.file))


def check_present(entry: WeightsEntry) -> None:
    """Refuse an entry whose file is missing."""
    if not entry.file.exists():
        raise WeightsError(
            f"weights file '{entry.file}' listed as '{entry.name}' is missing",
            "restore it from the repository (git checkout / git lfs pull) or re-export it",
        )


def check_checksum(entry: WeightsEntry, actual: str) -> None:
    """Refuse the weights of `entry` whose bytes hash to `actual`, unless that is its sha256."""
    if actual != entry.sha256:
        raise WeightsError(
            f"weights '{entry.file}' do not match their checksum in weights.txt "
            f"(expected {entry.sha256[:12]}..., got {actual[:12]}...)",
            "the file is corrupt or was replaced: restore it, or re-export it with `measr export`",
        )


def check_name(name: str) -> None:
    """Refuse a name that weights.txt cannot hold, or that is not a plain file name (a space,
    a path, a leading dot)."""
    if not NAME.fullmatch(name):
        raise MeasrError(
            f"{quoted(name)} cannot name weights", f"use {NAME_RULE} characters", option="name"
        )


def field_problem(key: str, value: str) -> str | None:
    """Why `key=value` cannot be a field of weights.txt, or None."""
    if not KEY.fullmatch(key):
        return f"the key {quoted(key)} is not letters, digits, '.', '_' and '-'"
    if not VALUE.fullmatch(value):
        return f"the value {quoted(value)} of {key} is not {VALUE_RULE} characters"
    return None


def clean_value(value: str) -> str:
    """`value` with every run of characters that weights.txt does not allow (spaces, line
    breaks, '#') replaced by '_', cut to a length it allows: for values measr did not type."""
    cleaned = re.sub(f"[^{VALUE_CHARACTERS}]+", "_", value)[:200]
    return cleaned or "_"


def line_problem(entry: WeightsEntry, file: Path) -> str | None:
    """Why `entry`, its file written as `file`, cannot be a line of weights.txt, or None."""
    if not NAME.fullmatch(entry.name):
        return f"the name {quoted(entry.name)} is not {NAME_RULE} characters"
    if not FILE.fullmatch(file.as_posix()):
        return f"the path {quoted(file)} holds a space or a character weights.txt does not allow"
    if not SHA256.fullmatch(entry.sha256):
        return f"{quoted(entry.sha256)} is not a sha256"
    problems = (field_problem(key, value) for key, value in entry.fields.items())
    return next((problem for problem in problems if problem), None)


def check_listable(entry: WeightsEntry, path: Path | None = None) -> None:
    """Refuse an entry that cannot be a line of the manifest at `path` (`line_problem`)."""
    path = path or default_manifest_path()
    problem = line_problem(entry, _relative_file(entry.file, path.parent))
    if problem:
        raise WeightsError(f"cannot list weights {quoted(entry.name)} in weights.txt: {problem}")


def upsert_entry(
    entry: WeightsEntry, path: Path | None = None, *, staged: Path | None = None
) -> None:
    """Add an entry to the manifest, replacing any entry of the same name; keep comments.
    When the new entry is the default, no other entry stays default. Two updates at once take
    turns (a lock file beside the manifest), so neither loses the other's entry.

    `staged`, a file written beside the entry's file under another name, is renamed to it
    once the manifest lists it, under the same lock: an update that fails or is killed while
    it waits leaves the old file and the old line as they were (and at worst `staged`)."""
    path = path or default_manifest_path()
    check_listable(entry, path)
    try:
        with FileLock(update_lock_path(path), timeout=UPDATE_WAIT_SECONDS):
            _rewrite_with(entry, path)
            if staged is not None:
                os.replace(staged, entry.file)
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
    lines = manifest_text(path).splitlines() if os.path.lexists(path) else [_HEADER]
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
    file = _relative_file(entry.file, root)
    return WeightsEntry(entry.name, file, entry.sha256, entry.fields).to_line()


def _relative_file(file: Path, root: Path) -> Path:
    """`file` as the manifest in `root` writes it: relative to `root`."""
    return Path(os.path.relpath(file.resolve(), root.resolve()))


_HEADER = "# measr weights manifest: NAME FILE SHA256 key=value ... (see measr/manifest.py)"
