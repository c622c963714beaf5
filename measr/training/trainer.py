"""`measr train`: AdamW, warm-up + cosine, L1 + balance loss, clipping, EMA, periodic validation,
atomic checkpoints, exact resume; bf16 autocast, fused AdamW, degradation on the device and DDP
(torchrun) on GPUs.

The step never waits for the device: losses stay tensors until a log line reads them (every
`log_every` steps), the EMA's decay is computed on the host, and a batch degraded on the device
is grouped by task from host-side recipes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader

from measr.degrade import mix_weights, seeded_rng, task_spec
from measr.degrade.batched import missing_twins
from measr.engine.device import resolve_device
from measr.engine.memory import bytes_per_pixel, total_memory
from measr.errors import MeasrError
from measr.evaluation.prompt import whole_photo_naming
from measr.model import MEASNet, build_model, get_config
from measr.model.depth import reshaped
from measr.model.task_prompt import PromptReading
from measr.training.checkpoint import load_checkpoint, save_checkpoint
from measr.training.data import (
    RecipeBatch,
    RecipeSamples,
    SampleIndices,
    TrainingSamples,
    on_device,
)
from measr.training.presence import (
    load_allowing_new_head,
    presence_parameters,
    with_new_group,
    with_presence_head,
)
from measr.training.prompt import (
    PromptTargets,
    prompt_parameters,
    router_prompt_parameters,
    supervised_prompt,
)
from measr.training.schedule import batch_scaled_lr, warmup_cosine
from measr.training.validation import ValidationItem, default_validation_set, evaluate, framed
from measr.weights import load_model

TRAIN_CONFIG_NAME = "train.json"
METRICS_NAME = "metrics.jsonl"


@dataclass
class TrainConfig:
    """Everything that defines a run; saved as RUN_DIR/train.json."""

    config: str = "small"
    # The defaults are the recipe the learning-curve bench chose (docs/learning-curves.md,
    # issue 33: `early-patch64`, over the long run's recipe); the earlier defaults were
    # --tasks five --prompt-weight 0 --ema-decay 0.999 --early-patch 0.
    tasks: str = "six:rain=2,blur=2"
    data: list[str] = field(default_factory=list)
    paired: list[str] = field(default_factory=list)  # "task=folder" with degraded/ and clean/
    # "task=folder": real damage for a share of the task's samples (`real_share`), pairs or a
    # burst of sharp frames (measr.training.sources).
    real: list[str] = field(default_factory=list)
    real_share: float = 0.25
    val: str | None = None
    val_crop: int = 192
    val_per_task: int = 4
    steps: int = 100_000
    batch: int = 8
    patch: int = 128
    lr: float = 2e-4
    weight_decay: float = 1e-4
    warmup: int = 1000
    balance_weight: float = 1e-3
    clip: float = 1.0
    ema_decay: float = 0.995
    seed: int = 0
    workers: int = 1
    log_every: int = 10
    val_every: int = 1000
    checkpoint_minutes: float = 10.0
    checkpoint_steps: int = 0  # also checkpoint every N steps (0: by time only)
    activation_checkpointing: bool = False
    channels_last: bool = False
    compile: bool = False
    deterministic: bool = False
    device: str = "auto"
    threads: int = 0
    init: str | None = None  # start from these weights (safetensors) instead of random
    # Weight of the prompt's supervision (cross-entropy of the kind of damage + noise level);
    # 0 leaves the prompt to the restoration loss alone, as the paper does.
    prompt_weight: float = 0.1
    # Train only the task prompt on that supervision (no restoration pass: fast).
    prompt_only: bool = False
    # Learning rate of the routers' prompt inputs (projection, prompt gates), as a multiple of
    # lr; upgraded weights start them at zero (measr.training.prompt).
    prompt_lr_scale: float = 1.0
    # Stop after this many minutes of this invocation (0: no limit). The learning-rate schedule
    # then follows whichever of steps and time is further along, so a timed run still anneals.
    time_budget_minutes: float = 0.0
    # Degrade the clean crops on the training device (measr.degrade.batched) instead of with
    # numpy in the data workers: the loader then only crops and draws recipes.
    degrade_on_device: bool = False
    # The batch `lr` was tuned at: the peak rate is scaled by sqrt(global batch / this)
    # (`batch_scaled_lr`); 0 uses lr as given.
    lr_reference_batch: int = 0
    # This run continues a longer one from this step (the long run's stretches, docs/training.md):
    # its samples and schedule go on from here, from --init's weights with a fresh optimiser,
    # whose rate warms up again over `warmup` steps.
    start_step: int = 0
    # Weight of an L1 loss between the FFT amplitudes of output and target, beside the pixel
    # L1 (0: off); MoCE-IR, SymUNet and R2R train with 0.1.
    fft_loss_weight: float = 0.0
    # Weight of an L1 loss on the output's grid: the part of its error that repeats every 2 and
    # every 8 pixels at fixed positions (docs/pattern.md: the pixel-shuffle upsamplers leave
    # such a grid in flat areas), beside the pixel L1 (0: off).
    grid_loss_weight: float = 0.0
    # Smaller patches while the network is young: `early_patch` pixels for the first
    # `early_patch_fraction` of the run (by its progress), then `patch` (0: `patch` throughout).
    early_patch: int = 64
    early_patch_fraction: float = 0.5
    # A budget of CPU time (this process and its data workers): the run ends when it is spent,
    # and the schedule follows it as it follows `time_budget_minutes` (0: off). Unlike wall
    # time, CPU time does not stretch when other work shares the machine.
    cpu_budget_minutes: float = 0.0

    @classmethod
    def load(cls, run_dir: Path) -> TrainConfig:
        """The settings the run in RUN_DIR was started with (its train.json)."""
        path = run_dir / TRAIN_CONFIG_NAME
        if not path.is_file():
            raise MeasrError(
                f"no training run in '{run_dir}' ({TRAIN_CONFIG_NAME} is missing)",
                "start the run without --resume first",
            )
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as error:  # unreadable, not JSON, unknown keys
            raise MeasrError(f"cannot read '{path}': {error}") from None

    def save(self, run_dir: Path) -> None:
        """Write these settings to RUN_DIR/train.json, for `load`."""
        (run_dir / TRAIN_CONFIG_NAME).write_text(json.dumps(dataclasses.asdict(self), indent=1))

    def resumed(self, *, steps: int | None, minutes: float | None) -> TrainConfig:
        """These settings for a resumed run: the total steps and this invocation's time budget
        replaced where given, everything else as the run was started."""
        return dataclasses.replace(
            self,
            steps=self.steps if steps is None else steps,
            time_budget_minutes=self.time_budget_minutes if minutes is None else minutes,
        )

    def check(self) -> None:
        """Refuse settings the model cannot train on."""
        model = get_config(self.config)  # MeasrError for an unknown name
        for flag, patch in (("--patch", self.patch), ("--early-patch", self.early_patch)):
            if patch and (patch % model.size_multiple or patch < model.min_size):
                raise MeasrError(
                    f"{flag} {patch} does not fit '{self.config}': it needs a multiple of "
                    f"{model.size_multiple} of at least {model.min_size}",
                    "use e.g. 128",
                )
        if not self.data and not self.paired:
            raise MeasrError("no training data", "pass --data FOLDER (clean photos)")
        if self.prompt_only and self.prompt_weight <= 0:
            raise MeasrError("--prompt-only needs --prompt-weight above 0")
        self._check_real_sources()
        if self.degrade_on_device and (self.paired or self.real):
            raise MeasrError(
                "--degrade-on-device degrades clean photos; real damage has nothing to degrade",
                "drop --paired and --real, or train without --degrade-on-device",
            )
        if self.degrade_on_device:
            weights = mix_weights(self.tasks)
            cpu_only = [t for t in weights if weights[t] > 0 and missing_twins(task_spec(t))]
            if cpu_only:
                raise MeasrError(
                    f"--degrade-on-device has no batched version of {', '.join(cpu_only)} (JPEG)",
                    "train without --degrade-on-device, or give those tasks weight 0",
                )
        for name in ("steps", "batch"):
            if getattr(self, name) < 1:
                raise MeasrError(f"--{name} must be at least 1, not {getattr(self, name)}")
        if not 0 <= self.start_step < self.steps:
            raise MeasrError(
                f"--start-step {self.start_step} is not within the run's {self.steps} steps"
            )

    def _check_real_sources(self) -> None:
        tasks = mix_weights(self.tasks)
        for entry in self.real:
            task, equals, folder = entry.partition("=")
            if not equals or task not in tasks:
                raise MeasrError(
                    f"--real '{entry}' does not name a task of the mix '{self.tasks}'",
                    f"use TASK=FOLDER with TASK one of {', '.join(tasks)}",
                )
            if not Path(folder).is_dir():
                raise MeasrError(f"--real '{entry}': no folder '{folder}'")
        if not 0 <= self.real_share <= 1:
            raise MeasrError(f"--real-share must be within 0 and 1, not {self.real_share}")


@dataclass
class StepRecord:
    """One logged step, as written to metrics.jsonl."""

    step: int
    loss: float
    l1: float
    balance: float
    lr: float
    patches_per_s: float
    elapsed_s: float
    validation: dict[str, tuple[float, float]] | None = None
    prompt: float | None = None  # the prompt's supervision loss, when trained
    prompt_accuracy: float | None = None  # kinds named right on the validation set

    def to_json(self) -> str:
        record = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        if self.validation:
            record["val_psnr"] = {t: round(s[0], 3) for t, s in self.validation.items()}
            record["val_ssim"] = {t: round(s[1], 4) for t, s in self.validation.items()}
            del record["validation"]
        return json.dumps(record)


Progress = Callable[[StepRecord], None]


@dataclass
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls) -> Distributed:
        """This process's place from torchrun's environment; a WORLD_SIZE that is not a
        number, or one above 1 without the rest of torchrun's variables, is one error."""
        text = os.environ.get("WORLD_SIZE", "1")
        world = int(text) if text.strip().isdigit() else 0
        if world < 1:
            raise MeasrError(
                f"WORLD_SIZE is {text!r}, not a number of processes",
                "unset WORLD_SIZE, or launch with torchrun",
            )
        if world == 1:
            return cls()
        missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
        if missing:
            raise MeasrError(
                f"WORLD_SIZE is {world} but {', '.join(missing)} are not set: not under torchrun",
                "launch with torchrun (docs/training.md, Scale out), or unset WORLD_SIZE",
            )
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        return cls(dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0")))


# What torchrun sets beside WORLD_SIZE, and init_process_group reads.
TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# Training keeps every activation for the backward pass: a step of `small` at batch 8 x 128 px
# held 9.6 GB (RSS; 7.1 GB of saved tensors), 11 times what the engine plans per pixel for
# inference (`bytes_per_pixel`).
TRAINING_MEMORY_FACTOR = 11


def check_step_fits(config: TrainConfig, model: MEASNet, device: torch.device) -> None:
    """Refuse a batch and patch whose step could never fit the device's memory (all of it,
    not what is free now), before anything is allocated. A prompt-only step runs the small
    prompt net alone, not the network this estimate is for, so it is not checked."""
    if config.prompt_only:
        return
    total = total_memory(device)
    patch = max(config.patch, config.early_patch)
    needed = config.batch * patch * patch * bytes_per_pixel(model.config) * TRAINING_MEMORY_FACTOR
    if needed > total:
        raise MeasrError(
            f"a step of {config.batch} patches of {patch} px would need about "
            f"{needed / 1e9:.0f} GB, more than the {total / 1e9:.0f} GB of {device}",
            "lower --patch or --batch",
        )


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """auto = this rank's CUDA device when present, else CPU; any other name as
    `resolve_device` reads and checks it."""
    if name.strip().lower() == "auto" and torch.cuda.is_available():
        name = f"cuda:{local_rank}"
    return resolve_device(name)


def ema_decay_at(decay: float, updates: int) -> float:
    """The EMA's decay after `updates` updates, warmed up as (1 + n) / (10 + n) so that early
    averages are not dominated by the random initialisation."""
    return min(decay, (1 + updates) / (10 + updates))


def non_persistent_buffers(module: nn.Module) -> list[Tensor]:
    """The buffers of `module` and its children that are not saved with its state."""
    return [
        buffer
        for child in module.modules()
        for name, buffer in child.named_buffers(recurse=False)
        if name in child._non_persistent_buffers_set
    ]


@torch.no_grad()
def update_ema(ema: AveragedModel, model: nn.Module, decay: float, updates: int) -> None:
    """One EMA update of parameters and buffers, the first a copy. What
    `AveragedModel.update_parameters` does, without reading its update count from the device
    (a wait per step, per tensor): the count is the host's."""
    averaged = [*ema.module.parameters(), *ema.module.buffers()]
    current = [*model.parameters(), *model.buffers()]
    # Non-persistent buffers are constants of the network (the prompt's kind mask holds -inf,
    # which an average turns into NaN): they are copied, not averaged.
    constants = {id(b) for b in non_persistent_buffers(ema.module)}
    floats = [i for i, t in enumerate(averaged) if t.is_floating_point() and id(t) not in constants]
    others = [i for i in range(len(averaged)) if i not in set(floats)]
    if updates == 0:
        torch._foreach_copy_(averaged, current)
    else:
        weight = 1.0 - ema_decay_at(decay, updates)
        torch._foreach_lerp_([averaged[i] for i in floats], [current[i] for i in floats], weight)
        for i in others:
            averaged[i].copy_(current[i])
    ema.n_averaged += 1


# The periods of the grid the network's upsamplers leave (docs/pattern.md): 2 px from the last
# pixel shuffle, 8 px from the first.
GRID_PERIODS = (2, 8)


def grid_loss(image: Tensor, target: Tensor, periods: tuple[int, ...] = GRID_PERIODS) -> Tensor:
    """L1 size of the error's fixed-phase grid: for each period p, the error of (B, C, H, W)
    images averaged over every p x p cell by position in the cell, less its mean over the
    positions; summed over the periods. Zero for an error with no such grid (a uniform offset,
    noise that averages out), whatever the error's size; rows and columns beyond the last
    whole cell are left out."""
    error = image - target
    total = error.new_zeros(())
    for p in periods:
        height, width = error.shape[-2] // p * p, error.shape[-1] // p * p
        if height == 0 or width == 0:
            continue
        cells = (
            error[..., :height, :width]
            .unflatten(-1, (width // p, p))
            .unflatten(-3, (height // p, p))
        )
        by_position = cells.mean(dim=(-4, -2))  # (B, C, p, p): the mean error at each position
        total = total + (by_position - by_position.mean(dim=(-2, -1), keepdim=True)).abs().mean()
    return total


def fft_amplitude_loss(image: Tensor, target: Tensor) -> Tensor:
    """L1 distance between the amplitude spectra of two (B, C, H, W) images (orthonormal
    FFT, so amplitudes are on the scale of pixel values)."""
    spectrum = torch.fft.rfft2(torch.cat([image, target]), norm="ortho").abs()
    return F.l1_loss(*spectrum.chunk(2))


def process_cpu_seconds() -> float:
    """CPU time of this process and its children (the data workers, live or ended), in
    seconds: a loader replaced mid-run (`early_patch`) must not take its workers' time away."""
    me = psutil.Process()
    own = me.cpu_times()  # children_*: the ended workers' time (0 where the OS keeps none)
    total = time.process_time() + own.children_user + own.children_system
    for child in me.children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:  # a worker that ended meanwhile
            continue
        total += times.user + times.system
    return total


@contextmanager
def stop_requests() -> Iterator[threading.Event]:
    """An event set by Ctrl-C or SIGTERM while the block runs, in place of the interrupt: a
    step interrupted halfway would leave the weights half updated, so the loop finishes its
    step, checkpoints and only then stops. Outside the main thread nothing is caught."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.getsignal(signum) for signum in signals}
    for signum in signals:
        signal.signal(signum, lambda *_: requested.set())
    try:
        yield requested
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class LossInputs(nn.Module):
    """The network as the loss reads it: (image, balance loss, prompt reading or None). Under
    DDP, which waits every step for a gradient of each parameter its outputs depend on, the
    prompt's reading is an output only when its supervision is part of the loss."""

    def __init__(self, model: MEASNet, supervised: bool) -> None:
        super().__init__()
        self.model, self.supervised = model, supervised

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, PromptReading | None]:
        out = self.model(image)
        return out.image, out.balance_loss, out.prompt if self.supervised else None


class Trainer:
    """One training run in RUN_DIR; `run()` trains until `config.steps`, resuming if asked."""

    def __init__(self, config: TrainConfig, run_dir: Path, resume: bool = False) -> None:
        config.check()
        self.config, self.run_dir = config, run_dir
        if not resume and (run_dir / TRAIN_CONFIG_NAME).exists():
            raise MeasrError(
                f"'{run_dir}' already holds a training run",
                "add --resume to continue it, or choose another --out",
            )
        self.dist = Distributed.from_environment()
        self.device = pick_device(config.device, self.dist.local_rank)
        if config.threads:
            torch.set_num_threads(config.threads)
        if config.deterministic:
            torch.use_deterministic_algorithms(True)
        torch.manual_seed(config.seed)
        self.model = self._build_model().to(self.device)
        check_step_fits(config, self.model, self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.model.set_activation_checkpointing(config.activation_checkpointing)
        self.ema = AveragedModel(self.model, use_buffers=True)
        self.targets: PromptTargets | None = None
        if config.prompt_weight > 0:
            tasks = list(mix_weights(config.tasks))
            self.targets = PromptTargets.for_tasks(tasks, self.model.config.degradation_kinds)
        self.optimizer = torch.optim.AdamW(
            self._parameter_groups(),
            lr=config.lr,
            weight_decay=config.weight_decay,
            fused=self.device.type == "cuda",  # one kernel for all parameters
        )
        self.step, self.wall_seconds, self.cpu_seconds = config.start_step, 0.0, 0.0
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self._restore(load_checkpoint(run_dir))
        elif self.dist.is_main:
            config.save(run_dir)
            (run_dir / METRICS_NAME).write_text("")
        self.forward: nn.Module = LossInputs(self.model, self.targets is not None)
        if self.dist.world > 1:
            self.forward = nn.parallel.DistributedDataParallel(
                self.forward,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True,  # images that choose no MEE expert leave it idle
            )
        if config.compile:
            self.forward = torch.compile(self.forward)  # type: ignore[assignment]
        self._validation: list[ValidationItem] | None = None
        self._last_log_time = time.monotonic()

    def _build_model(self) -> MEASNet:
        if self.config.init:
            model = load_model(self.config.init)
            if model.config.name != self.config.config:
                model, reuse = reshaped(model, get_config(self.config.config))
                sys.stderr.write(
                    f"measr train: a '{self.config.config}' network from --init's "
                    f"'{self.config.init}': {reuse.words()}\n"
                )
        else:
            model = build_model(self.config.config)
        if self.config.prompt_weight > 0 and not model.config.degradation_kinds:
            model = supervised_prompt(model, self._anchor_images())
        if self.config.prompt_weight > 0:  # weights and hand-offs from before the head gain it
            model = with_presence_head(model)
        return model

    def _anchor_images(self, count: int = 32) -> Tensor:
        """The run's first samples (degraded), to re-anchor the routers of upgraded weights."""
        samples = self.samples()
        return torch.stack([samples[i][0] for i in range(count)])

    def _parameter_groups(self) -> list[dict[str, Any]]:
        """One group of parameters, or two when the routers' prompt inputs learn at their own
        rate (the `lr_scale` of a group multiplies the schedule's rate); the presence head,
        when there is one, in a group of its own, last, so that a checkpoint from before it
        still loads (`with_new_group`)."""
        head = presence_parameters(self.model)
        kept = {id(p) for p in head}
        trained = (
            prompt_parameters(self.model)
            if self.config.prompt_only
            else list(self.model.parameters())
        )
        own = [p for p in trained if id(p) not in kept]
        tail = [{"params": head, "lr_scale": 1.0}] if head else []
        if self.config.prompt_only or self.config.prompt_lr_scale == 1.0:
            return [{"params": own}, *tail]
        readers = {id(p) for p in router_prompt_parameters(self.model)}
        rest = [p for p in own if id(p) not in readers]
        reading = [p for p in own if id(p) in readers]
        return [
            {"params": rest, "lr_scale": 1.0},
            {"params": reading, "lr_scale": self.config.prompt_lr_scale},
            *tail,
        ]

    # -- state ---------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything an exact resume needs."""
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "wall_seconds": self.wall_seconds,
            "cpu_seconds": self.cpu_seconds,
            "model_config": self.model.config.to_json(),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        # A checkpoint from before the presence head: the head starts as initialised.
        added = load_allowing_new_head(self.model, state["model"])
        load_allowing_new_head(self.ema, state["ema"])
        optimizer = state["optimizer"]
        self.optimizer.load_state_dict(
            with_new_group(optimizer, self.optimizer) if added else optimizer
        )
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.step = int(state["step"])
        self.wall_seconds = float(state["wall_seconds"])
        self.cpu_seconds = float(state["cpu_seconds"])
        if self.dist.is_main:
            self._truncate_metrics_after(self.step)

    def _truncate_metrics_after(self, step: int) -> None:
        """Drop metrics logged after the checkpoint: the resumed run logs those steps again."""
        path = self.run_dir / METRICS_NAME
        if path.exists():
            lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
            kept = [ln for ln in lines if json.loads(ln)["step"] <= step]
            path.write_text("".join(f"{ln}\n" for ln in kept))

    def checkpoint(self) -> None:
        if self.dist.is_main:
            save_checkpoint(self.state(), self.run_dir)

    # -- data and validation ---------------------------------------------------------------------

    def samples(self, recipes: bool = False, patch: int = 0) -> TrainingSamples:
        """The run's training samples (sample i is a pure function of the seed and i), degraded
        by numpy, or as clean windows and recipes for the device (`recipes`), of `patch` pixels
        (the run's own by default)."""
        c = self.config
        paired = {task: Path(root) for task, root in (p.split("=", 1) for p in c.paired)}
        real = [(task, Path(root)) for task, root in (r.split("=", 1) for r in c.real)]
        kind = RecipeSamples if recipes else TrainingSamples
        sources = [Path(p) for p in c.data]
        return kind(sources, c.tasks, patch or c.patch, c.seed, paired, real, c.real_share)

    def batches(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """(degraded, clean, task) batches from sample step * batch on, on the device when
        `degrade_on_device` (else still on the host: `train_step` moves them). When the patch
        size changes (`early_patch`), a new loader goes on from the same sample."""
        while True:
            patch = self.patch()
            for batch in self.loader(patch):
                if isinstance(batch, RecipeBatch):
                    yield on_device(batch, self.device, patch, self.pixel_generator())
                else:
                    yield batch
                if self.patch() != patch:
                    break

    def pixel_generator(self) -> torch.Generator:
        """The generator of this step's pixel randomness on the device: seeded by the run's
        seed, the step and the rank, so a resumed run degrades its batches alike."""
        rng = seeded_rng(self.config.seed, "pixels", self.step, self.dist.rank)
        return torch.Generator(self.device).manual_seed(int(rng.integers(2**62)))

    def loader(self, patch: int = 0) -> Iterator[Any]:
        c = self.config
        loader = DataLoader(
            self.samples(recipes=c.degrade_on_device, patch=patch),
            batch_size=c.batch,
            collate_fn=RecipeSamples.collate if c.degrade_on_device else None,
            pin_memory=self.device.type == "cuda",
            sampler=SampleIndices(self.step * c.batch, self.dist.rank, self.dist.world),
            num_workers=c.workers,
            # A private generator: creating the loader must not consume the global RNG, which
            # drives the gates' noise and is part of the exact-resume state.
            generator=torch.Generator().manual_seed(c.seed),
            persistent_workers=c.workers > 0,
            prefetch_factor=4 if c.workers > 0 else None,
        )
        return iter(loader)

    def validation_items(self) -> list[ValidationItem]:
        if self._validation is None:
            c = self.config
            tasks = list(mix_weights(c.tasks))
            self._validation = (
                default_validation_set(Path(c.val), tasks, c.val_crop, c.val_per_task)
                if c.val
                else []
            )
        return self._validation

    @torch.no_grad()
    def validate(self) -> dict[str, tuple[float, float]]:
        """PSNR/SSIM per task of the EMA weights on the fixed validation set (none when only
        the prompt trains: the restoration does not change)."""
        items = self.validation_items()
        if not items or self.config.prompt_only:
            return {}
        model: MEASNet = self.ema.module  # type: ignore[assignment]
        model.eval()

        def restore(x: Tensor) -> Tensor:
            with self._autocast():
                return model(x.to(self.device)).image.float()

        return evaluate(items, framed(restore, model.requirements.edge_margin))

    def prompt_accuracy(self) -> float | None:
        """Share of the validation images whose kind of damage the EMA weights' prompt names
        (None when the prompt names no kinds or there is no validation set)."""
        model: MEASNet = self.ema.module  # type: ignore[assignment]
        accuracy, _ = whole_photo_naming(model, self.validation_items(), self.device)
        return accuracy

    def _autocast(self) -> torch.autocast:
        return torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"
        )

    # -- the loop ------------------------------------------------------------------------------

    def progress(self) -> float:
        """How far along the run is, in [0, 1]: by steps, or by time under a time budget."""
        by_steps = self.step / self.config.steps
        budget = self.config.time_budget_minutes * 60
        # The run's own training time (kept in checkpoints), so a resumed run continues the
        # schedule where it stopped instead of starting its time budget again.
        by_time = self.wall_seconds / budget if budget > 0 else 0.0
        cpu_budget = self.config.cpu_budget_minutes * 60
        by_cpu = self.cpu_seconds / cpu_budget if cpu_budget > 0 else 0.0
        return min(max(by_steps, by_time, by_cpu), 1.0)

    def patch(self) -> int:
        """The patch side at the current progress (`early_patch` early on)."""
        c = self.config
        early = c.early_patch and self.progress() < c.early_patch_fraction
        return c.early_patch if early else c.patch

    def finished(self) -> bool:
        """True once the run has done its steps or spent its time budget."""
        return self.progress() >= 1.0

    def learning_rate(self) -> float:
        """Warm-up then cosine decay, at the current progress, of the peak rate scaled to the
        global batch (`batch_scaled_lr`)."""
        c = self.config
        total = max(round(self.step / self.progress()), 1) if self.progress() > 0 else c.steps
        peak = batch_scaled_lr(c.lr, c.batch * self.dist.world, c.lr_reference_batch)
        return peak * warmup_cosine(self.step, total, c.warmup, warm_from=c.start_step)

    def train_step(self, degraded: Tensor, clean: Tensor, task: Tensor) -> Tensor:
        """One optimiser step; returns the detached (loss, l1, balance, prompt supervision) as
        one tensor on the device, read only when logged."""
        c = self.config
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate() * group.get("lr_scale", 1.0)
        memory = torch.channels_last if c.channels_last else torch.contiguous_format
        degraded = degraded.to(self.device, non_blocking=True, memory_format=memory)
        clean = clean.to(self.device, non_blocking=True)
        zero = degraded.new_zeros(())
        spectral = grid = zero
        reading: PromptReading | None
        with self._autocast():
            if c.prompt_only:
                _, reading = self.model.task_prompt(degraded)
                l1, balance = zero, zero
            else:
                image, balance, reading = self.forward(degraded)
                l1 = F.l1_loss(image.float(), clean)
                if c.fft_loss_weight > 0:
                    spectral = fft_amplitude_loss(image.float(), clean)
                if c.grid_loss_weight > 0:
                    grid = grid_loss(image.float(), clean)
                balance = balance.float()
        prompt = zero
        if self.targets is not None and reading is not None:
            cross_entropy, noise = self.targets.loss(reading, task)
            prompt = cross_entropy + noise + self.targets.presence_loss(reading, task)
        loss = l1 + c.fft_loss_weight * spectral + c.grid_loss_weight * grid
        loss = loss + c.balance_weight * balance
        loss = loss + c.prompt_weight * prompt
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if c.clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), c.clip)
        self.optimizer.step()
        update_ema(self.ema, self.model, c.ema_decay, self.step)
        return torch.stack([loss, l1, balance, prompt]).detach()

    def run(self, progress: Progress | None = None, stop_after_minutes: float = 0.0) -> None:
        """Train until the run's steps or time budget are spent, or (a stretch of a longer run)
        for `stop_after_minutes` of this invocation, which leaves the schedule as it is. Ctrl-C
        or SIGTERM stops it after the current step with a checkpoint, then raises
        KeyboardInterrupt."""
        with stop_requests() as stop:
            self._train(progress, stop, stop_after_minutes * 60)
        if stop.is_set():
            raise KeyboardInterrupt

    def _train(self, progress: Progress | None, stop: threading.Event, stop_after_s: float) -> None:
        c = self.config
        last_checkpoint = self._last_log_time = time.monotonic()
        wall_base, cpu_base = self.wall_seconds, self.cpu_seconds
        wall_start, cpu_start = time.monotonic(), process_cpu_seconds()
        window: list[Tensor] = []
        for degraded, clean, task in self.batches():
            if self.finished() or stop.is_set():
                break
            window.append(self.train_step(degraded, clean, task))
            self.step += 1
            # Before the log: under a time budget, the step that spends it is the last one,
            # and it must be logged and validated as such.
            self.wall_seconds = wall_base + time.monotonic() - wall_start
            self.cpu_seconds = cpu_base + process_cpu_seconds() - cpu_start
            stretch_over = 0 < stop_after_s <= time.monotonic() - wall_start
            if self.step % c.log_every == 0 or self.finished() or stretch_over:
                self._log(window, progress)
                window = []
            if stretch_over:
                break
            if self._checkpoint_due(last_checkpoint):
                self.checkpoint()
                last_checkpoint = time.monotonic()
        self.checkpoint()

    def _checkpoint_due(self, last: float) -> bool:
        c = self.config
        by_steps = c.checkpoint_steps > 0 and self.step % c.checkpoint_steps == 0
        by_time = time.monotonic() - last >= c.checkpoint_minutes * 60
        return by_steps or by_time or self.finished()

    def _log(self, window: list[Tensor], progress: Progress | None) -> None:
        c = self.config
        now = time.monotonic()
        throughput = len(window) * c.batch * self.dist.world / max(now - self._last_log_time, 1e-9)
        validation, accuracy = None, None
        if c.val and (self.step % c.val_every == 0 or self.finished()):
            validation = self.validate() or None
            accuracy = self.prompt_accuracy()
        loss, l1, balance, prompt = torch.stack(window).double().mean(0).tolist()
        record = StepRecord(
            step=self.step,
            loss=loss,
            l1=l1,
            balance=balance,
            lr=self.optimizer.param_groups[0]["lr"],
            patches_per_s=round(throughput, 3),
            elapsed_s=round(self.wall_seconds, 1),
            validation=validation,
            prompt=prompt if self.targets is not None else None,
            prompt_accuracy=accuracy,
        )
        if self.dist.is_main:
            with open(self.run_dir / METRICS_NAME, "a") as handle:
                handle.write(record.to_json() + "\n")
            if progress:
                progress(record)
        self._last_log_time = time.monotonic()  # throughput excludes validation time
