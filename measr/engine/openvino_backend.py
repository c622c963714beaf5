"""MEASNet on OpenVINO's CPU runtime (issue 22).

OpenVINO converts the network from PyTorch (its PyTorch front end, not the ONNX graph: its ONNX
reader mis-shapes the one-sided `DFT` of the soft frequency split). It starts from the same
exportable copy as the ONNX graph (`measr.engine.onnx_backend.exportable_model`: routing as the
network computes it, each pixel through its top-k experts only) and rewrites three pieces into
forms OpenVINO's CPU plugin runs well, with the same arithmetic and the same parameters:

- FD's per-image depthwise low-pass filter as k*k shifted, weighted copies of the padded map
  (the plugin has no convolution whose weights are computed in the graph);
- the projections that are split in channels after their depthwise convolution (MDTA's q/k/v,
  the cross-attention's k/v, GDFN's gate/value) as one 1x1 + depthwise pair per part: the
  plugin's channel split of a blocked-layout map ran on its reference path, 30 % of the whole
  pass at 512 px;
- the channels' LayerNorm over dimension 1 directly, not through two permutes;
- the attention maps and their products with v from the maps' pixel rows (`pixel_rows`), the
  order the plugin keeps a depthwise convolution's output in: in channel rows every q, k and v
  was copied into another layout first (the context pass at 1024 x 768 on AVX2: 1.46x).

The tiles of a photo share its statistics (attention maps, FD's filters, the routers' choices).
Their graph takes them as inputs, and is compiled once per photo with them as constants
(`specialised`): the plugin then folds each attention map into the projection after it (one
1x1 convolution instead of a matrix product between two layout changes) and runs FD's filter
as an ordinary depthwise convolution (`PHOTO_FORMS`).

On CPUs that compute in bfloat16 natively (AMX, AVX512-BF16) a photo's tiles run in bfloat16
unless asked for float32 (`native_bfloat16`); the context pass, which makes the per-image
choices every tile shares, always runs in float32.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from measr.engine.conversion_cache import cache_folder, read_entry, remove, write_entry
from measr.engine.inference import network_capture
from measr.engine.onnx_backend import GraphWithStats, exportable_model, graph_fingerprint
from measr.errors import MeasrError
from measr.model import MEASNet
from measr.model.backbone import (
    GDFN,
    MDTA,
    ChannelLayerNorm,
    attention_from_products,
)
from measr.model.context import ForwardContext, SharedStats
from measr.model.fd_mee import FrequencyDecomposition
from measr.model.freq_cross_attention import CrossAttention

INSTALL_HINT = "install the extra: pip install 'measr[openvino]'"
# What a process says, once, before its first conversion (`OpenVinoTilePasses.notify`); the
# time is measured on 2 cores (docs/performance.md, "The default install").
CONVERSION_NOTICE = (
    "converting the network for OpenVINO, once for these weights: about {minutes} on 2 cores; "
    "later runs read it from {folder}"
)
CONVERSION_MINUTES = "1-3 minutes"


def split_projection(
    pointwise: nn.Conv2d, depthwise: nn.Conv2d, parts: int, x: Tensor
) -> list[Tensor]:
    """`depthwise(pointwise(x)).chunk(parts, dim=1)`, computed part by part."""
    return [part_projection(pointwise, depthwise, parts, part, x) for part in range(parts)]


def part_projection(
    pointwise: nn.Conv2d, depthwise: nn.Conv2d, parts: int, part: int, x: Tensor
) -> Tensor:
    """`depthwise(pointwise(x)).chunk(parts, dim=1)[part]` from that part's slice of the output
    channels of both convolutions (a depthwise channel depends on its own input channel only,
    so each slice is exact on its own)."""
    size = pointwise.out_channels // parts
    channels = slice(part * size, (part + 1) * size)
    projected = F.conv2d(x, pointwise.weight[channels], sliced(pointwise.bias, channels))
    return F.conv2d(
        projected,
        depthwise.weight[channels],
        sliced(depthwise.bias, channels),
        padding=depthwise.padding,
        groups=size,
    )


def attended_projection(project_out: nn.Conv2d, attention: Tensor) -> Tensor:
    """The weight of `project_out` after each image's per-head map, (B, out, C): the 1x1
    projection of `apply_channel_attention(attention, v)` is this times v's channels."""
    out_channels, channels = project_out.weight.shape[:2]
    heads, size = attention.shape[1], attention.shape[2]
    per_head = project_out.weight.reshape(out_channels, heads, size)
    weight = torch.einsum("ohi,bhij->bohj", per_head, attention)
    return weight.reshape(attention.shape[0], out_channels, channels)


