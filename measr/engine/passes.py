"""Restoring in passes: restore, let the task prompt read the output, and restore again while it
still names damage (AutoDIR's restore-then-look-again loop, with measr's own prompt as the
judge).

A photo with two kinds of damage may come out of one pass with one of them left: the prompt
reads the output as it reads any photo, and names what is left. `passes=None` (auto, the
default) restores a photo in one pass unless the prompt names several kinds of damage in it;
then it goes on while the output's reading names damage, for at most MAX_PASSES, and keeps a
later pass only if the prompt finds its output no more damaged than its input
(`DamageReading.damage_score`). The first pass is what one pass gives. A fixed number of passes
runs them all. The strength blends the last output with the original photo, once.

Why only photos with several kinds: on single damage, looking again cost 0.2-1.9 dB (a clean
photo read as noisy, real haze restored twice), while on composites it gained 0.26 dB
(docs/prompt.md, "pr15 the default, and auto passes only for several kinds").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from measr.engine.damage import DamageReading
from measr.engine.options import MAX_PASSES, RestoreOptions
from measr.engine.strength import FULL_STRENGTH, blend

if TYPE_CHECKING:
    from measr.engine.restorer import Restoration, Restorer


@dataclass(frozen=True)
class RestorePass:
    """One pass of a restoration in passes: what the prompt read on its input and on its output,
    and whether its output was kept."""

    found: DamageReading | None  # the prompt's reading of the pass's input
    after: DamageReading | None  # ... and of its output
    seconds: float
    kept: bool = True  # False: the prompt read its output as more damaged; the input stays
    left_as_is: str | None = None  # the kind the do-no-harm gate held back (`measr.engine.harm`)

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers and words, for JSON."""
        return {
            "found": None if self.found is None else self.found.to_dict(),
            "after": None if self.after is None else self.after.to_dict(),
            "seconds": round(self.seconds, 3),
            "kept": self.kept,
            "left_as_is": self.left_as_is,
        }


def names_damage(reading: DamageReading | None) -> bool:
    """Whether a reading names some kind of damage (None: a prompt that names no kinds)."""
    return reading is not None and bool(reading.named())


def names_several(reading: DamageReading | None) -> bool:
    """Whether a reading names two kinds of damage or more (a presence head's reading)."""
    return reading is not None and len(reading.named()) >= 2


def made_worse(found: DamageReading | None, after: DamageReading | None) -> bool:
    """Whether the prompt reads a pass's output as more damaged than its input."""
    if found is None or after is None:
        return False
    return after.damage_score > found.damage_score


def restore_in_passes(
    restorer: Restorer, pixels: np.ndarray, options: RestoreOptions, **keywords: Any
) -> Restoration:
    """`restorer.restore` in passes as `options.passes` asks (None: auto; see the module's
    docstring); the result's `passes` records each one, and its other fields are the first
    pass's, with the total time and the last kept output blended at `options.strength`."""
    started = time.perf_counter()
    once = replace(options, passes=1, strength=FULL_STRENGTH)
    limit = MAX_PASSES if options.passes is None else options.passes
    first: Restoration | None = None
    current = pixels
    passes: list[RestorePass] = []
    auto = options.passes is None
    for number in range(limit):
        restoration = restorer.restore(current, once, **keywords)
        if first is None:
            first = restoration
        # auto looks again only at a photo found with several kinds of damage
        again = not auto or names_several(first.damage)
        held = restoration.left_as_is
        after = restorer.read_damage(restoration.pixels) if held is None and again else None
        worse = number > 0 and auto and made_worse(restoration.damage, after)
        kept = held is None and not worse
        passes.append(RestorePass(restoration.damage, after, restoration.seconds, kept, held))
        if kept:
            current = restoration.pixels
        if not kept or not again or (auto and not names_damage(after)):
            break
    assert first is not None  # limit >= 1
    # no pass kept: the first was held back, and its pixels are the photo as restore returns it
    restored = current if passes[0].kept else first.pixels
    if options.strength != FULL_STRENGTH:  # the copy only where a blend needs it (large photos)
        original = np.ascontiguousarray(pixels, dtype=np.float32)
        if original.shape != restored.shape:  # a gray photo's output is gray, as its input
            original = original.reshape(restored.shape)
        restored = blend(original, restored, options.strength)
    return replace(
        first, pixels=restored, seconds=time.perf_counter() - started, passes=tuple(passes)
    )
