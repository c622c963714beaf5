"""`measr train`, `measr fit-colour`, `measr fit-presence` and `measr export`: thin commands over
`measr.training`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from measr.cli.render import stderr
from measr.degrade import mix_weights
from measr.engine.onnx_backend import ONNX_SIGNATURE, export_onnx_file
from measr.engine.openvino_backend import export_openvino_file
from measr.errors import MeasrError
from measr.manifest import check_name
from measr.model import NAMED_REQUIREMENTS
from measr.training.colour import fit_weights_file
from measr.training.export import Scoring, export_run, export_weights_file, note_provenance
from measr.training.long_run import continue_settings
from measr.training.presence import PRESENCE_HIDDEN
from measr.training.presence import fit_weights_file as fit_presence_file
from measr.training.trainer import StepRecord, TrainConfig, Trainer


def _progress(total: int, minutes: float = 0.0) -> Callable[[StepRecord], None]:
    """A progress printer: one line per logged step, validation PSNR when it ran. Under a time
    budget the run ends by time, so the remaining time is the budget's."""
    console = stderr()

    def show(record: StepRecord) -> None:
        remaining = (total - record.step) / max(record.step, 1) * record.elapsed_s
        if minutes > 0:
            remaining = min(remaining, max(minutes * 60 - record.elapsed_s, 0.0))
        prompt = "" if record.prompt is None else f", prompt {record.prompt:.3f}"
        console.print(
            f"step {record.step}/{total}  loss {record.loss:.4f} (l1 {record.l1:.4f}, "
            f"balance {record.balance:.3f}{prompt})  lr {record.lr:.2e}  "
            f"{record.patches_per_s:.2f} patches/s  eta {remaining / 60:.0f} min"
        )
        if record.prompt_accuracy is not None:
            console.print(f"  [bold]prompt names the damage[/] {record.prompt_accuracy:.1%}")
        if record.validation:
            scores = "  ".join(f"{t} {p:.2f}" for t, (p, _s) in record.validation.items())
            console.print(f"  [bold]validation PSNR[/]  {scores}")

    return show