def projected_attention(project_out: nn.Conv2d, attention: Tensor, v: Tensor) -> Tensor:
    """`project_out(apply_channel_attention(attention, v))` for one image, as one 1x1
    convolution (`attended_projection`). Its weight is computed from the map, so OpenVINO's
    CPU plugin compiles it only where the map is a constant."""
    weight = attended_projection(project_out, attention)[0]
    return F.conv2d(v, weight[:, :, None, None], project_out.bias)


def sliced(bias: Tensor | None, channels: slice) -> Tensor | None:
    return None if bias is None else bias[channels]


def pixel_rows(x: Tensor) -> Tensor:
    """The (B, C, H, W) map as (B, H*W, C), one row per pixel: the order in which the plugin
    keeps a depthwise convolution's output, so it reads it without a copy (in channel rows,
    (B, h, C/h, H*W), every map was copied first: 55 % of the context pass's profile at
    1024 x 768 on AVX2)."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1])


def attention_from_rows(q: Tensor, k: Tensor, heads: int, temperature: Tensor) -> Tensor:
    """`channel_attention_map(q, k, heads, temperature)` from the maps' pixel rows: every
    channel's product with every other (the per-head blocks of the C x C product; the others,
    (heads - 1) / heads of it, are computed and dropped) and the channels' norms."""
    rows_q, rows_k = pixel_rows(q), pixel_rows(k)
    products = rows_q.transpose(1, 2) @ rows_k
    size = q.shape[1] // heads
    dots = torch.stack(
        [products[:, i * size : (i + 1) * size, i * size : (i + 1) * size] for i in range(heads)],
        dim=1,
    )
    return attention_from_products(dots, channel_norms(q), channel_norms(k), temperature)


def channel_norms(x: Tensor) -> Tensor:
    """The L2 norm of each channel of x (B, C, H, W) over its pixels, (B, C), summed along rows
    first: one sum over the pixel rows ran sequentially in float32 (relative error 3e-5 at
    1024 x 768, against 5e-7 in two steps, which is also faster)."""
    return x.square().sum(dim=3).sum(dim=2).sqrt()


def projected_attention_rows(project_out: nn.Conv2d, attention: Tensor, v: Tensor) -> Tensor:
    """`project_out(apply_channel_attention(attention, v))` as one matrix product of v's pixel
    rows with each image's `attended_projection` (a 1x1 convolution whose weight is computed,
    which the plugin runs as a product)."""
    b, _, h, w = v.shape
    out = pixel_rows(v) @ attended_projection(project_out, attention).transpose(1, 2)
    if project_out.bias is not None:
        out = out + project_out.bias
    return out.reshape(b, h, w, project_out.out_channels).permute(0, 3, 1, 2)


class PlanarLayerNorm(ChannelLayerNorm):
    """The channels' LayerNorm, reduced over dimension 1 of the (B, C, H, W) map."""

    def forward(self, x: Tensor) -> Tensor:
        centred = x - x.mean(dim=1, keepdim=True)
        variance = centred.square().mean(dim=1, keepdim=True)
        normalised = centred / torch.sqrt(variance + self.eps)
        return normalised * self.weight[:, None, None] + self.bias[:, None, None]


class SplitMDTA(MDTA):
    """MDTA with q, k and v each from its own slice of the projections, the attention map and
    its product with v from the maps' pixel rows."""

    def forward(self, x: Tensor, attention: Tensor | None = None) -> tuple[Tensor, Tensor]:
        q, k, v = split_projection(self.qkv, self.qkv_dwconv, 3, x)
        if attention is None:
            attention = attention_from_rows(q, k, self.heads, self.temperature)
        return projected_attention_rows(self.project_out, attention, v), attention


class SplitGDFN(GDFN):
    """GDFN with the gate and the value each from its own slice of the projections."""

    def forward(self, x: Tensor) -> Tensor:
        gate, value = split_projection(self.project_in, self.dwconv, 2, x)
        return self.project_out(F.gelu(gate) * value)


