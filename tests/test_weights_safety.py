"""Untrusted weights: only safetensors load by default; pickle checkpoints are refused with a hint
and converted only by `measr import-weights` (torch.load(weights_only=True)), which refuses a
file that would run code without running it; corrupt or mismatched files are one error line."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import typing
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from tiny_weights import write_picture, write_weights
from typer.testing import CliRunner, Result

import measr.weights as weights_module
from measr import Restorer, build_model
from measr.cli.app import app
from measr.jobs.batch import plan_jobs, run_batch
from measr.manifest import MANIFEST_ENV
from measr.model import CONFIGS, ModelConfig
from measr.model.configs import FIELD_LIMITS
from measr.weights import CONFIG_KEY, load_model, read_metadata, save_weights

runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary folder whose weights.txt lists a tiny checkpoint as the default."""
    monkeypatch.setenv(MANIFEST_ENV, str(write_weights(tmp_path)))
    return tmp_path


def measr(*args: str | Path) -> Result:
    return runner.invoke(app, [*map(str, args)])


def assert_one_error_line(result: Result, exit_code: int, *fragments: str) -> str:
    """Exit code, a single `error:` line on stderr holding the fragments, no traceback."""
    assert result.exit_code == exit_code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def tiny_state_dict() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return build_model("tiny").state_dict()