def train(
    out: Annotated[Path, typer.Option("--out", help="Run folder (checkpoints, metrics.jsonl).")],
    config: Annotated[
        str, typer.Option(help="Model configuration: full, small, lean, tiny.")
    ] = TrainConfig.config,
    tasks: Annotated[
        str,
        typer.Option(
            help="Task mix: three, five, six, eight or eight+composites, optionally "
            "reweighted: 'five:rain=2' doubles rain's weight ('noise' names all three "
            "sigmas); validation scores every task."
        ),
    ] = TrainConfig.tasks,
    data: Annotated[
        list[Path] | None, typer.Option(help="Folder of clean photos (repeatable).")
    ] = None,
    paired: Annotated[
        list[str] | None, typer.Option(help="TASK=FOLDER with degraded/ and clean/ (repeatable).")
    ] = None,
    real: Annotated[
        list[str] | None,
        typer.Option(
            help="TASK=FOLDER of real damage for a share of TASK's samples (repeatable): pairs "
            "(degraded/ and clean/), or consecutive sharp video frames averaged into motion blur."
        ),
    ] = None,
    real_share: Annotated[
        float, typer.Option(help="Share of a task's samples drawn from its --real folders.")
    ] = TrainConfig.real_share,
    val: Annotated[
        Path | None, typer.Option(help="Validation root (../shared/data/val layout).")
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            help=f"Total optimiser steps \\[default: {TrainConfig.steps}; resumed: the run's]."
        ),
    ] = None,
    batch: Annotated[
        int, typer.Option(help="Patches per step (per GPU under torchrun).")
    ] = TrainConfig.batch,
    patch: Annotated[
        int,
        typer.Option(
            help=f"Patch side in pixels (a multiple of {NAMED_REQUIREMENTS.size_multiple}, at "
            f"least {NAMED_REQUIREMENTS.min_size})."
        ),
    ] = TrainConfig.patch,
    lr: Annotated[float, typer.Option(help="Peak AdamW learning rate.")] = TrainConfig.lr,
    fft_loss_weight: Annotated[
        float,
        typer.Option(help="Weight of an L1 loss on FFT amplitudes beside the pixel L1 (0: off)."),
    ] = TrainConfig.fft_loss_weight,
    grid_loss_weight: Annotated[
        float,
        typer.Option(
            help="Weight of an L1 loss on the error's grid at periods 2 and 8 px (the "
            "upsamplers' pattern, docs/pattern.md) beside the pixel L1 (0: off)."
        ),
    ] = TrainConfig.grid_loss_weight,
    early_patch: Annotated[
        int,
        typer.Option(help="Patch side early in the run (0: --patch throughout)."),
    ] = TrainConfig.early_patch,
    early_patch_fraction: Annotated[
        float, typer.Option(help="Share of the run (by progress) trained at --early-patch.")
    ] = TrainConfig.early_patch_fraction,
    cpu_minutes: Annotated[
        float,
        typer.Option(
            help="CPU-time budget (this process and its data workers): the run ends when it is "
            "spent and the schedule follows it (0: off)."
        ),
    ] = TrainConfig.cpu_budget_minutes,
    warmup: Annotated[int, typer.Option(help="Linear warm-up steps.")] = TrainConfig.warmup,
    seed: Annotated[
        int, typer.Option(help="Seed: data, initialisation and gate noise.")
    ] = TrainConfig.seed,
    workers: Annotated[int, typer.Option(help="Data worker processes.")] = TrainConfig.workers,
    log_every: Annotated[
        int, typer.Option(help="Steps between metrics lines.")
    ] = TrainConfig.log_every,
    val_every: Annotated[
        int, typer.Option(help="Steps between validations.")
    ] = TrainConfig.val_every,
    checkpoint_minutes: Annotated[
        float, typer.Option(help="Minutes between checkpoints.")
    ] = TrainConfig.checkpoint_minutes,
    checkpoint_steps: Annotated[
        int, typer.Option(help="Also checkpoint every N steps.")
    ] = TrainConfig.checkpoint_steps,
    activation_checkpointing: Annotated[
        bool, typer.Option(help="Recompute activations in backward (less memory).")
    ] = TrainConfig.activation_checkpointing,
    channels_last: Annotated[
        bool, typer.Option(help="channels-last memory format.")
    ] = TrainConfig.channels_last,
    compile: Annotated[bool, typer.Option(help="torch.compile the model.")] = TrainConfig.compile,
    deterministic: Annotated[
        bool, typer.Option(help="Deterministic algorithms only.")
    ] = TrainConfig.deterministic,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = TrainConfig.device,
    threads: Annotated[
        int, typer.Option(help="CPU threads (0: torch's default).")
    ] = TrainConfig.threads,
    init: Annotated[Path | None, typer.Option(help="Start from these weights.")] = None,
    start_step: Annotated[
        int,
        typer.Option(
            help="Continue a longer run from this step (its samples and schedule) from --init's "
            "weights, warming a fresh optimiser up again."
        ),
    ] = TrainConfig.start_step,
    ema_decay: Annotated[
        float, typer.Option(help="Decay of the weights' moving average (what is exported).")
    ] = TrainConfig.ema_decay,
    val_per_task: Annotated[
        int, typer.Option(help="Validation photos per task and set during training (0: all).")
    ] = TrainConfig.val_per_task,
    prompt_weight: Annotated[
        float,
        typer.Option(
            help="Weight of the task prompt's supervision (naming each sample's kind of damage "
            "and its noise level) beside the L1 loss; 0: the paper's unsupervised prompt."
        ),
    ] = TrainConfig.prompt_weight,
    prompt_only: Annotated[
        bool, typer.Option(help="Train only the task prompt on its supervision (fast).")
    ] = TrainConfig.prompt_only,
    prompt_lr_scale: Annotated[
        float,
        typer.Option(
            help="Learning rate of the routers' prompt inputs (projections, gates), x lr."
        ),
    ] = TrainConfig.prompt_lr_scale,
    degrade_on_device: Annotated[
        bool,
        typer.Option(
            help="Degrade the clean crops on the training device (batched torch) instead of "
            "with numpy in the data workers: what keeps a GPU fed."
        ),
    ] = TrainConfig.degrade_on_device,
    lr_reference_batch: Annotated[
        int,
        typer.Option(
            help="The batch --lr was tuned at: the peak rate is scaled by sqrt(global batch / "
            "this); 0: --lr as given."
        ),
    ] = TrainConfig.lr_reference_batch,
    minutes: Annotated[
        float | None,
        typer.Option(
            help="Time budget: the schedule ends after this many minutes (0: off) "
            "\\[default: off; resumed: the run's]."
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --out from its checkpoint.")
    ] = False,
    continue_from: Annotated[
        Path | None,
        typer.Option(
            help="Continue the long run from this hand-off folder (docs/training.md): resume "
            "--out if it holds a checkpoint, else start a stretch there from the hand-off's "
            "weights, step and settings (the other options are then ignored)."
        ),
    ] = None,
    stop_after: Annotated[
        float,
        typer.Option(
            help="Stop with a checkpoint after this many minutes, leaving the schedule as it "
            "is (a stretch of a long run; 0: off)."
        ),
    ] = 0.0,
) -> None:
    """Train MEASNet on synthetic and paired degradations, with checkpoints and exact resume."""
    if continue_from is not None:
        settings, resume = continue_settings(out, continue_from)
    elif resume:
        settings = TrainConfig.load(out).resumed(steps=steps, minutes=minutes)
    else:
        settings = TrainConfig(
            config=config, tasks=tasks, data=[str(d) for d in data or []],
            paired=list(paired or []), real=list(real or []), real_share=real_share,
            val=str(val) if val else None,
            steps=TrainConfig.steps if steps is None else steps, batch=batch,
            patch=patch, lr=lr, warmup=warmup, seed=seed, workers=workers, log_every=log_every,
            val_every=val_every, checkpoint_minutes=checkpoint_minutes,
            checkpoint_steps=checkpoint_steps, activation_checkpointing=activation_checkpointing,
            channels_last=channels_last, compile=compile, deterministic=deterministic,
            device=device, threads=threads, init=str(init) if init else None,
            time_budget_minutes=minutes or 0.0, prompt_weight=prompt_weight,
            prompt_only=prompt_only, prompt_lr_scale=prompt_lr_scale,
            ema_decay=ema_decay, val_per_task=val_per_task, degrade_on_device=degrade_on_device,
            lr_reference_batch=lr_reference_batch, start_step=start_step,
            fft_loss_weight=fft_loss_weight, grid_loss_weight=grid_loss_weight,
            early_patch=early_patch,
            early_patch_fraction=early_patch_fraction, cpu_budget_minutes=cpu_minutes,
        )  # fmt: skip
    trainer = Trainer(settings, out, resume=resume)
    console = stderr()
    where = f"resuming at step {trainer.step}" if resume else "new run"
    if settings.start_step and not resume:
        where = f"continuing at step {settings.start_step}"
    console.print(
        f"[bold]measr train[/] {settings.config} on '{settings.tasks}' ({where}), "
        f"{trainer.device}, batch {settings.batch}x{settings.patch}px -> {out}"
    )
    try:
        trainer.run(_progress(settings.steps, settings.time_budget_minutes), stop_after)
    except KeyboardInterrupt:
        console.print(f"stopped at step {trainer.step}; checkpoint {out / 'last.pt'} (--resume)")
        raise
    console.print(f"done: step {trainer.step}, checkpoint {out / 'last.pt'}")