class PhotoMDTA(SplitMDTA):
    """SplitMDTA for a photo's tiles: given the photo's attention map, v alone through it and
    the projection as one convolution."""

    def forward(self, x: Tensor, attention: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if attention is None:
            return super().forward(x)
        v = part_projection(self.qkv, self.qkv_dwconv, 3, 2, x)
        return projected_attention(self.project_out, attention, v), attention


class SplitCrossAttention(CrossAttention):
    """Cross-attention with the key and the value each from its own slice of the projections,
    the map and its product with v from pixel rows, as SplitMDTA."""

    def attend(
        self, query: Tensor, source: Tensor, attention: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        k, v = split_projection(self.kv, self.kv_dwconv, 2, source)
        if attention is None:
            q = self.q_dwconv(self.q(query))
            attention = attention_from_rows(q, k, self.heads, self.temperature)
        return projected_attention_rows(self.project_out, attention, v), attention


class PhotoCrossAttention(SplitCrossAttention):
    """SplitCrossAttention for a photo's tiles, as PhotoMDTA."""

    def attend(
        self, query: Tensor, source: Tensor, attention: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        if attention is None:
            return super().attend(query, source)
        v = part_projection(self.kv, self.kv_dwconv, 2, 1, source)
        return projected_attention(self.project_out, attention, v), attention


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


Forms = dict[type[nn.Module], type[nn.Module]]

# Each module type and the form OpenVINO runs (same parameters, another forward).
OPENVINO_FORMS: Forms = {
    ChannelLayerNorm: PlanarLayerNorm,
    MDTA: SplitMDTA,
    CrossAttention: SplitCrossAttention,
    GDFN: SplitGDFN,
    FrequencyDecomposition: ShiftedFrequencyDecomposition,
}
# The forms of the tile graph, compiled with the photo's statistics as constants: FD's filter
# is a constant there, so it stays a convolution.
PHOTO_FORMS: Forms = {
    ChannelLayerNorm: PlanarLayerNorm,
    MDTA: PhotoMDTA,
    CrossAttention: PhotoCrossAttention,
    GDFN: SplitGDFN,
}
# Part of the cached conversions' names: a new number when the forms change.
FORMS_VERSION = 3


def openvino_model(model: MEASNet, forms: Forms = OPENVINO_FORMS) -> MEASNet:
    """A float32 copy of `model` in the forms OpenVINO converts and runs well (module
    docstring); its parameters and outputs are the network's."""
    copy = exportable_model(model)
    for module in copy.modules():
        form = forms.get(type(module))
        if form is not None:
            module.__class__ = form
    return copy


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def require_openvino() -> None:
    """A MeasrError saying how to install the extra, unless it is installed."""
    if not openvino_available():
        raise MeasrError("OpenVINO is not installed", INSTALL_HINT)


def example_image(model: MEASNet) -> Tensor:
    """A random (1, C, H, W) image of twice the network's minimum size, the same every time."""
    side = 2 * model.requirements.min_size
    generator = torch.Generator().manual_seed(0)
    return torch.rand(1, model.requirements.channels, side, side, generator=generator)


def traced(graph: nn.Module, image: Tensor, others: Sequence[Tensor]) -> Any:
    """`graph` (image, *others) converted by OpenVINO: the image's height and width dynamic,
    the other inputs' shapes as given."""
    import openvino

    shapes = [openvino.PartialShape([1, image.shape[1], -1, -1])]
    shapes += [openvino.PartialShape(list(value.shape)) for value in others]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return openvino.convert_model(
            graph.eval(), example_input=(image.float().cpu(), *others), input=shapes
        )


def convert(model: MEASNet, example: Tensor | None = None, stats: SharedStats | None = None) -> Any:
    """`model` as an OpenVINO model (openvino.Model): input 0 the image (1, C, H, W), H and W
    dynamic, then one input per statistic in `stats` (sorted by key), output the restored image.
    `example` is the image traced (default: `example_image`). With statistics it is a tile
    graph, in `PHOTO_FORMS`: compile it `specialised`."""
    keys: Sequence[str] = sorted(stats or {})
    example_stats = [(stats or {})[key].float().cpu() for key in keys]
    forms = PHOTO_FORMS if keys else OPENVINO_FORMS
    graph = GraphWithStats(openvino_model(model, forms), keys)
    return traced(graph, example if example is not None else example_image(model), example_stats)


def native_bfloat16() -> bool:
    """Whether OpenVINO's CPU plugin computes in bfloat16 natively on this CPU (AMX or
    AVX512-BF16); elsewhere it would emulate it, slower than float32."""
    import openvino

    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


# The precisions the passes may compute in, as OpenVINO's inference precision hint names them.
PRECISION_HINTS = {"float32": "f32", "bfloat16": "bf16"}


def compile_for_cpu(
    converted: Any, threads: int, shape: Sequence[int] | None = None, precision: str = "float32"
) -> Any:
    """An OpenVINO compiled model on the CPU, `threads` threads, computing in `precision`
    (`PRECISION_HINTS`; always named: OpenVINO's own default is bfloat16 where the CPU has
    it), fixed to the image `shape` when given (the plugin plans its memory once: about 1.1x
    at 256 px against dynamic shapes)."""
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
            "INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision],
        },
    )


def specialised(converted: Any, stats: Sequence[np.ndarray]) -> Any:
    """A copy of the tile graph `converted` with its statistics (inputs 1.., in order) as
    constants: what depends on them alone is folded when it is compiled."""
    from openvino import opset13

    copy = converted.clone()
    for parameter, value in zip(copy.get_parameters()[1:], stats, strict=True):
        parameter.output(0).replace(opset13.constant(value).output(0))
        copy.remove_parameter(parameter)
    copy.validate_nodes_and_infer_types()
    return copy


class ContextGraph(nn.Module):
    """The context pass as a function of tensors only: (image, prompt features) -> every
    global statistic the network computes on the image, in the order of `keys`."""

    def __init__(self, model: MEASNet, prompt_key: str, keys: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.prompt_key = prompt_key
        self.keys = tuple(keys)

    def forward(self, image: Tensor, prompt: Tensor) -> tuple[Tensor, ...]:
        ctx = ForwardContext(capture_global=True, shared={self.prompt_key: prompt})
        self.model(image, ctx)
        return tuple(ctx.captured[key] for key in self.keys)


def captured_types(model: MEASNet, prompt: SharedStats) -> dict[str, torch.dtype]:
    """The statistics the context pass computes (`prompt` given), by key, with their types:
    from one pass on `example_image`."""
    ctx = ForwardContext(capture_global=True, shared=prompt)
    with torch.no_grad():
        model(example_image(model), ctx)
    return {key: value.dtype for key, value in sorted(ctx.captured.items())}


def convert_context(model: MEASNet, prompt: SharedStats) -> Any:
    """The context pass of `model` as an OpenVINO model: input 0 the image (1, C, H, W), H and
    W dynamic, input 1 the prompt's pooled features; outputs `captured_types`' statistics, in
    its order."""
    (prompt_key, features), *_ = prompt.items()
    graph = ContextGraph(openvino_model(model), prompt_key, list(captured_types(model, prompt)))
    return traced(graph, example_image(model), [features.float().cpu()])


def cached_conversion(
    model: MEASNet,
    stats: SharedStats | None = None,
    *,
    context: bool = False,
    on_convert: Callable[[Path], None] | None = None,
) -> Any:
    """The OpenVINO model of `model` taking `stats` (the context pass taking the prompt's
    features `stats` when `context`), converted on first use (a minute or so for `small`) and
    kept as OpenVINO IR in the cache (`measr.engine.conversion_cache`): a folder per network,
    named by a hash of its weights (`graph_fingerprint`), whose files are checked against
    their recorded sha256 as they are loaded. A damaged or altered entry is converted again.
    `on_convert(folder)` is told before a conversion starts, with the cache folder."""
    import openvino

    kind = "context-" if context else ""
    fingerprint = graph_fingerprint(model, stats)
    target = cache_folder("openvino") / f"{model.config.name}-{kind}{fingerprint}-{FORMS_VERSION}"
    files = read_entry(target, IR_FILES)
    loaded = None if files is None else ir_model(files)
    if loaded is not None:
        return loaded
    remove(target)  # damaged in a way only OpenVINO saw
    if on_convert is not None:
        on_convert(target.parent)
    converted = convert_context(model, stats or {}) if context else convert(model, stats=stats)
    write_entry(
        target,
        lambda folder: openvino.save_model(
            converted, str(folder / IR_FILES[0]), compress_to_fp16=False
        ),
    )
    # As later runs will read it: the IR read back rounds a few pixels otherwise than the
    # model just converted (1/255 in 3 of 19008 of a tiny network's), and the first run must
    # give the picture the next ones give.
    files = read_entry(target, IR_FILES)
    written = None if files is None else ir_model(files)
    return converted if written is None else written


# An OpenVINO IR: the graph, and its weights beside it.
IR_FILES = ("model.xml", "model.bin")


def ir_model(files: dict[str, bytes]) -> Any:
    """The OpenVINO model in the bytes of IR_FILES, or None where OpenVINO cannot read them."""
    import openvino

    graph, weights = (files[name] for name in IR_FILES)
    try:
        return openvino.Core().read_model(graph, openvino.Tensor(np.frombuffer(weights, np.uint8)))
    except RuntimeError:
        return None


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
    """The engine's forward passes (`measr.engine.inference.run_tiles`) on OpenVINO, each image
    of a batch run on its own. A photo's tiles (passes with shared statistics) run on the tile
    graph compiled for their shape with the photo's statistics folded in (seconds, once per
    photo). A photo restored whole runs on the graph without statistics: compiled for any
    shape the first time a shape is seen, for that shape when it comes again.

    Where the CPU computes bfloat16 natively (`native_bfloat16`), and unless `float32`, the
    passes given the context pass's statistics (a photo's tiles) compute in bfloat16; the
    context pass itself, and any pass that makes its own per-image choices, in float32."""

    def __init__(
        self,
        model: MEASNet,
        threads: int,
        *,
        float32: bool = False,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        require_openvino()
        self.model = model
        self.threads = threads
        # Told once, before the first conversion (the library never prints: its caller does).
        self.notify = notify
        self.bfloat16 = not float32 and native_bfloat16()
        # What the latest passes computed in (`PRECISION_HINTS`; `Restoration.precision`).
        self.precision = "float32"
        self.converted: dict[tuple[str, ...], Any] = {}  # openvino.Model
        # Whole images: compiled models by image shape (None: any shape).
        self.compiled: dict[tuple[int, ...] | None, Any] = {}
        self.shapes_seen: set[tuple[int, ...]] = set()
        # The last photo's statistics, and its tile graphs compiled by tile shape.
        self.photo: list[np.ndarray] = []
        self.photo_compiled: dict[tuple[int, ...], Any] = {}
        # The context pass, converted on first use, and its statistics' types.
        self.context: Any = None
        self.context_types: dict[str, torch.dtype] = {}

    def capture(self, image: Tensor, prompt: SharedStats | None) -> SharedStats:
        """The context pass on OpenVINO (`measr.engine.inference.ContextCapture`): every global
        statistic of the network on `image` (1, C, H, W), the prompt's pooled features given.
        Compiled for the image's shape (a few seconds, once per photo)."""
        if not prompt:
            return network_capture(self.model)(image, prompt)
        if self.context is None:
            self.context = cached_conversion(
                self.model, prompt, context=True, on_convert=self.converting
            )
            self.context_types = captured_types(self.model, prompt)
        compiled = compile_for_cpu(self.context, self.threads, tuple(image.shape))
        features = next(iter(prompt.values()))
        outputs = compiled([image.float().cpu().numpy(), features.float().cpu().numpy()])
        return {
            key: torch.from_numpy(outputs[index].copy()).to(image.device, dtype)
            for index, (key, dtype) in enumerate(self.context_types.items())
        }

    def converting(self, folder: Path) -> None:
        """Say once, before the first of the network's conversions (context, tiles, whole
        images), what is happening and how long it takes."""
        if self.notify is not None:
            notice = CONVERSION_NOTICE.format(minutes=CONVERSION_MINUTES, folder=folder)
            self.notify(notice)
            self.notify = None

    def conversion(self, stats: SharedStats) -> Any:
        keys = tuple(sorted(stats))
        if keys not in self.converted:
            self.converted[keys] = cached_conversion(self.model, stats, on_convert=self.converting)
        return self.converted[keys]

    def whole_image_request(self, shape: tuple[int, ...]) -> Any:
        fixed = shape if shape in self.shapes_seen else None
        self.shapes_seen.add(shape)
        if fixed not in self.compiled:
            self.compiled[fixed] = compile_for_cpu(
                self.conversion({}), self.threads, fixed, self.precision
            )
        return self.compiled[fixed].create_infer_request()

    def tile_request(self, stats: SharedStats, shape: tuple[int, ...]) -> Any:
        values = [stats[key].float().cpu().numpy() for key in sorted(stats)]
        same_photo = len(values) == len(self.photo) and all(
            np.array_equal(a, b) for a, b in zip(values, self.photo, strict=True)
        )
        if not same_photo:
            self.photo, self.photo_compiled = values, {}
        if shape not in self.photo_compiled:
            graph = specialised(self.conversion(stats), values)
            self.photo_compiled[shape] = compile_for_cpu(graph, self.threads, shape, self.precision)
        return self.photo_compiled[shape].create_infer_request()

    def __call__(self, x: Tensor, ctx: ForwardContext) -> Tensor:
        """The restored batch (B, C, H, W) for the input batch, sharing `ctx.shared`."""
        stats = {key: value[:1] for key, value in (ctx.shared or {}).items()}
        shape = (1, *x.shape[1:])
        # bfloat16 where the per-image choices come from the float32 context pass.
        from_context = set(stats) - {self.model.task_prompt.context_key}
        self.precision = "bfloat16" if self.bfloat16 and from_context else "float32"
        request = self.tile_request(stats, shape) if stats else self.whole_image_request(shape)
        restored = [request.infer([image[None].float().cpu().numpy()])[0].copy() for image in x]
        return torch.from_numpy(np.concatenate(restored)).to(x.device, x.dtype)
