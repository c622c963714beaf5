"""`Restorer`: weights on a device, and `restore(pixels)` for an image of any size."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from measr import manifest
from measr.engine.acceleration import (
    accelerate,
    always_eager,
    default_acceleration,
    eager_unless,
)
from measr.engine.backends import (
    default_backend,
    missing_runtime_hint,
    resolve_backend,
    tile_passes,
)
from measr.engine.damage import DamageReading
from measr.engine.device import check_half, resolve_device
from measr.engine.harm import gains_by_kind, kind_left_as_is
from measr.engine.inference import (
    ContextCapture,
    ProgressCallback,
    TileForward,
    balanced_tile,
    capture_global_context,
    plan_tiles,
    prompt_features,
    run_tiles,
)
from measr.engine.memory import MemoryPlan, plan_memory, planned_peak
from measr.engine.options import RestoreOptions, RuntimeOptions
from measr.engine.padding import check_not_too_thin, with_edge_margin, without_edge_margin
from measr.engine.passes import RestorePass, restore_in_passes
from measr.engine.progress import progress_within_tiles
from measr.engine.routing import RoutingCollector, RoutingSummary
from measr.engine.strength import blend
from measr.engine.tiling import Tile
from measr.errors import ExitCode, MeasrError, WeightsError
from measr.io.image import gray_from_rgb
from measr.model import MEASNet, ModelConfig
from measr.model.context import SharedStats
from measr.weights import PICKLE_SUFFIXES, load_model, read_metadata

# More threads than this only slow PyTorch down (and each one costs a stack).
MAX_THREADS = 4 * (os.cpu_count() or 1)


@dataclass(frozen=True)
class Restoration:
    """A restored image and how it was made."""

    pixels: np.ndarray  # (H, W, C) float32 in [0, 1], the input's size and channel count
    seconds: float
    tiles: int  # 1 when the image ran whole
    tile: int | None  # longest tile side in pixels, None when the image ran whole
    shared_context: bool  # whether the tiles shared the whole image's global context
    routing: RoutingSummary | None = None
    expert_maps: dict[str, np.ndarray] = field(default_factory=dict)  # level -> (H, W) top-1
    damage: DamageReading | None = None  # what the task prompt found, when it names kinds
    memory_estimate: int = 0  # activation bytes the memory plan expected at the peak
    backend: str = "torch"  # where the tile passes ran (`measr.engine.backends`)
    precision: str = "float32"  # what they computed in: float32, float16 or bfloat16
    # The kind of damage left as it is: named confidently, and these weights do not improve it
    # (`measr.engine.harm`); the pixels are then the input's. None: restored.
    left_as_is: str | None = None
    # Each pass of a restoration in passes (`measr.engine.passes`); empty for one pass.
    passes: tuple[RestorePass, ...] = ()


class Restorer:
    """A MEASNet with its weights, ready on a device. Build it with `from_name`, `from_file` or
    `from_spec`; the library never prints, so callers decide how to report."""

    def __init__(
        self,
        model: MEASNet,
        *,
        name: str | None = None,
        device: str | None = "auto",
        threads: int | None = None,
        half: bool = False,
        trained: bool | None = None,
        compile: bool = False,
        backend: str | None = None,
        float32: bool = False,
        unverified_file: Path | None = None,
        gains: Mapping[str, float] | None = None,
    ) -> None:
        self.device = resolve_device(device or "auto")
        if half:
            check_half(self.device, model.requirements)
        if threads is not None:
            if not 1 <= threads <= MAX_THREADS:
                raise MeasrError(
                    f"threads must be between 1 and {MAX_THREADS} (4 per CPU core), not {threads}",
                    option="threads",
                )
            torch.set_num_threads(threads)
        self.half = half
        self.dtype = torch.float16 if half else torch.float32
        self.model = model.to(self.device, self.dtype).eval()
        # Fused experts always; compiled steps (and channels-last) when asked.
        self.acceleration = default_acceleration(self.device, compile=compile)
        accelerate(self.model, self.acceleration)
        self.name = name or model.config.name
        # True/False from weights.txt; None for a file the manifest does not list.
        self.is_trained = trained
        # The weights file when no manifest listed it, so no checksum vouches for it.
        self.unverified_file = unverified_file
        # dB these weights gain over the damaged input per kind of damage, from their entry
        # (`measr.engine.harm`): a kind at or below 0 is left as it is. Empty: no gate.
        self.gains = dict(gains or {})
        # The tile passes on another runtime when asked and installed (`resolve_backend`);
        # `backend_note` says why another backend than the one asked for runs. None: the
        # command line's choice (`default_backend`).
        asked = backend or default_backend()
        self.backend, self.backend_note = resolve_backend(asked, self.device, half, compile)
        # `auto` runs its runtime on tiled photos only: one photo restored whole would pay the
        # runtime's compile for its shape and gain nothing (docs/performance.md, "one small photo").
        self.tiled_only = asked == "auto"
        # Hears what a caller may want to tell its user (a conversion starting, a faster
        # runtime missing); the library itself never prints.
        self.on_notice: Callable[[str], None] | None = None
        # Said once, at the first tiled photo, where `auto` lacks its runtime.
        self.runtime_hint = missing_runtime_hint(asked, self.device, half, compile)
        # OpenVINO's passes in bfloat16 where the CPU has it, unless `float32`.
        self.tile_forward: TileForward | None = tile_passes(
            self.backend, self.model, torch.get_num_threads(), float32, self.notice
        )

    def notice(self, text: str) -> None:
        """Hand `text` to `on_notice`, when a caller set one."""
        if self.on_notice is not None:
            self.on_notice(text)

    @property
    def records_routing(self) -> bool:
        """Whether the tile passes run the network itself, so that `restore` can record its
        routing; the other backends run a graph that reports none (asking for the routing
        then runs the passes on PyTorch)."""
        return self.tile_forward is None

    @classmethod
    def from_name(
        cls,
        name: str | None = None,
        *,
        device: str | None = "auto",
        threads: int | None = None,
        half: bool = False,
        manifest_path: Path | None = None,
        compile: bool = False,
        backend: str | None = None,
        float32: bool = False,
    ) -> Restorer:
        """Weights listed in weights.txt (the default entry when `name` is None), checked
        against their sha256."""
        entry = manifest.find_entry(name, manifest_path)
        model = load_model(entry.file, entry)
        listed = entry.fields.get("config")
        if listed is not None and listed != model.config.name:
            raise WeightsError(
                f"weights '{entry.name}' hold configuration '{model.config.name}', "
                f"but weights.txt says '{listed}'",
                "fix the config field of this entry in weights.txt",
            )
        return cls(
            model,
            name=entry.name,
            device=device,
            threads=threads,
            half=half,
            trained=entry.is_trained,
            compile=compile,
            backend=backend,
            float32=float32,
            gains=gains_by_kind(entry.fields),
        )

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        device: str | None = "auto",
        threads: int | None = None,
        half: bool = False,
        manifest_path: Path | None = None,
        compile: bool = False,
        backend: str | None = None,
        float32: bool = False,
    ) -> Restorer:
        """Weights from a safetensors file (its configuration is in its metadata). A file that
        weights.txt lists is checked against its sha256 first, and whether it is trained comes
        from there; any other file loads unverified (`unverified_file`), its training status
        from its metadata (`measr export` writes trained=yes)."""
        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"weights file '{path}' does not exist", "check the path")
        listed = [e for e in manifest.read_manifest(manifest_path) if same_file(e.file, path)]
        model = load_model(path, listed[0] if listed else None)
        if listed:
            trained: bool | None = listed[0].is_trained
        else:
            stated = read_metadata(path).get("trained")
            trained = None if stated is None else stated == "yes"
        return cls(
            model,
            name=path.stem,
            device=device,
            threads=threads,
            half=half,
            trained=trained,
            compile=compile,
            backend=backend,
            float32=float32,
            unverified_file=None if listed else path,
            gains=gains_by_kind(listed[0].fields if listed else read_metadata(path)),
        )

    @classmethod
    def from_spec(
        cls,
        spec: str | None = None,
        *,
        device: str | None = "auto",
        threads: int | None = None,
        half: bool = False,
        manifest_path: Path | None = None,
        compile: bool = False,
        backend: str | None = None,
        float32: bool = False,
    ) -> Restorer:
        """A weights name from weights.txt or a path to a .safetensors file (None: the default
        entry), as the CLI's --weights takes it."""
        load = cls.from_file if spec is not None and looks_like_path(spec) else cls.from_name
        return load(
            spec,  # type: ignore[arg-type]  # from_file is only chosen for a path
            device=device,
            threads=threads,
            half=half,
            manifest_path=manifest_path,
            compile=compile,
            backend=backend,
            float32=float32,
        )

    @classmethod
    def from_options(
        cls, options: RuntimeOptions, *, manifest_path: Path | None = None
    ) -> Restorer:
        """The Restorer that `options` describe (`from_spec` with their fields)."""
        return cls.from_spec(
            options.weights,
            device=options.device,
            threads=options.threads,
            half=options.half,
            manifest_path=manifest_path,
            compile=options.compile,
            backend=options.backend,
            float32=options.float32,
        )

    @property
    def config(self) -> ModelConfig:
        """The network's configuration."""
        return self.model.config

    def restore(
        self,
        pixels: np.ndarray,
        options: RestoreOptions | None = None,
        *,
        record_routing: bool = False,
        tile_batch: int | None = None,
        progress: ProgressCallback | None = None,
        **changes: Any,
    ) -> Restoration:
        """Restore (H, W, 3) RGB or (H, W, 1) gray float pixels in [0, 1] as `options` ask
        (`RestoreOptions`; keywords such as `tile=128` change single fields of them); the result
        has the same size and channels, blended with the input at `options.strength`.

        Without a tile size, it follows free memory and images that fit run whole.
        `shared_context=False` lets each tile see only itself (for comparison).
        `progress(done, total)` hears of the tiles: (0, total) once they are planned (before
        the shared-context pass), then in fractions of a pass as the network's blocks finish,
        and after every pass. `max_memory` caps the bytes the plan may use (default: a share of
        free memory). The network runs on the image framed by its mirrored edge margin
        (`InputRequirements.edge_margin`), cropped after. `options.passes` other than 1
        restores in passes (`measr.engine.passes`)."""
        options = replace(options or RestoreOptions(), **changes)
        if options.passes != 1:
            return restore_in_passes(
                self,
                pixels,
                options,
                record_routing=record_routing,
                tile_batch=tile_batch,
                progress=progress,
            )
        tile, tile_overlap = options.tile, options.tile_overlap
        shared_context = options.shared_context
        started = time.perf_counter()
        checked = checked_pixels(pixels)
        image = torch.from_numpy(checked)
        height, width = image.shape[:2]
        check_not_too_thin(height, width, self.model.requirements)
        margin = self.model.requirements.edge_margin
        framed = torch.from_numpy(with_edge_margin(checked, margin))
        plan, tiles = self.tiles_for(
            framed.shape[0], framed.shape[1], tile, tile_overlap, options.max_memory
        )
        tile_batch = tile_batch or plan.tile_batch
        collector = None
        if record_routing:
            collector = RoutingCollector(
                height, width, self.config.pixel_experts, self.config.mee_experts, margin
            )
        sharing = (
            len(tiles) > 1 and shared_context and self.model.requirements.tiles_need_shared_context
        )
        compiled = self.acceleration.compile
        if progress is not None:
            progress(0, len(tiles))
        if len(tiles) > 1 and self.runtime_hint is not None:
            self.notice(self.runtime_hint)
            self.runtime_hint = None
        with torch.inference_mode():
            prompt = prompt_features(self.model, image, self.device, self.dtype)
            damage = self.damage_of(prompt)
            held = None if options.force else kind_left_as_is(damage, self.gains)
            if held is not None:
                return Restoration(
                    pixels=checked.copy(),
                    seconds=time.perf_counter() - started,
                    tiles=0,
                    tile=None,
                    shared_context=False,
                    damage=damage,
                    left_as_is=held,
                )
            # Recording the routing needs the network itself: the passes then run on PyTorch.
            forward = None if record_routing else self.tile_forward
            if self.tiled_only and len(tiles) == 1:
                forward = None
            shared = prompt if shared_context else None
            if sharing:
                # On the framed image, as a whole run sees it, so that tiles agree with it; on
                # the tiles' backend where it runs the context pass too.
                capture = getattr(forward, "capture", None)
                shared = self.global_context(framed.numpy(), plan.context_side, prompt, capture)
            with (
                eager_unless(compiled),
                progress_within_tiles(self.model, progress, len(tiles), tile_batch) as advance,
            ):
                framed_result = run_tiles(
                    self.model,
                    framed,
                    tiles,
                    tile_batch=tile_batch,
                    shared=shared,
                    device=self.device,
                    dtype=self.dtype,
                    routing_sink=collector,
                    layout=self.acceleration.memory_format,
                    progress=advance,
                    forward=forward,
                ).numpy()
        restored = np.ascontiguousarray(without_edge_margin(framed_result, margin))
        check_finite_result(restored, self.half)
        np.clip(restored, 0.0, 1.0, out=restored)
        if image.shape[2] == 1:
            restored = gray_from_rgb(restored)
        restored = blend(checked, restored, options.strength)
        whole = len(tiles) == 1
        return Restoration(
            pixels=restored,
            seconds=time.perf_counter() - started,
            tiles=len(tiles),
            tile=None if whole else max(tiles[0].rows.length, tiles[0].cols.length),
            shared_context=sharing,
            routing=collector.summary() if collector else None,
            expert_maps=collector.maps if collector else {},
            damage=damage,
            memory_estimate=self.memory_estimate(
                framed.shape, tiles, min(tile_batch, len(tiles)), plan, sharing
            ),
            backend="torch" if forward is None else self.backend,
            precision=self.precision_of(forward),
        )

    def precision_of(self, forward: TileForward | None) -> str:
        """What the passes of `forward` compute in (None: the network itself)."""
        if forward is None:
            return "float16" if self.half else "float32"
        return str(getattr(forward, "precision", "float32"))

    def expected_use(
        self, height: int, width: int, options: RestoreOptions | None = None
    ) -> tuple[int, int]:
        """(tiles, activation bytes at the peak) that `restore` of a `height` x `width` image
        with these options will plan, to say before it starts."""
        options = options or RestoreOptions()
        margin = 2 * self.model.requirements.edge_margin
        shape = (height + margin, width + margin)
        plan, tiles = self.tiles_for(*shape, options.tile, options.tile_overlap, options.max_memory)
        sharing = len(tiles) > 1 and options.shared_context
        batch = min(plan.tile_batch, len(tiles))
        return len(tiles), self.memory_estimate(shape, tiles, batch, plan, sharing)

    def memory_estimate(
        self,
        shape: tuple[int, ...],
        tiles: list[Tile],
        tile_batch: int,
        plan: MemoryPlan,
        sharing: bool,
    ) -> int:
        """The activation bytes the plan expects a restoration of an (H, W, ...) framed image in
        these tiles to peak at (the shared-context pass included when it runs)."""
        height, width = shape[:2]
        tile_pixels = max(t.rows.length * t.cols.length for t in tiles)
        scale = min(1.0, plan.context_side / max(height, width))
        context_pixels = round(height * width * scale**2) if sharing else 0
        return planned_peak(
            self.config,
            tile_pixels,
            tile_batch,
            context_pixels,
            half=self.half,
            striped=self.acceleration.row_strips,
        )

    def read_damage(self, pixels: np.ndarray) -> DamageReading | None:
        """What the prompt reads off (H, W, C) pixels in [0, 1], as `restore` reads a photo;
        None when these weights' prompt names no kinds of damage."""
        image = torch.from_numpy(checked_pixels(pixels))
        with torch.inference_mode():
            return self.damage_of(prompt_features(self.model, image, self.device, self.dtype))

    def damage_of(self, prompt: SharedStats) -> DamageReading | None:
        """What the prompt reads off pooled features (`prompt_features`); None when these
        weights' prompt names no kinds of damage."""
        pooled = prompt[self.model.task_prompt.context_key]
        return DamageReading.from_prompt(self.model.task_prompt.read(pooled))

    def tiles_for(
        self,
        height: int,
        width: int,
        tile: int | None,
        overlap: int,
        max_memory: int | None = None,
    ) -> tuple[MemoryPlan, list[Tile]]:
        """The memory plan for this device (at most `max_memory` bytes) and the tile grid of a
        `height` x `width` image: tiles of `tile` pixels, or, without it, as large as memory
        allows and then no larger than the grid needs (images that fit run whole)."""
        plan = plan_memory(
            self.config,
            self.device,
            half=self.half,
            striped=self.acceleration.row_strips,
            cap=max_memory,
        )
        if tile is None:
            tile = balanced_tile(self.model, height, width, plan.tile, overlap)
        return plan, plan_tiles(self.model, height, width, tile, overlap)

    def global_context(
        self,
        pixels: np.ndarray,
        max_side: int,
        prompt: SharedStats | None = None,
        capture: ContextCapture | None = None,
    ) -> SharedStats:
        """The whole image's global statistics, for its tiles to share, computed eagerly: the
        context image has a new size for every photo, and compiling its pass would cost minutes
        per photo (measured: timed runs on one 1024 px image recompiled every graph, 350 s a
        run against 36 s eagerly)."""
        with always_eager():
            return capture_global_context(
                self.model,
                pixels,
                max_side,
                self.device,
                self.dtype,
                self.acceleration.memory_format,
                prompt,
                capture,
            )


