"""Training checkpoints: everything an exact resume needs, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from measr.atomic import replacing
from measr.errors import MeasrError
from measr.io.oserrors import explain

CHECKPOINT_NAME = "last.pt"


def save_checkpoint(state: dict[str, Any], run_dir: Path) -> Path:
    """Write `state` to RUN_DIR/last.pt through a temporary file and a rename, so a stop at any
    moment leaves either the previous checkpoint or the new one, never half of one."""
    path = run_dir / CHECKPOINT_NAME
    try:
        with replacing(path) as temporary:
            torch.save(state, temporary)
    except (OSError, RuntimeError) as error:  # torch.save wraps a full disk in a RuntimeError
        cause = explain(error)[0] if isinstance(error, OSError) else str(error).splitlines()[0]
        raise MeasrError(
            f"cannot write the checkpoint '{path}': {cause}; the previous checkpoint is kept",
            "free some disk space, then continue with --resume",
        ) from None
    return path


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """The state saved in RUN_DIR/last.pt (tensors and plain containers only)."""
    path = run_dir / CHECKPOINT_NAME
    if not path.exists():
        raise MeasrError(f"no checkpoint at '{path}'", "start a run without --resume first")
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a corrupt pickle can raise almost anything
        raise MeasrError(f"cannot read checkpoint '{path}': {error}") from None
    return state
