"""weights.txt against hostile input (issue 36): what a weights file's metadata, an export's
options, or the manifest itself can do to it. No value forges a field or an entry, no file
makes itself the default, every file is checked as it is loaded, and a manifest or an entry
that is not a regular file of UTF-8 text is one error line, never a hang or a traceback."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from filelock import FileLock
from safetensors.torch import save_file
from test_weights_safety import assert_one_error_line, measr
from tiny_weights import write_picture, write_weights

import measr.manifest as manifest_module
from measr import Restorer, build_model
from measr.manifest import MANIFEST_ENV, read_manifest, sha256_of
from measr.weights import CONFIG_KEY, read_metadata, save_weights


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary folder whose weights.txt lists a tiny checkpoint, 'tiny-test', as the
    default."""
    monkeypatch.setenv(MANIFEST_ENV, str(write_weights(tmp_path)))
    return tmp_path


def weights_with(folder: Path, name: str, **metadata: str) -> Path:
    """Tiny weights (seed 3) whose metadata holds `metadata` besides the configuration."""
    torch.manual_seed(3)
    path = folder / "incoming" / f"{name}.safetensors"
    save_weights(build_model("tiny"), path, metadata=metadata)
    return path


def export(folder: Path, source: Path, *options: str) -> Any:
    return measr("export", source, "--out-dir", folder / "weights", *options)


# --- what a weights file's metadata can do (cases 1, 2, 41) ------------------------------------


def test_a_line_break_in_metadata_forges_no_entry(folder: Path) -> None:
    sha = sha256_of(folder / "tiny-test.safetensors")
    forged = f"x\npwned tiny-test.safetensors {sha} config=tiny trained=yes default=yes"
    source = weights_with(folder, "newline", steps="7", data=forged, origin=forged)
    result = export(folder, source, "--name", "incoming")
    assert result.exit_code == 0, result.output
    entries = read_manifest(folder / "weights.txt")
    assert [e.name for e in entries] == ["tiny-test", "incoming"]
    assert [e.name for e in entries if e.is_default] == ["tiny-test"]
    incoming = entries[1]
    assert incoming.fields["steps"] == "7", "known provenance is kept"
    assert "origin" not in incoming.fields, "unknown metadata keys are not copied"
    assert "\n" not in incoming.fields["data"] and " " not in incoming.fields["data"]
    assert len((folder / "weights.txt").read_text().splitlines()) == 2


def test_metadata_cannot_make_weights_the_default(folder: Path) -> None:
    source = weights_with(folder, "claims-default", default="yes", trained="yes")
    assert export(folder, source, "--name", "claims-default").exit_code == 0
    entries = {e.name: e for e in read_manifest(folder / "weights.txt")}
    assert not entries["claims-default"].is_default and entries["tiny-test"].is_default
    restorer = Restorer.from_name(device="cpu", threads=1)
    assert restorer.name == "tiny-test"


def test_metadata_cannot_set_the_fields_export_computes(folder: Path) -> None:
    source = weights_with(folder, "claims-small", config="small", tasks="six", dtype="int8")
    assert export(folder, source, "--name", "claims-small", "--tasks", "three").exit_code == 0
    entry = {e.name: e for e in read_manifest(folder / "weights.txt")}["claims-small"]
    assert entry.fields["config"] == "tiny" and entry.fields["tasks"] == "three"
    assert entry.fields["dtype"] == "float16"
    assert "default" not in read_metadata(entry.file), "the file says nothing of defaults"


def test_exporting_makes_the_default_only_when_asked(folder: Path) -> None:
    source = weights_with(folder, "asked")
    assert export(folder, source, "--name", "asked", "--default").exit_code == 0
    entries = {e.name: e for e in read_manifest(folder / "weights.txt")}
    assert entries["asked"].is_default and not entries["tiny-test"].is_default


# --- what an export's options can do (cases 14, 43, 30) ----------------------------------------


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        (["--name", "my weights"], ["'my weights' cannot name weights", "--name"]),
        (["--name", "../../escaped"], ["'../../escaped' cannot name weights", "--name"]),
        (["--name", ".hidden"], ["cannot name weights", "--name"]),
        (["--name", "x\ny"], ["'x\\ny' cannot name weights", "--name"]),
        (["--name", "ok", "--half", "maybe"], ["'maybe'", "auto, yes, no", "--half"]),
        (["--name", "ok", "--note", "foo"], ["'foo' is not KEY=VALUE", "--note"]),
        (["--name", "ok", "--note", "gpu=a b"], ["'a b' of gpu", "--note"]),
        (["--name", "ok", "--note", "default=yes"], ["sets default", "--note"]),
        (["--name", "ok", "--note", "val.noise=99.00/1.0000"], ["sets val.noise", "--note"]),
        (["--name", "ok", "--tasks", "nine"], ["unknown task mix 'nine'"]),
    ],
    ids=["space", "path", "dot", "newline", "half", "note", "note-space", "default", "val", "mix"],
)
def test_a_bad_export_option_is_one_error_line_and_writes_nothing(
    folder: Path, options: list[str], fragments: list[str]
) -> None:
    before = (folder / "weights.txt").read_bytes()
    result = export(folder, weights_with(folder, "source"), *options)
    assert_one_error_line(result, 2, *fragments)
    assert (folder / "weights.txt").read_bytes() == before
    assert not (folder / "weights").exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["incoming", "tiny-test.safetensors", "weights.txt"]
    ), "nothing written beside or above the folder"


