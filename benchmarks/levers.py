"""Which speed levers pay: variants of one forward pass timed in the same process, alternating,
best of N, so that their ratios survive a busy machine (docs/performance.md).

    OMP_WAIT_POLICY=PASSIVE nice python benchmarks/levers.py --config small --size 256 \
        --variants reference,fused,strips,compiled,compiled-strips --repeats 5

Every variant is checked against the reference output (PSNR in dB over [0, 1] pixels).
The first call of a compiled variant (compilation, or loading from inductor's cache) is
reported separately.

The ONNX Runtime variants (issue 22; `pip install 'measr[onnx]'`) run the network exported by
`measr.engine.onnx_backend` (exported on first use, minutes, then cached): `onnx` with
--threads intra-op threads, `onnx-int8` with the 1x1 convolutions dynamically quantised to int8,
`onnx-arena` with ONNX Runtime's memory arena on,
`onnx-pair` two images at once, each on its own single-threaded session (times are per image).
`engine` is what `Restorer` runs on CPU (fused experts, row strips).

The OpenVINO variants (`pip install openvino`) convert the same exportable network with
OpenVINO's PyTorch front end, in the forms `measr.engine.openvino_backend` gives it: `openvino`
compiled for the input's shape, `openvino-dynamic` for any height and width.

A tiled photo's passes take the statistics of its context pass: `engine-tile` is the engine
given them (computed once on the input itself, outside the timing), `openvino-tile` the tile
graph the OpenVINO backend runs (the statistics folded in, compiled for the input's shape),
`openvino-tile-bf16` the same computing in bfloat16, as the backend does where the CPU has it.

    OMP_WAIT_POLICY=PASSIVE nice python benchmarks/levers.py --config small --size 512 \
        --weights weights/small-5task.safetensors --variants engine,onnx,onnx-pair --threads 2
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import torch._inductor.config
from torch import Tensor

from measr.allocator import tune_process
from measr.engine.acceleration import (
    Acceleration,
    accelerate,
    compile_steps,
    default_acceleration,
)
from measr.engine.fused_experts import fuse_experts
from measr.engine.inference import capture_global_context, prompt_features
from measr.engine.row_strips import stripe_blocks
from measr.evaluation.metrics import unquantised_psnr
from measr.model import MEASNet, build_model
from measr.model.context import ForwardContext, SharedStats
from measr.weights import load_model

Forward = Callable[[], Tensor]
# Images each call of a variant restores (the others restore one).
IMAGES_PER_CALL = {"onnx-pair": 2}


def fresh_model(config: str, weights: str | None) -> MEASNet:
    if weights:
        return load_model(weights).eval()
    torch.manual_seed(0)
    return build_model(config).eval()


def variant(name: str, model: MEASNet, x: Tensor) -> Forward:
    """One lever setting as a zero-argument forward."""
    if name == "reference":
        return lambda: model(x).image
    if name == "engine":
        accelerate(model, default_acceleration(x.device))
        return lambda: model(x).image
    if name == "engine-tile":
        shared = tile_stats(model, x)
        accelerate(model, default_acceleration(x.device))
        return lambda: model(x, ForwardContext(shared=shared)).image
    if name.startswith("onnx"):
        return onnx_variant(name, model, x)
    if name.startswith("openvino"):
        return openvino_variant(name, model, x)
    if name == "fused":
        fuse_experts(model)
        return lambda: model(x).image
    if name == "fused-cl":
        fuse_experts(model)
        model.to(memory_format=torch.channels_last)
        xc = x.contiguous(memory_format=torch.channels_last)
        return lambda: model(xc).image
    if name == "strips":
        accelerate(model, Acceleration(row_strips=True))
        return lambda: model(x).image
    if name.startswith("strips-") and name.removeprefix("strips-").isdigit():
        # Row strips whose widest map is at most this many KiB (measr's default: 8192).
        fuse_experts(model)
        stripe_blocks(model, budget=int(name.removeprefix("strips-")) * 2**10)
        return lambda: model(x).image
    if name == "compiled-strips":
        acceleration = Acceleration(compile=True, row_strips=True)
        accelerate(model, acceleration)
        xc = x.contiguous(memory_format=acceleration.memory_format)
        return lambda: model(xc).image
    if name == "compiled-nchw":
        fuse_experts(model)
        compile_steps(model)
        return lambda: model(x).image
    if name == "compiled":
        acceleration = Acceleration(compile=True)
        accelerate(model, acceleration)
        xc = x.contiguous(memory_format=acceleration.memory_format)
        return lambda: model(xc).image
    if name == "compiled-frozen":
        # Inductor's freezing: weights become constants, convolutions and linears are
        # pre-packed for oneDNN. Read when a graph compiles, so list this variant last.
        torch._inductor.config.freezing = True
        acceleration = Acceleration(compile=True)
        accelerate(model, acceleration)
        xc = x.contiguous(memory_format=acceleration.memory_format)
        return lambda: model(xc).image
    if name.endswith("-bf16"):
        # Any variant under bf16 autocast (AMX matmuls and convolutions on recent Xeons).
        fp32_forward = variant(name.removesuffix("-bf16"), model, x)

        def forward() -> Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return fp32_forward().float()

        return forward
    raise SystemExit(f"unknown variant {name}")


def onnx_session(path: Path, threads: int, arena: bool = False):  # -> InferenceSession
    """An ONNX Runtime session on the CPU with `threads` intra-op threads, with or without
    ONNX Runtime's memory arena (`onnx-arena`: it grows from run to run, see the backend)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # ONNX Runtime's arena grows run after run with the data-dependent expert shapes
    # (past 14 GiB for `small` at 512 px, three runs); plain allocations stay at 2.8 GiB.
    options.enable_cpu_mem_arena = arena
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def pointwise_conv_nodes(path: Path) -> list[str]:
    """Names of the graph's 1x1 convolutions that mix channels (group 1): what `onnx-int8`
    quantises. The expert MLPs are Gemm nodes, which ONNX Runtime's dynamic quantisation does
    not cover; depthwise and 3x3 convolutions stay float."""
    import onnx

    graph = onnx.load(str(path)).graph
    kernels = {init.name: tuple(init.dims[2:]) for init in graph.initializer}
    names = []
    for node in graph.node:
        groups = [a.i for a in node.attribute if a.name == "group"] or [1]
        if node.op_type == "Conv" and kernels.get(node.input[1]) == (1, 1) and groups[0] == 1:
            names.append(node.name)
    return names


