"""`measr import-weights CHECKPOINT --config NAME`: a PyTorch checkpoint (a pickle) converted once
into measr's safetensors weights, read with torch.load(weights_only=True)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from measr.cli.render import stdout
from measr.errors import ExitCode, MeasrError, WeightsError
from measr.manifest import sha256_of
from measr.model import get_config
from measr.weights import import_checkpoint, save_weights

SAFETENSORS = ".safetensors"


def import_weights(
    source: Annotated[
        Path,
        typer.Argument(metavar="CHECKPOINT", help="A .pth/.pt/.ckpt file holding a state dict."),
    ],
    config: Annotated[
        str,
        typer.Option("--config", metavar="NAME", help="The configuration it was trained with."),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", metavar="OUT", help="Default: CHECKPOINT.safetensors."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT if it exists.")
    ] = False,
) -> None:
    """Convert a PyTorch checkpoint into safetensors weights for --weights. It is read with
    torch.load(weights_only=True): tensors only, so a file that would run code is refused
    without running it."""
    target = out or source.with_suffix(SAFETENSORS)
    if target.suffix != SAFETENSORS:
        raise WeightsError(f"'{target}' must end in {SAFETENSORS}", f"use -o NAME{SAFETENSORS}")
    if os.path.lexists(target) and not overwrite:
        raise MeasrError(
            f"'{target}' already exists",
            "use --overwrite to replace it, or -o to choose another name",
            ExitCode.INPUT,
        )
    model = import_checkpoint(source, get_config(config))
    save_weights(model, target, metadata={"imported_from": source.name})
    tensors = len(model.state_dict())
    stdout().print(
        f"read '{source}' with torch.load(weights_only=True): tensors only, no code run\n"
        f"wrote '{target}': config {config}, {tensors} tensors, sha256 {sha256_of(target)}\n"
        f"use it with --weights {target}",
        soft_wrap=True,
        markup=False,
    )
