"""Do no harm: a photo whose damage these weights do not yet improve is left as it is.

Every weights entry that `measr export` writes records, beside the weights' validation scores
(`val.<set>`), the damaged input's own scores on the same photos (`input.<set>`). Their
difference is what the weights gain on each kind of damage. When the task prompt names a
photo's damage confidently and the weights gain nothing on that kind (they came out below the
damaged input in validation), restoring could only make the photo worse: the photo is returned
unchanged and the caller says why. `force` restores it anyway. Weights that improve the kind
lift the gate by themselves: it reads their own entry.
"""

from __future__ import annotations

from collections.abc import Mapping

from measr.degrade import TASK_KINDS
from measr.engine.damage import DamageReading

VALIDATION_PREFIX = "val."
INPUT_PREFIX = "input."


def psnr_of(value: str) -> float | None:
    """The PSNR of a `<psnr>/<ssim>` field, None when it is not a number."""
    try:
        return float(value.partition("/")[0])
    except ValueError:
        return None


def kind_of_set(name: str) -> str | None:
    """The kind of damage a validation set holds: its task's kind ('haze-its' is real haze,
    'noise25' noise); None for clean photos and names measr does not know."""
    kind = TASK_KINDS.get(name) or TASK_KINDS.get(name.split("-")[0])
    return None if kind in (None, "clean") else kind


def gains_by_kind(fields: Mapping[str, str]) -> dict[str, float]:
    """dB the weights gain over the damaged input, per kind of damage, from a weights entry's
    `val.<set>` and `input.<set>` fields: the mean over the kind's sets. Kinds without both
    scores are left out (and so never held back)."""
    per_kind: dict[str, list[float]] = {}
    for key, value in fields.items():
        if not key.startswith(VALIDATION_PREFIX):
            continue
        name = key[len(VALIDATION_PREFIX) :]
        kind = kind_of_set(name)
        restored, damaged = psnr_of(value), psnr_of(fields.get(INPUT_PREFIX + name, ""))
        if kind is None or restored is None or damaged is None:
            continue
        per_kind.setdefault(kind, []).append(restored - damaged)
    return {kind: sum(gains) / len(gains) for kind, gains in per_kind.items()}


def kind_left_as_is(damage: DamageReading | None, gains: Mapping[str, float]) -> str | None:
    """The kind of damage to leave as it is: the one the prompt names confidently, when these
    weights do not improve it (gain at or below 0 dB); None to restore. A photo named with
    several kinds (a presence head) is restored when the weights improve any of them."""
    if damage is None:
        return None
    named = [kind for kind, _ in damage.named()]
    gained = [gains.get(kind) for kind in named]
    if not named or any(gain is None or gain > 0 for gain in gained):
        return None
    return named[0]