def export(
    source: Annotated[
        Path, typer.Argument(help="A run folder of `measr train`, or a .safetensors file.")
    ],
    name: Annotated[str, typer.Option(help="Entry name in weights.txt.")],
    out_dir: Annotated[Path, typer.Option(help="Where the .safetensors goes.")] = Path("weights"),
    half: Annotated[str, typer.Option(help="auto (fp16 if lossless), yes or no.")] = "auto",
    default: Annotated[bool, typer.Option(help="Make this the default weights.")] = False,
    ship: Annotated[
        bool,
        typer.Option(
            help="Make this the default if it beats the current default by the ship rule "
            "(mean PSNR up over the validation sets, none down by more than 0.3 dB; every photo)."
        ),
    ] = False,
    val: Annotated[Path | None, typer.Option(help="Validation root (default: the run's).")] = None,
    tasks: Annotated[str, typer.Option(help="Task mix scored for a .safetensors source.")] = "five",
    note: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE provenance for a .safetensors source.")
    ] = None,
    format: Annotated[
        str,
        typer.Option(
            "--format",
            help="safetensors (scored, listed in weights.txt); onnx: the network of a "
            ".safetensors source as OUT_DIR/NAME.onnx, for ONNX Runtime (the measr\\[onnx] "
            "extra; minutes); openvino: the same as OpenVINO IR, OUT_DIR/NAME.xml and .bin (the "
            "measr\\[openvino] extra).",
        ),
    ] = "safetensors",
) -> None:
    """Export weights with their validation scores to safetensors and list them in weights.txt,
    or (--format onnx|openvino) a .safetensors file's network as an ONNX graph or OpenVINO IR."""
    check_name(name)
    if format == "onnx":
        written = export_onnx_file(source, out_dir / f"{name}.onnx")
        stderr().print(f"wrote {written} (ONNX: {ONNX_SIGNATURE})")
        return
    if format == "openvino":
        written = export_openvino_file(source, out_dir / f"{name}.xml")
        stderr().print(
            f"wrote {written} and its .bin (OpenVINO IR: {ONNX_SIGNATURE}; compile it with "
            "INFERENCE_PRECISION_HINT f32, as measr runs it: OpenVINO's default on CPUs with "
            "AMX is bfloat16)"
        )
        return
    if format != "safetensors":
        raise MeasrError(f"--format must be safetensors, onnx or openvino, not '{format}'")
    if source.suffix == ".safetensors":
        provenance = note_provenance(note or [])
        scoring = Scoring(tasks, val)
        result = export_weights_file(
            source, name, out_dir, scoring, provenance, half=half, default=default, ship=ship
        )
    else:
        result = export_run(
            source, name, out_dir, half=half, default=default, ship=ship, val_root=val
        )
    console = stderr()
    for task, (p, s) in result.scores.items():
        fp16 = f"  fp16 {result.half_scores[task][0]:.3f}" if result.half_scores else ""
        console.print(f"{task:12s} PSNR {p:.3f}  SSIM {s:.4f}{fp16}")
    if result.decision is not None:
        decision = result.decision
        for task in decision.sets:
            console.print(
                f"{task:12s} {decision.default[task][0]:.3f} -> {decision.candidate[task][0]:.3f}"
                f"  ({decision.change(task):+.3f} dB)"
            )
        console.print(decision.reason())
    dtype = "float16" if result.half else "float32"
    console.print(f"wrote {result.entry.file} ({dtype}), sha256 {result.entry.sha256[:16]}...")


