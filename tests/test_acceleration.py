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
from measr.engine.acceleration import Acceleration, accelerate, can_compile
from measr.engine.fused_experts import DenseGatedPixelExperts, FusedLowRankMixture
from measr.evaluation.metrics import unquantised_psnr
from measr.model import build_model
from measr.model.fd_mee import MixtureOfLowRankExperts
from measr.model.stp_g_mese import PixelExperts


def test_fused_experts_agree_with_the_plain_model_on_a_batch() -> None:
    torch.manual_seed(0)
    plain = build_model("tiny").eval()
    fused = accelerate(copy.deepcopy(plain), Acceleration(fuse_experts=True))
    assert any(isinstance(m, FusedLowRankMixture) for m in fused.modules())
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = plain(x).image
        got = fused(x).image
    assert unquantised_psnr(got.numpy(), expected.numpy()) >= 50.0


def test_the_fused_mixture_computes_each_images_own_chosen_experts() -> None:
    """FD-MEE's mixture as inference runs it (three convolutions and a mask) against the sum
    written out from the paper: x + sum over each image's top-k of g_i W3_i((W1_i x) * (W2_i k)),
    on a batch whose images chose different experts."""
    torch.manual_seed(0)
    plain = MixtureOfLowRankExperts(channels=8, ranks=(2, 3, 4, 5, 6), top_k=2).eval()
    fused = FusedLowRankMixture(plain)
    x, key = torch.randn(3, 8, 5, 7), torch.randn(3, 8, 5, 7)
    probs = torch.softmax(torch.randn(3, 5) * 3, dim=1)
    weights, chosen = probs.topk(2, dim=1)
    assert len({tuple(row) for row in chosen.sort(dim=1).values.tolist()}) == 3

    def written_out(b: int) -> torch.Tensor:
        out = x[b : b + 1].clone()
        for weight, expert in zip(weights[b], chosen[b], strict=True):
            out += weight * plain.experts[int(expert)](x[b : b + 1], key[b : b + 1])
        return out[0]

    by_hand = torch.stack([written_out(b) for b in range(3)])
    with torch.inference_mode():
        torch.testing.assert_close(fused(x, key, probs), by_hand, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(plain(x, key, probs), by_hand, rtol=1e-5, atol=1e-5)


def test_the_sync_free_pixel_experts_compute_what_the_sparse_ones_compute() -> None:
    """STP-G-MESE's pixel experts as inference runs them on GPUs (every expert, unchosen ones
    gated to zero) against the plain form that computes only each pixel's chosen experts."""
    torch.manual_seed(0)
    sparse = PixelExperts(dim=8, hidden=16, experts=6)
    dense = DenseGatedPixelExperts(sparse)
    tokens = torch.randn(50, 8)
    experts = torch.rand(50, 6).argsort(dim=1)[:, :2]  # two distinct experts per pixel
    gates = torch.softmax(torch.randn(50, 2), dim=1)
    with torch.inference_mode():
        torch.testing.assert_close(
            dense(tokens, experts, gates), sparse(tokens, experts, gates), rtol=1e-5, atol=1e-5
        )


def test_the_gpu_form_of_the_network_agrees_with_the_plain_one() -> None:
    """Every inference form at once (fused mixture, sync-free pixel experts, row strips), run
    here on the CPU, against the paper's modules: within the issue's 50 dB."""
    torch.manual_seed(0)
    plain = build_model("tiny").eval()
    levers = Acceleration(fuse_experts=True, row_strips=True, sync_free=True)
    fast = accelerate(copy.deepcopy(plain), levers)
    assert any(isinstance(m, DenseGatedPixelExperts) for m in fast.modules())
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = plain(x).image
        got = fast(x).image
    assert unquantised_psnr(got.numpy(), expected.numpy()) >= 50.0


def test_fusing_keeps_the_state_dict() -> None:
    torch.manual_seed(0)
    plain = build_model("tiny").eval()
    fused = accelerate(copy.deepcopy(plain), Acceleration(fuse_experts=True))
    assert plain.state_dict().keys() == fused.state_dict().keys()


@pytest.mark.slow  # compiles (a minute or more on 2 cores)
@pytest.mark.skipif(not can_compile(torch.device("cpu")), reason="inductor needs a C++ compiler")
def test_compiled_restorer_agrees_with_the_eager_one_on_tiles() -> None:
    """`Restorer(compile=True)`: compiled steps and channels-last, on 4 tiles of one image that
    share its global context; within the issue's 50 dB of the eager engine."""
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    # 144 px framed by the engine's 16 px edge margin: 176 px, 4 tiles of 128 overlapping by 16.
    pixels = np.random.default_rng(2).random((144, 144, 3), dtype=np.float32)
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


@pytest.mark.slow  # two fresh interpreters importing PyTorch
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_the_memory_plan_counts_the_freed_memory_that_measr_keeps() -> None:
    """Kept freed blocks stay resident until the tile ends, so the same budget plans a smaller
    tile than when glibc hands them back at once."""
    kept = int(allocator_setting({}, PLANNED_TILE))
    returned = int(allocator_setting({"MEASR_KEEP_FREED_MEMORY": "0"}, PLANNED_TILE))
    assert kept < returned
