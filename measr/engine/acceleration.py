"""Making a MEASNet fast on the device it runs on, without changing what it computes.

The levers kept are the ones that paid in same-process measurements (docs/performance.md):

* **fused experts** (`measr.engine.fused_experts`): the FD-MEE low-rank mixture as three
  convolutions for the whole batch instead of a loop over experts with data-dependent gathers;
  on GPUs also the STP-G-MESE pixel experts without a host synchronisation;
* **compiled steps**: `torch.compile` (inductor) of the network's pure steps, the transformer
  block (`TransformerBlock.branches`), the MEE block (`MEE.branch`), FD's band split
  (`FrequencyDecomposition.bands`) and the cross-attention (`CrossAttention.attend`). They
  take and return tensors only (the global context stays outside), so every block of the
  same shape shares one compiled graph: about 15 graphs for a whole configuration and tile
  size, a few seconds to load from inductor's cache once warm.
  Inductor fuses what eager PyTorch runs as separate passes over memory: LayerNorm, exact
  GELU times the gate, the attention map's normalisation and softmax, residual additions;
* **row strips** (`measr.engine.row_strips`, CPU): each transformer block's widest maps
  computed a few rows at a time, so they stay in cache instead of streaming through memory;
* **channels-last** memory (NHWC) with the compiled steps: depthwise convolutions run 2-5x
  faster in it on CPU and the LayerNorm over channels needs no transposition. Without
  compilation it does not pay (eager mixes layouts and copies), so it comes with `compile`.

Tried and dropped are listed in docs/performance.md.
"""

from __future__ import annotations

import os
import shutil
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from measr.engine.fused_experts import fuse_experts
from measr.engine.row_strips import StripedTransformerBlock, stripe_blocks
from measr.model import MEASNet
from measr.model.backbone import TransformerBlock
from measr.model.fd_mee import MEE, FrequencyDecomposition
from measr.model.freq_cross_attention import CrossAttention

# The pure step of each module type that is compiled, by method name.
COMPILED_STEPS: dict[type[nn.Module], str] = {
    TransformerBlock: "branches",
    StripedTransformerBlock: "branches",
    MEE: "branch",
    FrequencyDecomposition: "bands",
    CrossAttention: "attend",
}
# Distinct input shapes a step may be compiled for before dynamo gives up and runs it eagerly:
# every level of the U-Net is a shape, for the tiles and again for the global-context image.
RECOMPILE_LIMIT = 64
# "0" turns the row strips off on CPUs (`row_strips_wanted`).
ROW_STRIPS_ENV = "MEASR_ROW_STRIPS"


@dataclass(frozen=True)
class Acceleration:
    """Which levers a Restorer pulls. `compile` brings channels-last with it."""

    fuse_experts: bool = True
    compile: bool = False
    row_strips: bool = False  # transformer blocks in cache-sized row strips (CPUs)
    sync_free: bool = False  # dense-gated pixel experts: no host sync, 3x their work (GPUs)

    @property
    def memory_format(self) -> torch.memory_format:
        """Channels-last (NHWC) with the compiled steps, where it pays (module docstring)."""
        return torch.channels_last if self.compile else torch.contiguous_format

    def describe(self) -> str:
        """A short label: 'eager', 'fused', 'fused+strips+compiled'."""
        parts = ["fused"] if self.fuse_experts else []
        if self.row_strips:
            parts.append("strips")
        if self.compile:
            parts.append("compiled")
        return "+".join(parts) or "eager"


def can_compile(device: torch.device) -> bool:
    """Whether inductor can build kernels here: it needs a C++ compiler on CPU."""
    if device.type == "cpu":
        return shutil.which("c++") is not None or shutil.which("g++") is not None
    return device.type == "cuda"


def row_strips_wanted(device: torch.device) -> bool:
    """Whether the transformer blocks run in row strips: on CPUs, unless `MEASR_ROW_STRIPS=0`.

    They made the Xeon with AVX-512 1.3-2.0x faster and halve the activation memory on every
    CPU. On an AMD EPYC with AVX2 only a single pass is 5-15 % faster without them (eager,
    `small` at 512 and 1024 px), but a whole 2048 x 1536 photo in tiles of 1088 px only 2 %
    (174.5 against 177.8 s: the maps that no longer fit the allocator's heap are page-faulted
    anew each pass) for 55 % more memory (docs/performance.md), so they stay on there too.
    The variable is a supported setting (docs/performance.md, Environment variables) for
    machines with memory to spare where the unstriped form is faster."""
    if os.environ.get(ROW_STRIPS_ENV, "").strip() == "0":
        return False
    return device.type == "cpu"


def default_acceleration(device: torch.device, *, compile: bool = False) -> Acceleration:
    """Fused experts everywhere; row strips on CPU (`row_strips_wanted`); the sync-free pixel
    experts on CUDA; compiled steps when asked and available."""
    wanted = compile and can_compile(device)
    return Acceleration(
        fuse_experts=True,
        compile=wanted,
        row_strips=row_strips_wanted(device),
        sync_free=device.type == "cuda",
    )


def always_eager() -> AbstractContextManager[object]:
    """Run the compiled steps eagerly inside this block."""
    return torch.compiler.set_stance("force_eager")


def eager_unless(compiled: bool) -> AbstractContextManager[object]:
    """Run the compiled steps eagerly inside this block unless `compiled`: for passes whose
    shape is used once (the global-context image, a last partial batch of tiles), compiling
    would cost more than it saves."""
    return nullcontext() if compiled else always_eager()


def accelerate(model: MEASNet, acceleration: Acceleration) -> MEASNet:
    """Apply `acceleration` to an inference model, in place (parameters and state-dict keys are
    untouched); returns the model."""
    if acceleration.fuse_experts:
        fuse_experts(model, sync_free=acceleration.sync_free)
    if acceleration.row_strips:
        stripe_blocks(model)
    if acceleration.compile:
        compile_steps(model)
        # Module.to converts 4-D parameters to channels-last; its stubs omit memory_format.
        model.to(memory_format=acceleration.memory_format)  # type: ignore[call-overload]
    return model


def compile_steps(model: nn.Module) -> None:
    """Replace each pure step by its compiled form (an instance attribute over the method).

    `dynamic=False`: tiles all have one size, so shape-specialised kernels are the fast ones.
    A step that fails to compile (no working compiler, an unsupported op) runs eagerly instead
    of failing the restoration."""
    import torch._dynamo  # the compiler takes seconds to import: only when compiling

    torch._dynamo.config.recompile_limit = max(
        torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT
    )
    torch._dynamo.config.suppress_errors = True
    for module in model.modules():
        method = COMPILED_STEPS.get(type(module))
        if method is not None and not is_compiled(module, method):
            setattr(module, method, torch.compile(getattr(module, method), dynamic=False))


def is_compiled(module: nn.Module, method: str) -> bool:
    """Whether `module.method` is already a compiled step."""
    return method in vars(module)
