"""MEASNet as an ONNX graph, and ONNX Runtime as a CPU backend for the engine's tile passes.

The graph computes what the network computes, routing included: each pixel runs only its
top-k STP-G-MESE experts (one `NonZero` and gather per expert, results added back), and each
image's FD-MEE mixture is the engine's fused form (`measr.engine.fused_experts`: the unchosen
low-rank experts' channels are multiplied by a zero gate, as the engine does). Two pieces are
rewritten for the exporter, with the same arithmetic: the pixel experts (the engine sorts the
pixels by expert and splits by group sizes read on the host, a shape the exporter cannot follow)
and the FFT frequencies of the soft frequency split (`fftfreq` has no ONNX translation).

A graph takes the image and, as further inputs, the global statistics it is given (see
`measr.model.context`): none for a self-contained model (`measr export --format onnx`), the
prompt's pooled features for an image restored whole, every statistic of the whole image for
its tiles. Heights and widths are dynamic (multiples of the network's size multiple), the batch
is one image. Exporting takes minutes, so graphs are kept in a cache folder, named by a hash of
the weights.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from measr.engine.conversion_cache import CACHE_ENV as CACHE_ENV  # where tests set it
from measr.engine.conversion_cache import cache_folder
from measr.engine.fused_experts import fuse_experts
from measr.errors import MeasrError
from measr.model import NAMED_REQUIREMENTS, MEASNet
from measr.model.context import ForwardContext, SharedStats
from measr.model.freq_cross_attention import SoftFrequencySplit
from measr.model.stp_g_mese import PixelExperts, expert_mlp
from measr.weights import load_model

ONNX_OPSET = 18
INSTALL_HINT = "install the extra: pip install 'measr[onnx]'"


class ExportablePixelExperts(PixelExperts):
    """STP-G-MESE's pixel experts, each token through its k chosen experts only, in ops an ONNX
    graph has: per expert, the (token, slot) pairs that chose it (`nonzero`), one MLP on those
    tokens, and the gated results added back to their tokens. Same sum as `PixelExperts`."""

    def __init__(self, experts: PixelExperts) -> None:
        nn.Module.__init__(self)
        self.w1, self.b1, self.w2, self.b2 = experts.w1, experts.b1, experts.w2, experts.b2

    def forward(self, tokens: Tensor, experts: Tensor, gates: Tensor) -> Tensor:
        mixed = torch.zeros_like(tokens)
        for index in range(self.w1.shape[0]):
            token, slot = (experts == index).nonzero(as_tuple=True)
            out = expert_mlp(
                tokens[token], self.w1[index], self.b1[index], self.w2[index], self.b2[index]
            )
            mixed = mixed.index_add(0, token, out * gates[token, slot][:, None].to(out.dtype))
        return mixed


def spectrum_frequencies(length: int, device: torch.device) -> Tensor:
    """|torch.fft.fftfreq(length)| from arithmetic the exporter translates, bit for bit:
    min(k, n - k) * (1 / n), as fftfreq scales."""
    k = torch.arange(length, device=device, dtype=torch.float32)
    return torch.minimum(k, length - k) * (1.0 / length)


class ExportableFrequencySplit(SoftFrequencySplit):
    """The soft frequency split with its mask built from `spectrum_frequencies`."""

    def __init__(self, split: SoftFrequencySplit) -> None:
        nn.Module.__init__(self)
        self.rates, self.max_cutoff, self.softness = split.rates, split.max_cutoff, split.softness
        self.context_key = split.context_key

    def mask(self, cutoffs: Tensor, height: int, width: int) -> Tensor:
        fy = spectrum_frequencies(height, cutoffs.device)
        fx = torch.arange(width // 2 + 1, device=cutoffs.device, dtype=torch.float32)
        fx = fx * (1.0 / width)
        pass_y = torch.sigmoid((cutoffs[:, 0, None] - fy) / self.softness)
        pass_x = torch.sigmoid((cutoffs[:, 1, None] - fx) / self.softness)
        return (pass_y[:, :, None] * pass_x[:, None, :])[:, None]


def exportable_model(model: MEASNet) -> MEASNet:
    """A fresh float32 copy of `model` (the engine's may be striped or compiled) in the forms
    the exporter translates; the parameters are the same values, the state dict the same keys."""
    copy = MEASNet(model.config).eval()
    copy.load_state_dict({k: v.float().cpu() for k, v in model.state_dict().items()})
    fuse_experts(copy)
    for parent in list(copy.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is PixelExperts:
                setattr(parent, name, ExportablePixelExperts(child))
            elif type(child) is SoftFrequencySplit:
                setattr(parent, name, ExportableFrequencySplit(child))
    return copy


class GraphWithStats(nn.Module):
    """The network as a function of tensors only: (image, *statistics) -> restored image, the
    statistics named by `keys` (in order) and shared as the engine shares them."""

    def __init__(self, model: MEASNet, keys: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.keys = tuple(keys)

    def forward(self, image: Tensor, *stats: Tensor) -> Tensor:
        shared = dict(zip(self.keys, stats, strict=True))
        return self.model(image, ForwardContext(shared=shared)).image


def export_onnx(
    model: MEASNet, path: Path, stats: SharedStats | None = None, *, example_side: int = 0
) -> Path:
    """Write `model` as an ONNX graph to `path`: input 'image' (1, C, H, W) with H and W any
    multiples of the size multiple (at least the minimum size), then one input per statistic in
    `stats` (named by its key, shaped like the example given), output 'restored'."""
    requirements = model.requirements
    side = example_side or 2 * requirements.min_size
    keys = sorted(stats or {})
    example_stats = tuple((stats or {})[key].float().cpu() for key in keys)
    image = torch.rand(
        1, requirements.channels, side, side, generator=torch.Generator().manual_seed(0)
    )
    rows = torch.export.Dim("rows", min=requirements.min_size // requirements.size_multiple)
    cols = torch.export.Dim("cols", min=requirements.min_size // requirements.size_multiple)
    multiple = requirements.size_multiple
    dynamic: dict[int, object] = {2: multiple * rows, 3: multiple * cols}
    graph = GraphWithStats(exportable_model(model), keys)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (image, *example_stats),
            str(path),
            input_names=["image", *keys],
            output_names=["restored"],
            # By argument name: the statistics are one (varargs) argument, absent without any.
            dynamic_shapes={
                "image": dynamic,
                **({"stats": tuple({} for _ in keys)} if keys else {}),
            },
            opset_version=ONNX_OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    return path


# What a graph written by `export_onnx_file` takes and returns, for the user.
ONNX_SIGNATURE = (
    "input 'image' (1, C, H, W) float32 in [0, 1], H and W multiples of the configuration's "
    f"size multiple ({NAMED_REQUIREMENTS.size_multiple} for the named ones) and at least its "
    f"minimum size ({NAMED_REQUIREMENTS.min_size}); output 'restored', the same shape"
)


def export_onnx_file(weights: Path, target: Path) -> Path:
    """The network of a .safetensors file as a self-contained ONNX graph at `target` (every
    global statistic computed from the image it is given: the engine's result for an image
    restored whole)."""
    require_onnx()
    if weights.suffix != ".safetensors" or not weights.is_file():
        raise MeasrError(
            f"'{weights}' is not a .safetensors file", "the ONNX export takes weights files"
        )
    return export_onnx(load_model(weights), target)


def graph_fingerprint(model: MEASNet, stats: SharedStats | None) -> str:
    """A name for the graph of these weights taking these statistics: a hash of the weights,
    the configuration, the statistics' names and shapes, and the exporter's versions."""
    digest = hashlib.sha256(model.config.to_json().encode())
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().float().cpu().numpy().tobytes())
    for key, value in sorted((stats or {}).items()):
        digest.update(f"{key}{tuple(value.shape[1:])}".encode())
    digest.update(f"{torch.__version__} opset {ONNX_OPSET} graph 1".encode())
    return digest.hexdigest()[:24]


def cached_graph(model: MEASNet, stats: SharedStats | None = None) -> Path:
    """The ONNX graph of `model` taking `stats`, exported on first use (minutes) and kept in
    `cache_folder("onnx")`; written under a temporary name first, so an interrupted export leaves
    nothing half-written behind."""
    path = cache_folder("onnx") / f"{model.config.name}-{graph_fingerprint(model, stats)}.onnx"
    if not path.is_file():
        partial = path.with_suffix(f".{os.getpid()}.partial")
        export_onnx(model, partial, stats)
        partial.replace(path)
    return path


def onnx_available() -> bool:
    """Whether ONNX Runtime and the exporter's packages (the `onnx` extra) are installed."""
    return all(importlib.util.find_spec(name) for name in ("onnxruntime", "onnx", "onnxscript"))


def require_onnx() -> None:
    """A MeasrError saying how to install the extra, unless it is installed."""
    if not onnx_available():
        raise MeasrError("ONNX Runtime is not installed", INSTALL_HINT)


class OnnxTilePasses:
    """The engine's forward passes (`measr.engine.inference.run_tiles`) on ONNX Runtime: one
    session per set of shared statistics (an image restored whole shares the prompt's, tiles
    every statistic of the whole image), each image of a batch run on its own."""

    def __init__(self, model: MEASNet, threads: int) -> None:
        require_onnx()
        self.model = model
        self.threads = threads
        self.sessions: dict[tuple[str, ...], Any] = {}  # onnxruntime.InferenceSession

    def session(self, stats: SharedStats) -> Any:
        """The session for graphs taking `stats`, exported or loaded on first use."""
        import onnxruntime

        keys = tuple(sorted(stats))
        if keys not in self.sessions:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            # ONNX Runtime's arena grows run after run with the data-dependent expert shapes
            # (past 14 GiB for `small` at 512 px, three runs); plain allocations stay at 2.8 GiB.
            options.enable_cpu_mem_arena = False
            path = cached_graph(self.model, stats)
            self.sessions[keys] = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        return self.sessions[keys]

    def __call__(self, x: Tensor, ctx: ForwardContext) -> Tensor:
        """The restored batch (B, C, H, W) for the input batch, sharing `ctx.shared`."""
        stats = {key: value[:1] for key, value in (ctx.shared or {}).items()}
        session = self.session(stats)
        feeds = {key: value.float().cpu().numpy() for key, value in stats.items()}
        restored = [
            session.run(None, {"image": image[None].float().cpu().numpy(), **feeds})[0]
            for image in x
        ]
        return torch.from_numpy(np.concatenate(restored)).to(x.device, x.dtype)
