"""Learning-rate schedule: linear warm-up, then cosine decay to a floor."""

from __future__ import annotations

import math


def warmup_cosine(
    step: int, total: int, warmup: int, floor: float = 0.01, warm_from: int = 0
) -> float:
    """Multiplier of the base learning rate at `step` (0-based) of `total`: a linear warm-up
    over `warmup` steps from step `warm_from` (a run that continues another with a fresh
    optimiser warms up again), times the cosine decay from `warmup` to `total`."""
    ramp = min((step - warm_from + 1) / warmup, 1.0) if warmup > 0 else 1.0
    progress = min(max(step - warmup, 0) / max(total - warmup, 1), 1.0)
    return ramp * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def batch_scaled_lr(lr: float, batch: int, reference_batch: int) -> float:
    """The peak learning rate for a global batch: `lr` was tuned at `reference_batch` and
    grows with the square root of the batch (the rule for Adam of Malladi et al., 2022, "On
    the SDEs and scaling rules for adaptive gradient algorithms"); reference 0: `lr` as given."""
    if reference_batch <= 0:
        return lr
    return lr * math.sqrt(batch / reference_batch)