class RunsAShellCommand:
    """A pickle payload: unpickling it calls os.system (here, harmlessly, `touch MARKER`)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


# --- pickles are not loaded by default ---------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pth", ".ckpt", ".pt"])
def test_a_pickle_checkpoint_as_weights_is_refused_with_a_hint(folder: Path, suffix: str) -> None:
    checkpoint = folder / f"model{suffix}"
    torch.save(tiny_state_dict(), checkpoint)
    source = write_picture(folder / "a.png")
    result = measr("restore", source, "--weights", checkpoint, "--threads", "1")
    assert_one_error_line(result, 3, "pickle checkpoint", "measr import-weights", "weights_only")
    assert not (folder / "a_restored.png").exists()


def test_a_pickle_named_safetensors_is_recognised_and_never_unpickled(folder: Path) -> None:
    marker = folder / "ran"
    disguised = folder / "model.safetensors"
    torch.save({"weight": RunsAShellCommand(marker)}, disguised)
    result = measr("restore", write_picture(folder / "a.png"), "--weights", disguised)
    assert_one_error_line(result, 3, "pickle checkpoint")
    assert not marker.exists()


# --- import-weights ---------------------------------------------------------------------------


@pytest.mark.parametrize("wrapped", [False, True], ids=["plain", "state_dict+module."])
def test_import_weights_converts_a_state_dict_to_safetensors(folder: Path, wrapped: bool) -> None:
    state = tiny_state_dict()
    checkpoint = folder / "theirs.pth"
    if wrapped:  # as training scripts often save it: nested, with DataParallel's prefix
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, checkpoint)
    else:
        torch.save(state, checkpoint)
    result = measr("import-weights", checkpoint, "--config", "tiny")
    assert result.exit_code == 0, result.output
    assert "torch.load(weights_only=True)" in result.stdout and "no code run" in result.stdout
    converted = folder / "theirs.safetensors"
    assert read_metadata(converted)["imported_from"] == "theirs.pth"
    for name, tensor in load_model(converted).state_dict().items():
        assert torch.equal(tensor, state[name]), name
    restored = measr(
        "restore", write_picture(folder / "a.png"), "--weights", converted, "--threads", "1"
    )
    assert restored.exit_code == 0, restored.output


def test_import_weights_refuses_a_pickle_that_would_run_code(folder: Path) -> None:
    marker = folder / "ran"
    evil = folder / "evil.pth"
    torch.save({"weight": torch.zeros(2), "payload": RunsAShellCommand(marker)}, evil)
    result = measr("import-weights", evil, "--config", "tiny")
    assert_one_error_line(result, 3, "refused", "evil.pth", "nothing in it was run")
    assert not marker.exists()
    assert not (folder / "evil.safetensors").exists()
    # The payload is live: an ordinary unpickling runs it (harmlessly), so the refusal mattered.
    torch.load(evil, weights_only=False)
    assert marker.exists()


def test_import_weights_refuses_damaged_and_mismatched_checkpoints(folder: Path) -> None:
    checkpoint = folder / "theirs.pth"
    torch.save(tiny_state_dict(), checkpoint)
    cut = folder / "cut.pth"
    cut.write_bytes(checkpoint.read_bytes()[:4000])
    assert_one_error_line(measr("import-weights", cut, "--config", "tiny"), 3, "cut.pth")
    text = folder / "notes.pth"
    text.write_text("not a checkpoint")
    assert_one_error_line(measr("import-weights", text, "--config", "tiny"), 3, "notes.pth")
    mismatch = measr("import-weights", checkpoint, "--config", "small")
    assert_one_error_line(mismatch, 3, "do not fit configuration 'small'")
    no_tensors = folder / "numbers.pth"
    torch.save({"epoch": 3}, no_tensors)
    assert_one_error_line(measr("import-weights", no_tensors, "--config", "tiny"), 3, "no state")
    unknown = measr("import-weights", checkpoint, "--config", "huge")
    assert_one_error_line(unknown, 2, "unknown model configuration")
    assert list(folder.glob("*.safetensors")) == [folder / "tiny-test.safetensors"]


def test_import_weights_does_not_overwrite_unless_asked(folder: Path) -> None:
    checkpoint = folder / "theirs.pth"
    torch.save(tiny_state_dict(), checkpoint)
    assert measr("import-weights", checkpoint, "--config", "tiny").exit_code == 0
    again = measr("import-weights", checkpoint, "--config", "tiny")
    assert_one_error_line(again, 4, "already exists")
    assert measr("import-weights", checkpoint, "--config", "tiny", "--overwrite").exit_code == 0
    wrong = measr("import-weights", checkpoint, "--config", "tiny", "-o", folder / "x.pth")
    assert_one_error_line(wrong, 3, "must end in .safetensors")


# --- corrupt safetensors ----------------------------------------------------------------------


def test_a_checksum_mismatch_refuses_to_load(folder: Path) -> None:
    weights = folder / "tiny-test.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x01")  # one byte changed
    result = measr("restore", write_picture(folder / "a.png"), "--threads", "1")
    assert_one_error_line(result, 3, "do not match their checksum in weights.txt")
    assert not (folder / "a_restored.png").exists()


def test_a_truncated_safetensors_file_is_a_clear_error(folder: Path) -> None:
    cut = folder / "cut.safetensors"
    cut.write_bytes((folder / "tiny-test.safetensors").read_bytes()[:5000])
    result = measr("restore", write_picture(folder / "a.png"), "--weights", cut)
    assert_one_error_line(result, 3, "cannot read weights", "cut.safetensors", "truncated")


def test_a_safetensors_file_not_written_by_measr_is_refused(folder: Path) -> None:
    foreign = folder / "foreign.safetensors"
    save_file({"weight": torch.zeros(2)}, str(foreign))
    result = measr("restore", write_picture(folder / "a.png"), "--weights", foreign)
    assert_one_error_line(result, 3, "carry no measr configuration")


def test_weights_of_another_configuration_than_listed_are_refused(folder: Path) -> None:
    manifest = folder / "weights.txt"
    manifest.write_text(manifest.read_text().replace("config=tiny", "config=small"))
    result = measr("restore", write_picture(folder / "a.png"), "--threads", "1")
    assert_one_error_line(result, 3, "hold configuration 'tiny', but weights.txt says 'small'")


# --- weights passed by path, untrusted configurations, non-finite numbers (issue 21) -----------


def test_a_listed_weights_file_passed_by_path_is_checked_against_its_checksum(
    folder: Path,
) -> None:
    weights = folder / "tiny-test.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x01")  # one byte changed
    result = measr("restore", write_picture(folder / "a.png"), "--weights", weights)
    assert_one_error_line(result, 3, "do not match their checksum in weights.txt")
    assert not (folder / "a_restored.png").exists()


def test_a_weights_file_no_manifest_lists_loads_with_one_warning_line(folder: Path) -> None:
    unlisted = folder / "elsewhere.safetensors"
    unlisted.write_bytes((folder / "tiny-test.safetensors").read_bytes())
    result = measr(
        "restore", write_picture(folder / "a.png"), "--weights", unlisted, "--threads", "1"
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: "), lines
    assert "elsewhere.safetensors" in lines[0] and "no checksum verified them" in lines[0]
    listed = measr("restore", write_picture(folder / "b.png"), "--weights", "tiny-test")
    assert "warning" not in listed.stderr


def forbid_building(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make building a network from a weights file fail the test."""

    def must_not_build(config: ModelConfig) -> None:
        raise AssertionError(f"a network of {config} was built")

    monkeypatch.setattr(weights_module, "MEASNet", must_not_build)


