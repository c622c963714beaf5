"""The inference forms of the expert layers compute what the paper's modules compute."""

from __future__ import annotations

import copy
import os
import platform
import subprocess
import sys

import numpy as np
import pytest
import torch

from measr.engine import Restorer
from measr.engine.acceleration import Acceleration, accelerate, can_compile, prepare_input
from measr.evaluation.metrics import unquantised_psnr
from measr.model import build_model
from measr.model.fast import FusedLowRankMixture


def test_fused_experts_agree_with_the_plain_model_on_a_batch() -> None:
    torch.manual_seed(0)
    plain = build_model("tiny").eval()
    fused = accelerate(copy.deepcopy(plain), Acceleration(fuse_experts=True))
    assert any(isinstance(m, FusedLowRankMixture) for m in fused.modules())
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = plain(x).image
        got = fused(prepare_input(x, Acceleration())).image
    assert unquantised_psnr(got.numpy(), expected.numpy()) >= 50.0


def test_fusing_keeps_the_state_dict() -> None:
    torch.manual_seed(0)
    plain = build_model("tiny").eval()
    fused = accelerate(copy.deepcopy(plain), Acceleration(fuse_experts=True))
    assert plain.state_dict().keys() == fused.state_dict().keys()


@pytest.mark.skipif(not can_compile(torch.device("cpu")), reason="inductor needs a C++ compiler")
def test_compiled_restorer_agrees_with_the_eager_one_on_tiles() -> None:
    """`Restorer(compile=True)`: compiled steps and channels-last, on 4 tiles of one image that
    share its global context; within the issue's 50 dB of the eager engine."""
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    pixels = np.random.default_rng(2).random((176, 176, 3), dtype=np.float32)
    eager = Restorer(copy.deepcopy(model), device="cpu", compile=False)
    expected = eager.restore(pixels, tile=128, tile_overlap=16)
    compiled = Restorer(copy.deepcopy(model), device="cpu", compile=True)
    result = compiled.restore(pixels, tile=128, tile_overlap=16)
    assert result.tiles == expected.tiles == 4 and compiled.acceleration.compile
    assert unquantised_psnr(result.pixels, expected.pixels) >= 50.0


# What the `measr` command does first (measr.cli.main), before the code a test runs after it.
MEASR_PROCESS = "from measr.cli import start_process; start_process()\n"
THP_SETTING = "import os; print(os.environ.get('THP_MEM_ALLOC_ENABLE'))"


def allocator_setting(
    environment: dict[str, str], code: str = THP_SETTING, start: str = MEASR_PROCESS
) -> str:
    """What a fresh interpreter prints running `code` after `start` (by default: the start of
    the `measr` process), with `environment` on top of this process's, less measr's settings."""
    own = {"THP_MEM_ALLOC_ENABLE", "MEASR_KEEP_FREED_MEMORY"}
    env = {k: v for k, v in os.environ.items() if k not in own} | environment
    done = subprocess.run(
        [sys.executable, "-c", start + code], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_the_measr_command_puts_large_tensors_on_huge_pages_unless_told_otherwise() -> None:
    assert allocator_setting({}) == "1"
    assert allocator_setting({"THP_MEM_ALLOC_ENABLE": "0"}) == "0"


def test_importing_the_library_leaves_the_allocator_settings_alone() -> None:
    """A program that imports measr (and its engine) keeps its own environment."""
    assert allocator_setting({}, start="import measr, measr.engine\n") == "None"


# Allocates 128 MiB, writes it, frees it, then does the same again and prints the page faults
# of the second round: memory glibc kept is written without faulting it in again. (numpy's own
# huge-page advice is switched off, so that every page of a fresh mapping faults.)
REFAULTS = """
import resource, numpy as np
(getattr(np, "_core", None) or np.core).multiarray._set_madvise_hugepage(False)
def fill():
    a = np.empty(128 * 2**20, dtype=np.uint8); a.fill(1); del a
fill()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
fill()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_the_measr_command_keeps_freed_memory_for_the_next_allocation() -> None:
    kept = int(allocator_setting({}, REFAULTS))
    returned = int(allocator_setting({"MEASR_KEEP_FREED_MEMORY": "0"}, REFAULTS))
    as_a_library = int(allocator_setting({}, REFAULTS, start="import measr\n"))
    pages = 128 * 2**20 // 4096
    assert returned > pages // 2  # glibc's default: a fresh mmap, faulted in page by page
    assert as_a_library > pages // 2
    assert kept < pages // 20


PLANNED_TILE = """
import torch
from measr.engine.memory import plan_memory
from measr.model import get_config
print(plan_memory(get_config("small"), torch.device("cpu"), striped=True, budget=2**32).tile)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_the_memory_plan_counts_the_freed_memory_that_measr_keeps() -> None:
    """Kept freed blocks stay resident until the tile ends, so the same budget plans a smaller
    tile than when glibc hands them back at once."""
    kept = int(allocator_setting({}, PLANNED_TILE))
    returned = int(allocator_setting({"MEASR_KEEP_FREED_MEMORY": "0"}, PLANNED_TILE))
    assert kept < returned
