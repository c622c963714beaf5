"""`measr import-weights CHECKPOINT --config NAME`: a PyTorch checkpoint (a pickle) converted once
into measr's safetensors weights, read with torch.load(weights_only=True)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from measr.cli.render import stdout
from measr.cli.restore import refuse_existing
from measr.errors import WeightsError
from measr.io.oserrors import explain
from measr.manifest import sha256_of
from measr.model import MEASNet, get_config
from measr.model.weights import import_checkpoint, save_weights

SAFETENSORS = ".safetensors"


def write_safetensors(model: MEASNet, target: Path, source: Path) -> None:
    """Save the imported network, its folder created, with where it came from."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        save_weights(model, target, metadata={"imported_from": source.name})
    except OSError as error:
        cause, hint = explain(error)
        raise WeightsError(f"cannot write '{target}': {cause}", hint) from None


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
    refuse_existing(target, overwrite)
    model = import_checkpoint(source, get_config(config))
    write_safetensors(model, target, source)
    tensors = len(model.state_dict())
    stdout().print(
        f"read '{source}' with torch.load(weights_only=True): tensors only, no code run\n"
        f"wrote '{target}': config {config}, {tensors} tensors, sha256 {sha256_of(target)}\n"
        f"use it with --weights {target}",
        soft_wrap=True,
        markup=False,
    )