# The weights a fit-* command starts from, and the file it writes.
FittedSource = Annotated[
    Path,
    typer.Argument(
        help="A run folder of `measr train`, or a .safetensors file, whose prompt names the damage."
    ),
]
FittedOut = Annotated[
    Path, typer.Option(help="The fitted .safetensors (list it with `measr export`).")
]


def fit_colour(
    source: FittedSource,
    data: Annotated[
        Path, typer.Option(help="A folder of clean training photos (never the validation ones).")
    ],
    out: FittedOut,
    tasks: Annotated[str, typer.Option(help="Task mix the photos are degraded with.")] = "six",
    photos: Annotated[int, typer.Option(min=1, help="Photos of DATA, each in every task.")] = 24,
    crop: Annotated[int, typer.Option(min=64, help="Centre crop of each photo, pixels.")] = 256,
) -> None:
    """Fit the colour correction by damage (a gain and an offset per colour channel for each
    kind of damage the prompt names) on degraded training photos; the rest of the network is
    unchanged."""
    names = list(mix_weights(tasks))
    console = stderr()
    total = photos * len(names)
    seen = 0

    def show(sample: str) -> None:
        nonlocal seen
        seen += 1
        if seen % 10 == 0 or seen == total:
            console.print(f"{seen}/{total} samples ({sample})")

    fitted = fit_weights_file(source, data, out, names, photos, crop, show)
    assert fitted.colour is not None
    for kind, gain, offset in zip(
        fitted.config.degradation_kinds, fitted.colour.gain, fitted.colour.offset, strict=True
    ):
        console.print(
            f"{kind:10s} gain {' '.join(f'{g:+.3f}' for g in gain.tolist())}  "
            f"offset {' '.join(f'{o * 255:+.1f}' for o in offset.tolist())} /255"
        )
    console.print(f"wrote {out}")


def fit_presence(
    source: FittedSource,
    data: Annotated[
        list[Path],
        typer.Option(help="A folder of clean training photos, never the validation ones (repeat)."),
    ],
    out: FittedOut,
    real: Annotated[
        list[str] | None,
        typer.Option(
            metavar="TASK=FOLDER",
            help="Real damage for a share of a task's samples, as `measr train --real` takes "
            "it (repeat).",
        ),
    ] = None,
    samples: Annotated[int, typer.Option(min=1, help="Degraded crops to fit on.")] = 16000,
    patch: Annotated[int, typer.Option(min=64, help="Side of each crop, pixels.")] = 256,
    hidden: Annotated[
        int, typer.Option(min=0, help="Hidden units of the head (0: linear).")
    ] = PRESENCE_HIDDEN,
) -> None:
    """Fit the prompt's presence head (a probability per kind of damage, so that damage that
    comes together is named in full) on the frozen prompt features of degraded training crops:
    single kinds, clean photos and composites. Every restored pixel stays the same."""
    console = stderr()
    sources = [(task, Path(folder)) for task, _, folder in (r.partition("=") for r in real or [])]

    def show(done: int, total: int) -> None:
        if done % 1000 == 0 or done == total:
            console.print(f"{done}/{total} crops read")

    fit_presence_file(source, data, out, samples, patch, sources, hidden, show)
    console.print(f"wrote {out}")