def int8_graph(path: Path) -> Path:
    """The graph at `path` with its 1x1 convolutions quantised to int8 (weights per channel,
    activations per tensor at run time), kept beside it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantised = path.with_name(path.stem + "-int8.onnx")
    if not quantised.is_file():
        quantize_dynamic(
            str(path),
            str(quantised),
            op_types_to_quantize=["Conv"],
            nodes_to_quantize=pointwise_conv_nodes(path),
            per_channel=True,
            weight_type=QuantType.QInt8,
        )
    return quantised


def onnx_variant(name: str, model: MEASNet, x: Tensor) -> Forward:
    """`onnx`, `onnx-int8` or `onnx-pair` (module docstring) as a zero-argument forward."""
    from measr.engine.onnx_backend import cached_graph

    path = cached_graph(model)
    image = x.numpy()
    if name == "onnx-pair":
        sessions = [onnx_session(path, 1) for _ in range(2)]
        pool = ThreadPoolExecutor(max_workers=2)

        def pair() -> Tensor:
            runs = [pool.submit(s.run, None, {"image": image}) for s in sessions]
            outputs = [run.result()[0] for run in runs]
            return torch.from_numpy(outputs[0])

        return pair
    if name not in ("onnx", "onnx-int8", "onnx-arena"):
        raise SystemExit(f"unknown variant {name}")
    session = onnx_session(
        int8_graph(path) if name == "onnx-int8" else path,
        torch.get_num_threads(),
        arena=name == "onnx-arena",
    )
    return lambda: torch.from_numpy(session.run(None, {"image": image})[0])


def tile_stats(model: MEASNet, x: Tensor) -> SharedStats:
    """The statistics a photo's tiles share, from the context pass on x's first image."""
    pixels = x[0].permute(1, 2, 0).contiguous()
    prompt = prompt_features(model, pixels, x.device, x.dtype)
    side = max(x.shape[-2:])
    return capture_global_context(model, pixels.numpy(), side, x.device, x.dtype, prompt=prompt)


def openvino_variant(name: str, model: MEASNet, x: Tensor) -> Forward:
    """`openvino` (compiled for x's shape), `openvino-dynamic`, `openvino-tile` or
    `openvino-tile-bf16` (module docstring) as a zero-argument forward."""
    from measr.engine.openvino_backend import compile_for_cpu, convert, specialised

    threads = torch.get_num_threads()
    if name in ("openvino-tile", "openvino-tile-bf16"):
        stats = tile_stats(model, x)
        values = [stats[key].float().numpy() for key in sorted(stats)]
        graph = specialised(convert(model, x, stats), values)
        precision = "bfloat16" if name.endswith("-bf16") else "float32"
        compiled = compile_for_cpu(graph, threads, x.shape, precision)
    elif name in ("openvino", "openvino-dynamic"):
        shape = x.shape if name == "openvino" else None
        compiled = compile_for_cpu(convert(model, x), threads, shape)
    else:
        raise SystemExit(f"unknown variant {name}")
    request = compiled.create_infer_request()
    image = x.numpy()
    return lambda: torch.from_numpy(request.infer({0: image})[0].copy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="small")
    parser.add_argument("--weights", default=None, help="a .safetensors file (default: random)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--variants", default="reference,fused,compiled")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    # As the measr command runs (huge pages, freed memory kept for reuse): every variant's
    # large buffers are fresh allocations.
    tune_process()
    torch.set_num_threads(args.threads)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    names = args.variants.split(",")
    forwards: dict[str, Forward] = {}
    first: dict[str, float] = {}
    outputs: dict[str, Tensor] = {}
    with torch.inference_mode():
        for name in names:
            forwards[name] = variant(name, fresh_model(args.config, args.weights), x)
            start = time.perf_counter()
            outputs[name] = forwards[name]()
            first[name] = time.perf_counter() - start
        best = dict.fromkeys(names, math.inf)
        runs: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(args.repeats):
            for name in names:
                start = time.perf_counter()
                forwards[name]()
                per_image = (time.perf_counter() - start) / IMAGES_PER_CALL.get(name, 1)
                best[name] = min(best[name], per_image)
                runs[name].append(per_image)
    reference = names[0]
    print(
        f"{args.config} {args.batch}x{args.size}px, {args.threads} thread(s), best of "
        f"{args.repeats}, ratios to '{reference}'\n"
    )
    print("| variant | first call s | best s | median s | MPix/s | x ref | PSNR vs ref dB |")
    print("|---|---|---|---|---|---|---|")
    megapixels = args.batch * args.size**2 / 1e6
    for name in names:
        agreement = unquantised_psnr(
            outputs[name].float().numpy(), outputs[reference].float().numpy()
        )
        print(
            f"| {name} | {first[name]:.1f} | {best[name]:.3f} "
            f"| {statistics.median(runs[name]):.3f} "
            f"| {megapixels / best[name]:.3f} "
            f"| {best[reference] / best[name]:.2f} | {agreement:.1f} |"
        )


if __name__ == "__main__":
    main()
