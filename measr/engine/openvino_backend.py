"""MEASNet on OpenVINO's CPU runtime (issue 22).

OpenVINO converts the network from PyTorch (its PyTorch front end, not the ONNX graph: its ONNX
reader mis-shapes the one-sided `DFT` of the soft frequency split). It starts from the same
exportable copy as the ONNX graph (`measr.engine.onnx_backend.exportable_model`: routing as the
network computes it, each pixel through its top-k experts only) and rewrites three pieces into
forms OpenVINO's CPU plugin runs well, with the same arithmetic and the same parameters:

- FD's per-image depthwise low-pass filter as k*k shifted, weighted copies of the padded map
  (the plugin has no convolution whose weights are computed in the graph);
- the projections that are split in channels after their depthwise convolution (MDTA's q/k/v,
  GDFN's gate/value) as one 1x1 + depthwise pair per part: the plugin's channel split of a
  blocked-layout map ran on its reference path, 30 % of the whole pass at 512 px;
- the channels' LayerNorm over dimension 1 directly, not through two permutes.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from measr.engine.onnx_backend import (
    GraphWithStats,
    cache_folder,
    exportable_model,
    graph_fingerprint,
)
from measr.errors import MeasrError
from measr.model import MEASNet
from measr.model.backbone import (
    GDFN,
    MDTA,
    ChannelLayerNorm,
    apply_channel_attention,
    channel_attention_map,
)
from measr.model.context import ForwardContext, SharedStats
from measr.model.fd_mee import FrequencyDecomposition

INSTALL_HINT = "install the extra: pip install 'measr[openvino]'"


def split_projection(
    pointwise: nn.Conv2d, depthwise: nn.Conv2d, parts: int, x: Tensor
) -> list[Tensor]:
    """`depthwise(pointwise(x)).chunk(parts, dim=1)`, computed part by part: the output channels
    of both convolutions sliced into `parts` groups (a depthwise channel depends on its own
    input channel only, so each group is exact on its own)."""
    size = pointwise.out_channels // parts
    outputs = []
    for part in range(parts):
        channels = slice(part * size, (part + 1) * size)
        projected = F.conv2d(x, pointwise.weight[channels], sliced(pointwise.bias, channels))
        outputs.append(
            F.conv2d(
                projected,
                depthwise.weight[channels],
                sliced(depthwise.bias, channels),
                padding=depthwise.padding,
                groups=size,
            )
        )
    return outputs


def sliced(bias: Tensor | None, channels: slice) -> Tensor | None:
    return None if bias is None else bias[channels]


class PlanarLayerNorm(ChannelLayerNorm):
    """The channels' LayerNorm, reduced over dimension 1 of the (B, C, H, W) map."""

    def forward(self, x: Tensor) -> Tensor:
        centred = x - x.mean(dim=1, keepdim=True)
        variance = centred.square().mean(dim=1, keepdim=True)
        normalised = centred / torch.sqrt(variance + self.eps)
        return normalised * self.weight[:, None, None] + self.bias[:, None, None]


class SplitMDTA(MDTA):
    """MDTA with q, k and v each from its own slice of the projections."""

    def forward(self, x: Tensor, attention: Tensor | None = None) -> tuple[Tensor, Tensor]:
        q, k, v = split_projection(self.qkv, self.qkv_dwconv, 3, x)
        if attention is None:
            attention = channel_attention_map(q, k, self.heads, self.temperature)
        return self.project_out(apply_channel_attention(attention, v)), attention


class SplitGDFN(GDFN):
    """GDFN with the gate and the value each from its own slice of the projections."""

    def forward(self, x: Tensor) -> Tensor:
        gate, value = split_projection(self.project_in, self.dwconv, 2, x)
        return self.project_out(F.gelu(gate) * value)