@pytest.mark.parametrize("format", ["onnx", "openvino"])
def test_a_graph_export_takes_a_plain_name_too(folder: Path, format: str) -> None:
    source = weights_with(folder, "source")
    result = export(folder, source, "--name", "../../escaped", "--format", format)
    assert_one_error_line(result, 2, "cannot name weights")
    assert not list(folder.parent.glob("escaped*"))


def test_an_out_dir_with_a_space_is_refused_before_anything_is_written(folder: Path) -> None:
    result = measr(
        "export", weights_with(folder, "s"), "--name", "s", "--out-dir", folder / "my weights"
    )
    assert_one_error_line(result, 3, "cannot list weights 's'", "holds a space")
    assert not (folder / "my weights").exists()


# --- the file an entry names is the file it checks (cases 7, 11) -------------------------------


def test_the_bytes_loaded_are_the_bytes_whose_checksum_was_checked(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listed file is replaced by other weights right after its checksum is computed:
    what loads is what was checked, never the replacement."""
    listed = folder / "tiny-test.safetensors"
    torch.manual_seed(0)
    expected = build_model("tiny").state_dict()  # write_weights' network
    other = weights_with(folder, "other")
    real_sha256 = hashlib.sha256

    class SwapAfterHashing:
        def __init__(self, data: bytes = b"", **options: Any) -> None:
            self.digest = real_sha256(data, **options)

        def update(self, data: bytes) -> None:
            self.digest.update(data)

        def hexdigest(self) -> str:
            if other.exists():
                os.replace(other, listed)
            return self.digest.hexdigest()

    monkeypatch.setattr(hashlib, "sha256", SwapAfterHashing)
    restorer = Restorer.from_name("tiny-test", device="cpu", threads=1)
    assert not other.exists(), "the file was replaced after it was hashed"
    for name, tensor in restorer.model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


def test_a_reexport_that_cannot_update_weights_txt_leaves_the_listed_file(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another export holds weights.txt's lock for longer than this one waits (as when this
    one is killed while it waits): the file the default entry names is the one it checks."""
    listed = folder / "tiny-test.safetensors"
    before = listed.read_bytes()
    monkeypatch.setattr(manifest_module, "UPDATE_WAIT_SECONDS", 0.2)
    with FileLock(manifest_module.update_lock_path(folder / "weights.txt")):
        result = measr(
            "export", weights_with(folder, "other"), "--name", "tiny-test", "--out-dir", folder
        )
    assert_one_error_line(result, 3, "is being updated by another process")
    assert listed.read_bytes() == before
    assert sorted(p.name for p in folder.glob("*.safetensors*")) == ["tiny-test.safetensors"]
    assert not list(folder.glob(".tiny-test*")), "no temporary file left"
    restored = measr("restore", write_picture(folder / "a.png"), "--threads", "1")
    assert restored.exit_code == 0, restored.output


def test_a_reexport_replaces_the_file_and_its_checksum_together(folder: Path) -> None:
    listed = folder / "tiny-test.safetensors"
    result = measr(
        "export", weights_with(folder, "other"), "--name", "tiny-test", "--out-dir", folder
    )
    assert result.exit_code == 0, result.output
    (entry,) = read_manifest(folder / "weights.txt")
    assert entry.sha256 == sha256_of(listed)
    assert not list(folder.glob(".tiny-test*"))


# --- weights that are not floating point, checked on the header (cases 38-40) -----------------


@pytest.mark.parametrize(
    ("dtype", "kind"),
    [(torch.int32, "int32"), (torch.bool, "bool"), (torch.complex64, "complex64")],
)
def test_weights_that_are_not_floating_point_are_refused(
    folder: Path, dtype: torch.dtype, kind: str
) -> None:
    model = build_model("tiny")
    tensors = {}
    for name, tensor in model.state_dict().items():
        value = tensor.to(dtype)
        if dtype.is_complex:
            value = torch.complex(torch.full_like(tensor, float("nan")), tensor)
        tensors[name] = value.contiguous()
    odd = folder / f"{kind}.safetensors"
    save_file(tensors, str(odd), metadata={CONFIG_KEY: model.config.to_json()})
    result = measr("restore", write_picture(folder / "a.png"), "--weights", odd, "--threads", "1")
    line = assert_one_error_line(result, 3, f"{kind}.safetensors", f"hold {kind} numbers")
    assert "float32" in line and "Warning" not in result.output
    assert not (folder / "a_restored.png").exists()


def test_an_unexpected_tensor_is_refused_from_the_header_before_any_tensor_is_read(
    folder: Path,
) -> None:
    """A float8 tensor of 256 MiB the network does not have: its header is enough (the file
    here is cut after it, so reading any tensor would fail differently)."""
    model = build_model("tiny")
    tensors = dict(model.state_dict())
    tensors["zzz.padding"] = torch.zeros(1 << 20, dtype=torch.float8_e4m3fn)
    whole = folder / "padded-whole.safetensors"
    save_file(tensors, str(whole), metadata={CONFIG_KEY: model.config.to_json()})
    header_bytes = 8 + int.from_bytes(whole.read_bytes()[:8], "little")
    padded = folder / "padded.safetensors"
    padded.write_bytes(whole.read_bytes()[:header_bytes])
    result = measr("restore", write_picture(folder / "a.png"), "--weights", padded)
    assert_one_error_line(result, 3, "padded.safetensors", "1 unexpected", "zzz.padding")


@pytest.mark.parametrize("change", ["bytes-after", "offset-past-the-end"])
def test_a_file_that_does_not_end_where_its_header_says_is_refused_unread(
    folder: Path, change: str
) -> None:
    data = (folder / "tiny-test.safetensors").read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    if change == "bytes-after":
        data += bytes(4096)
    else:
        header = json.loads(data[8:header_end])
        last = max((k for k in header if k != "__metadata__"),
                   key=lambda k: header[k]["data_offsets"][1])  # fmt: skip
        header[last]["data_offsets"][1] = 1 << 60
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        data = len(text).to_bytes(8, "little") + text + data[header_end:]
    odd = folder / "odd.safetensors"
    odd.write_bytes(data)
    result = measr("restore", write_picture(folder / "a.png"), "--weights", odd)
    assert_one_error_line(result, 3, "odd.safetensors", "does not end where its header says")


# --- a manifest, or an entry, that is not a regular file of text (15-17, 28, 29, 44) ----------


def measr_process(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`measr ARGS` in its own process: a hang fails the test after a minute instead of
    hanging the run."""
    command = [sys.executable, "-m", "measr.cli.app", *args]
    try:
        return subprocess.run(
            command, env={**os.environ, **env}, capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"measr {' '.join(args)} hung")


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_an_entry_that_is_a_pipe_or_a_device_is_reported_not_read(folder: Path, kind: str) -> None:
    manifest = folder / "weights.txt"
    target = folder / "odd.safetensors"
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target = Path(os.path.relpath("/dev/zero", folder))
    sha = sha256_of(folder / "tiny-test.safetensors")
    with manifest.open("a") as stream:
        stream.write(f"odd {target} {sha} config=tiny\n")
    listed = measr_process("models", env={MANIFEST_ENV: str(manifest)})
    assert listed.returncode == 0, listed.stderr
    assert "odd  file NOT A REGULAR FILE" in listed.stdout
    picture = write_picture(folder / "a.png")
    restored = measr_process("restore", str(picture), "--weights", "odd", env={})
    assert restored.returncode == 3 and "is not a regular file" in restored.stderr
    assert "Traceback" not in restored.stderr


def test_a_manifest_that_is_a_pipe_is_one_error_line(folder: Path) -> None:
    pipe = folder / "pipe.txt"
    os.mkfifo(pipe)
    result = measr_process("models", env={MANIFEST_ENV: str(pipe)})
    assert result.returncode == 3, result.stderr
    assert "is not a regular file (a pipe, device or socket)" in result.stderr
    assert MANIFEST_ENV in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "cause"),
    [("folder", "is not a regular file (a folder)"), (b"\xff\xfe\x00bad", "is not UTF-8 text")],
    ids=["folder", "binary"],
)
def test_a_manifest_that_is_not_text_is_one_error_line(
    folder: Path, monkeypatch: pytest.MonkeyPatch, content: str | bytes, cause: str
) -> None:
    manifest = folder / "other"
    if isinstance(content, bytes):
        manifest.write_bytes(content)
    else:
        manifest.mkdir()
    monkeypatch.setenv(MANIFEST_ENV, str(manifest))
    for command in (["models"], ["restore", str(write_picture(folder / "a.png"))]):
        assert_one_error_line(measr(*command), 3, cause, f"set {MANIFEST_ENV}")


def test_a_manifest_saved_with_a_byte_order_mark_reads_as_without(folder: Path) -> None:
    manifest = folder / "weights.txt"
    manifest.write_bytes(b"\xef\xbb\xbf" + manifest.read_bytes())
    result = measr("restore", write_picture(folder / "a.png"), "--threads", "1")
    assert result.exit_code == 0, result.output
    assert export(folder, weights_with(folder, "more"), "--name", "more").exit_code == 0
    assert [e.name for e in read_manifest(manifest)] == ["tiny-test", "more"]
