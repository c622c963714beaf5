"""The cache of converted networks (issue 36, cases 6 and 36): an entry is loaded only as it was
written (checked against its recorded sha256 as it is read), a damaged one is converted again,
a killed conversion's temporary folder does not stay, and a cache folder that cannot be used
is one error line."""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tiny_weights import write_picture, write_weights
from typer.testing import CliRunner

from measr.cli.app import app
from measr.engine import conversion_cache, openvino_backend
from measr.engine.conversion_cache import CACHE_ENV, cache_folder, read_entry, write_entry
from measr.errors import MeasrError
from measr.manifest import MANIFEST_ENV
from measr.model import build_model

FILES = ("model.xml", "model.bin")


def write_files(folder: Path) -> None:
    (folder / "model.xml").write_text("<net/>")
    (folder / "model.bin").write_bytes(bytes(range(256)) * 4)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own cache root (MEASR_CACHE)."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_an_entry_reads_back_as_written_and_private(cache: Path) -> None:
    target = cache_folder("kind") / "net-1"
    write_entry(target, write_files)
    files = read_entry(target, FILES)
    assert files is not None and files["model.xml"] == b"<net/>"
    assert stat.S_IMODE((cache / "kind").stat().st_mode) == 0o700
    assert sorted(p.name for p in (cache / "kind").iterdir()) == ["net-1"]


@pytest.mark.parametrize(
    "damage",
    ["zeroed", "one-byte", "truncated", "no-checksums", "missing-file"],
)
def test_a_damaged_entry_is_never_read_and_is_removed(cache: Path, damage: str) -> None:
    target = cache_folder("kind") / "net-1"
    write_entry(target, write_files)
    weights = target / "model.bin"
    data = bytearray(weights.read_bytes())
    if damage == "zeroed":
        weights.write_bytes(bytes(len(data)))
    elif damage == "one-byte":
        data[100] ^= 1
        weights.write_bytes(bytes(data))
    elif damage == "truncated":
        weights.write_bytes(bytes(data[:10]))
    elif damage == "no-checksums":
        (target / conversion_cache.CHECKSUMS).unlink()
    else:
        weights.unlink()
    assert read_entry(target, FILES) is None
    assert not target.exists(), "removed, to be converted again"
    write_entry(target, write_files)
    assert read_entry(target, FILES) is not None


def test_a_killed_conversion_leaves_its_folder_only_until_the_next_one(cache: Path) -> None:
    folder = cache_folder("kind")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    host = conversion_cache.socket.gethostname()
    killed = folder / f"net-1.{gone.stdout.strip()}@{host}.partial"
    running = folder / f"net-2.{os.getppid()}@{host}.partial"
    for partial in (killed, running):
        partial.mkdir()
        write_files(partial)
    write_entry(folder / "net-3", write_files)
    assert not killed.exists(), "its process is gone"
    assert running.exists(), "another conversion still at work"


def test_a_cache_folder_others_can_write_is_made_private_and_emptied(cache: Path) -> None:
    folder = cache_folder("kind")
    write_entry(folder / "net-1", write_files)
    os.chmod(folder, 0o777)
    assert cache_folder("kind") == folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert list(folder.iterdir()) == [], "entries others could have written are not trusted"


@pytest.mark.parametrize("root", ["/dev/null", "file"])
def test_a_cache_root_that_cannot_hold_folders_is_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: str
) -> None:
    if root == "file":
        root = str(tmp_path / "a-file")
        Path(root).write_text("x")
    monkeypatch.setenv(CACHE_ENV, root)
    with pytest.raises(MeasrError, match=f"cannot use the cache folder '{root}/kind'") as raised:
        cache_folder("kind")
    assert CACHE_ENV in raised.value.hint


openvino_only = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="needs the openvino extra"
)


def scaled_graph(factors: np.ndarray) -> Any:
    """A small OpenVINO model: the image times a constant per channel."""
    import openvino
    from openvino import opset13

    image = opset13.parameter([1, 3, 4, 4], np.float32)
    product = opset13.multiply(image, opset13.constant(factors.reshape(1, 3, 1, 1)))
    return openvino.Model([product], [image])


@openvino_only
def test_a_tampered_openvino_entry_is_converted_again(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 6: the cached weights zeroed, or scaled (a plausible network), give the picture
    of the weights, never of the cache."""
    factors = np.array([0.5, 2.0, -1.0], dtype=np.float32)
    conversions: list[int] = []

    def convert(*args: Any, **kwargs: Any) -> Any:
        conversions.append(1)
        return scaled_graph(factors)

    monkeypatch.setattr(openvino_backend, "convert", convert)
    torch.manual_seed(0)
    model = build_model("tiny")
    image = np.random.default_rng(0).random((1, 3, 4, 4), dtype=np.float32)

    def run() -> np.ndarray:
        graph = openvino_backend.cached_conversion(model)
        return openvino_backend.compile_for_cpu(graph, 1)([image])[0]

    expected = image * factors.reshape(1, 3, 1, 1)
    np.testing.assert_allclose(run(), expected)
    np.testing.assert_allclose(run(), expected)
    assert len(conversions) == 1, "the second run read the cache"
    (bin_file,) = (cache / "openvino").glob("*/model.bin")
    for tamper in (lambda data: bytes(len(data)), lambda data: data[:-4] + b"\x00\x00@\xc0"):
        bin_file.write_bytes(tamper(bin_file.read_bytes()))
        np.testing.assert_allclose(run(), expected)
    assert len(conversions) == 3, "each tampered entry was converted again"


@openvino_only
def test_restore_with_a_cache_folder_that_is_a_device_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 36: MEASR_CACHE=/dev/null."""
    monkeypatch.setenv(MANIFEST_ENV, str(write_weights(tmp_path)))
    monkeypatch.setenv(CACHE_ENV, "/dev/null")
    source = write_picture(tmp_path / "a.png")
    args = ["restore", str(source), "--backend", "openvino", "--threads", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: cannot use the cache folder '/dev/null/openvino'")
    assert "Traceback" not in result.output
    assert not (tmp_path / "a_restored.png").exists()


@pytest.mark.slow  # two conversions of the tiny network (minutes on 2 cores)
@openvino_only
def test_restore_on_a_tampered_cache_gives_the_picture_of_the_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from measr.io import read_image

    monkeypatch.setenv(MANIFEST_ENV, str(write_weights(tmp_path, stressed=True)))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    source = write_picture(tmp_path / "a.png")

    def restore(name: str) -> np.ndarray:
        args = ["restore", str(source), "-o", str(tmp_path / name), "--backend", "openvino"]
        result = CliRunner().invoke(app, [*args, "--threads", "2", "--float32"])
        assert result.exit_code == 0, result.output
        return read_image(tmp_path / name).pixels

    fresh = restore("fresh.png")
    (bin_file,) = (tmp_path / "cache" / "openvino").glob("*/model.bin")
    bin_file.write_bytes(bytes(bin_file.stat().st_size))
    np.testing.assert_array_equal(restore("tampered.png"), fresh)
    np.testing.assert_array_equal(restore("rebuilt.png"), fresh)