def tiny_config_with(**changes: object) -> str:
    """The tiny configuration's JSON with some fields replaced."""
    return json.dumps({**json.loads(build_model("tiny").config.to_json()), **changes})


@pytest.mark.parametrize(
    ("config", "cause"),
    [
        ("{not json", "not JSON"),
        ("[1, 2, 3]", "JSON list, not an object"),
        (tiny_config_with(pixel_top_k=9), "pixel_top_k cannot exceed pixel_experts"),
        (tiny_config_with(dim=480), "dim=480 is outside"),
        (tiny_config_with(dim="48"), "dim is str, not int"),
        (tiny_config_with(heads=[3, 1, 2, 2]), "heads[0]=3 does not divide 8"),
        (tiny_config_with(max_cutoff=float("nan")), "max_cutoff=nan"),
        (tiny_config_with(mee_ranks=list(range(1, 100))), "mee_ranks has 99 values"),
    ],
    ids=["not-json", "list", "top-k", "dim", "type", "heads", "nan", "length"],
)
def test_an_untrusted_configuration_is_one_error_line_before_anything_is_built(
    folder: Path, config: str, cause: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    forged = folder / "forged.safetensors"
    save_file({"weight": torch.zeros(2)}, str(forged), metadata={CONFIG_KEY: config})
    forbid_building(monkeypatch)
    result = measr("restore", write_picture(folder / "a.png"), "--weights", forged)
    assert_one_error_line(result, 3, "forged.safetensors", "invalid model configuration", cause)


def test_every_numeric_configuration_field_has_bounds_that_the_named_ones_keep() -> None:
    for config_field in dataclasses.fields(ModelConfig):
        kind = typing.get_type_hints(ModelConfig)[config_field.name]
        element = typing.get_args(kind)[0] if typing.get_origin(kind) is tuple else kind
        if element in (int, float):
            assert config_field.name in FIELD_LIMITS, config_field.name
    for config in CONFIGS.values():
        assert ModelConfig.from_json(config.to_json()) == config


def test_a_configuration_too_large_for_the_memory_is_refused_before_it_is_built(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(weights_module, "available_memory", lambda: 2**20)  # a 1 MiB machine
    forbid_building(monkeypatch)
    result = measr("restore", write_picture(folder / "a.png"), "--weights", "tiny-test")
    assert_one_error_line(result, 3, "0.4 million parameters", "1 MiB of memory is available")


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_weights_holding_nan_or_infinity_are_refused(folder: Path, value: float) -> None:
    model = build_model("tiny")
    with torch.no_grad():
        model.output.weight[0, 0, 0, 0] = value
    broken = folder / "diverged.safetensors"
    save_weights(model, broken)
    result = measr("restore", write_picture(folder / "a.png"), "--weights", broken)
    assert_one_error_line(result, 3, "diverged.safetensors", "non-finite values", "output.weight")
    assert not (folder / "a_restored.png").exists()


def restorer_that_outputs_nan() -> Restorer:
    """A network that passed the load checks yet computes NaN (as float16 overflow can)."""
    model = build_model("tiny")
    with torch.no_grad():
        model.output.weight.fill_(float("nan"))
    return Restorer(model, device="cpu", threads=1)


def test_a_non_finite_result_is_one_error_line_and_writes_nothing(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Restorer, "from_spec", lambda *args, **kwargs: restorer_that_outputs_nan())
    result = measr("restore", write_picture(folder / "a.png"))
    assert_one_error_line(result, 3, "non-finite values (NaN or infinity)")
    assert not (folder / "a_restored.png").exists()
    source, out = folder / "in", folder / "out"
    write_picture(source / "b.png", 16, 16)
    report = run_batch(restorer_that_outputs_nan(), plan_jobs(source, out), log_path=None)
    assert report.count("failed") == 1 and "non-finite" in str(report.results[0].error)
    assert not (out / "b.png").exists()
