"""How much of the restoration a user keeps: `--strength` blends the restored photo with the
input, as other restoration tools let their users dial an effect back."""

from __future__ import annotations

import numpy as np

from measr.errors import MeasrError

FULL_STRENGTH = 1.0


def check_strength(strength: float) -> float:
    """`strength` when it lies in [0, 1]; a usage error otherwise (NaN included)."""
    if not 0.0 <= strength <= 1.0:
        raise MeasrError(
            f"strength must be between 0 and 1, not {strength}",
            "1 keeps the full restoration, 0 the input",
            option="strength",
        )
    return float(strength)


def blend(original: np.ndarray, restored: np.ndarray, strength: float) -> np.ndarray:
    """(H, W, C) float pixels `strength * restored + (1 - strength) * original`; at full
    strength the restoration itself, untouched."""
    if check_strength(strength) == FULL_STRENGTH:
        return restored
    weight = np.float32(strength)
    mixed = original.astype(np.float32) * (np.float32(1) - weight) + restored * weight
    return mixed.astype(np.float32, copy=False)