def checked_pixels(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 1|3) float32 pixels, contiguous, or a MeasrError saying what is wrong."""
    if not isinstance(pixels, np.ndarray) or pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        shape = getattr(pixels, "shape", type(pixels).__name__)
        raise MeasrError(
            f"expected pixels of shape (H, W, 3) or (H, W, 1), got {shape}",
            "pass RGB or gray pixels as read by measr.io.read_image",
            ExitCode.INPUT,
        )
    if min(pixels.shape[:2]) < 1:
        raise MeasrError(
            "the image is empty", "pass an image of at least 1x1 pixels", ExitCode.INPUT
        )
    array = np.ascontiguousarray(pixels, dtype=np.float32)
    # torch shares memory with the array and warns about read-only ones (e.g. memory maps).
    return array if array.flags.writeable else array.copy()


def check_finite_result(restored: np.ndarray, half: bool) -> None:
    """Refuse a result holding NaN or infinity (clipping would turn it into black or white
    pixels that look like a photo), so that nothing is written from it."""
    if np.isfinite(restored).all():
        return
    hint = "run in float32 (float16 overflowed)" if half else "the weights may be damaged"
    raise MeasrError(
        "the network produced non-finite values (NaN or infinity)",
        f"{hint}; try other weights",
        ExitCode.MODEL,
        option="half" if half else None,
    )


def looks_like_path(spec: str) -> bool:
    """Whether a --weights value names a file rather than a weights.txt entry."""
    suffix = Path(spec).suffix.lower()
    named_like_a_file = suffix == ".safetensors" or suffix in PICKLE_SUFFIXES
    return named_like_a_file or "/" in spec or "\\" in spec or Path(spec).is_file()


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same existing file."""
    try:
        return a.resolve() == b.resolve() or a.samefile(b)
    except OSError:
        return False