class ShiftedFrequencyDecomposition(FrequencyDecomposition):
    """FD with the depthwise filter as a sum of k*k shifted copies of the reflect-padded map,
    each weighted per image and channel."""

    def bands(self, x: Tensor, kernels: Tensor) -> tuple[Tensor, Tensor]:
        b, c, h, w = x.shape
        k = self.kernel
        weights = kernels.repeat_interleave(c // self.groups, dim=1).to(x.dtype)
        weights = weights.reshape(b, c, k * k, 1, 1)
        pad = k // 2
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        low = padded[:, :, :h, :w] * weights[:, :, 0]
        for offset in range(1, k * k):
            dy, dx = divmod(offset, k)
            low = low + padded[:, :, dy : dy + h, dx : dx + w] * weights[:, :, offset]
        return low, x - low


# Each module type and the form OpenVINO runs (same parameters, another forward).
OPENVINO_FORMS: dict[type[nn.Module], type[nn.Module]] = {
    ChannelLayerNorm: PlanarLayerNorm,
    MDTA: SplitMDTA,
    GDFN: SplitGDFN,
    FrequencyDecomposition: ShiftedFrequencyDecomposition,
}


def openvino_model(model: MEASNet) -> MEASNet:
    """A float32 copy of `model` in the forms OpenVINO converts and runs well (module
    docstring); its parameters and outputs are the network's."""
    copy = exportable_model(model)
    for module in copy.modules():
        form = OPENVINO_FORMS.get(type(module))
        if form is not None:
            module.__class__ = form
    return copy


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def require_openvino() -> None:
    """A MeasrError saying how to install the extra, unless it is installed."""
    if not openvino_available():
        raise MeasrError("OpenVINO is not installed", INSTALL_HINT)


def convert(model: MEASNet, example: Tensor | None = None, stats: SharedStats | None = None) -> Any:
    """`model` as an OpenVINO model (openvino.Model): input 0 the image (1, C, H, W), H and W
    dynamic, then one input per statistic in `stats` (sorted by key), output the restored image.
    `example` is the image traced (default: a random one of twice the minimum size)."""
    import openvino

    if example is None:
        side = 2 * model.requirements.min_size
        example = torch.rand(
            1, model.requirements.channels, side, side, generator=torch.Generator().manual_seed(0)
        )
    keys: Sequence[str] = sorted(stats or {})
    example_stats = tuple((stats or {})[key].float().cpu() for key in keys)
    graph = GraphWithStats(openvino_model(model), keys).eval()
    shapes = [openvino.PartialShape([1, example.shape[1], -1, -1])]
    shapes += [openvino.PartialShape(list(value.shape)) for value in example_stats]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return openvino.convert_model(
            graph, example_input=(example.float().cpu(), *example_stats), input=shapes
        )


def compile_for_cpu(converted: Any, threads: int, shape: Sequence[int] | None = None) -> Any:
    """An OpenVINO compiled model on the CPU, float32, `threads` threads, fixed to the image
    `shape` when given (the plugin plans its memory once: about 1.1x at 256 px against
    dynamic shapes)."""
    import openvino

    if shape is not None:
        converted = converted.clone()
        converted.reshape({0: list(shape)})
    return openvino.Core().compile_model(
        converted,
        "CPU",
        {
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32",
        },
    )


def cached_conversion(model: MEASNet, stats: SharedStats | None = None) -> Any:
    """The OpenVINO model of `model` taking `stats`, converted on first use (half a minute for
    `small`) and kept as OpenVINO IR in the cache folder: a folder per network, named like the
    ONNX graphs, written whole under a temporary name and then renamed, so that two processes
    converting at once never mix one's .xml with the other's .bin."""
    import openvino

    folder = cache_folder().with_name("openvino")
    target = folder / f"{model.config.name}-{graph_fingerprint(model, stats)}"
    if not (target / "model.xml").is_file():
        partial = folder / f"{target.name}.{os.getpid()}.partial"
        partial.mkdir(parents=True, exist_ok=True)
        openvino.save_model(
            convert(model, stats=stats), str(partial / "model.xml"), compress_to_fp16=False
        )
        try:
            partial.rename(target)
        except OSError:  # another process got there first: keep its copy
            shutil.rmtree(partial, ignore_errors=True)
    return openvino.Core().read_model(str(target / "model.xml"))


def export_openvino_file(weights: Path, target: Path) -> Path:
    """The network of a .safetensors file as self-contained OpenVINO IR at `target` (.xml, its
    weights beside it as .bin), float32: every global statistic from the image it is given."""
    import openvino

    from measr.weights import load_model

    require_openvino()
    if weights.suffix != ".safetensors" or not weights.is_file():
        raise MeasrError(
            f"'{weights}' is not a .safetensors file", "the OpenVINO export takes weights files"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    openvino.save_model(convert(load_model(weights)), str(target), compress_to_fp16=False)
    return target


class OpenVinoTilePasses:
    """The engine's forward passes (`measr.engine.inference.run_tiles`) on OpenVINO: one
    conversion per set of shared statistics, each image of a batch run on its own. An image
    shape seen once (a photo restored whole) runs on a model compiled for any shape; a shape
    that comes again (a photo's tiles) gets a model compiled for it (seconds, then faster)."""

    def __init__(self, model: MEASNet, threads: int) -> None:
        require_openvino()
        self.model = model
        self.threads = threads
        self.converted: dict[tuple[str, ...], Any] = {}  # openvino.Model
        # Compiled models by (statistics, image shape or None for any shape).
        self.compiled: dict[tuple[tuple[str, ...], tuple[int, ...] | None], Any] = {}
        self.shapes_seen: set[tuple[tuple[str, ...], tuple[int, ...]]] = set()

    def request(self, stats: SharedStats, shape: Sequence[int]) -> Any:
        """An infer request of the network taking `stats`, for images of `shape`."""
        keys = tuple(sorted(stats))
        if keys not in self.converted:
            self.converted[keys] = cached_conversion(self.model, stats)
        seen = (keys, tuple(shape))
        fixed = tuple(shape) if seen in self.shapes_seen else None
        self.shapes_seen.add(seen)
        if (keys, fixed) not in self.compiled:
            self.compiled[keys, fixed] = compile_for_cpu(self.converted[keys], self.threads, fixed)
        return self.compiled[keys, fixed].create_infer_request()

    def __call__(self, x: Tensor, ctx: ForwardContext) -> Tensor:
        """The restored batch (B, C, H, W) for the input batch, sharing `ctx.shared`."""
        stats = {key: value[:1] for key, value in (ctx.shared or {}).items()}
        feeds = [stats[key].float().cpu().numpy() for key in sorted(stats)]
        request = self.request(stats, (1, *x.shape[1:]))
        restored = [
            request.infer([image[None].float().cpu().numpy(), *feeds])[0].copy() for image in x
        ]
        return torch.from_numpy(np.concatenate(restored)).to(x.device, x.dtype)
