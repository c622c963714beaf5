"""What damage the task prompt found in a photo, in numbers and in words.

The prompt reads the whole photo at full resolution (its pooled features are accumulated over
strips, `measr.engine.inference.prompt_features`), so a large noisy photo is read as noisy,
not as the cleaner image its downscaled copy would be.

Weights with a presence head (`measr.model.task_prompt`) give each kind of damage its own
probability, and the reading names every kind that reaches PRESENT: "low light 88 % and noise
74 % (sigma ~18)". Weights without one are read by the atoms' softmax, which names one kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from measr.model.task_prompt import PromptReading

# The most probable kind is named alone when its probability reaches this; below it the reading
# says it is unsure and gives the two most probable kinds. Calibrated on `small-5task-named`
# over the 361 whole validation photos (docs/prompt.md): at 0.7, 84 % of the photos are named
# and 98.0 % of those rightly (0.6: 92 % named, 95.2 % rightly; 0.8: 77 %, 99.3 %).
CONFIDENT = 0.7
# A second kind is named beside a confident first one when it reaches this share.
ALSO = 0.25
# With a presence head, every kind of damage whose presence probability reaches this is named.
# Calibrated for `small-5task-pr15` on the whole validation photos (docs/prompt.md): at 0.5,
# 92.0 % of the 361 single-damage and clean photos are named exactly and both kinds of 80.2 % of
# the 252 two-kind photos are named (0.45: 91.1 / 81.7 %; 0.6: 93.1 / 75.4 %).
PRESENT = 0.5
# Shown as a kind's name in words.
KIND_WORDS = {"lowlight": "low light"}
CLEAN = "clean"


@dataclass(frozen=True)
class DamageReading:
    """The prompt's probabilities per kind of damage ('clean': none), and its noise estimate;
    with a presence head, each kind's own probability of being present (`presence`)."""

    probabilities: dict[str, float]
    noise_sigma: float | None
    presence: dict[str, float] | None = None

    @classmethod
    def from_prompt(cls, reading: PromptReading, index: int = 0) -> DamageReading | None:
        """Image `index` of a prompt reading; None when the prompt names no kinds."""
        probabilities = reading.kind_probabilities
        if probabilities is None:
            return None
        sigma = reading.noise_sigma
        present = reading.presence_probabilities
        return cls(
            {kind: float(probabilities[index, k]) for k, kind in enumerate(reading.kinds)},
            None if sigma is None else max(float(sigma[index]), 0.0),
            None
            if present is None
            else {kind: float(present[index, k]) for k, kind in enumerate(reading.kinds)},
        )

    def ranked(self) -> list[tuple[str, float]]:
        """(kind, probability), most probable first."""
        return sorted(self.probabilities.items(), key=lambda item: -item[1])

    @property
    def most_likely(self) -> str:
        return self.ranked()[0][0]

    @property
    def confident(self) -> bool:
        """Whether the reading names the damage (or its absence) without doubt: with a
        presence head, some kind reaches PRESENT; else the softmax's first reaches CONFIDENT."""
        if self.presence is not None:
            return bool(self.named()) or self.presence.get(CLEAN, 0.0) >= PRESENT
        return self.ranked()[0][1] >= CONFIDENT

    def named(self) -> list[tuple[str, float]]:
        """The kinds of damage the reading names, (kind, probability), most probable first:
        with a presence head, every kind present from PRESENT; else the softmax's first kind
        when it is confident and not 'clean'."""
        if self.presence is None:
            first, share = self.ranked()[0]
            return [(first, share)] if share >= CONFIDENT and first != CLEAN else []
        kinds = [(k, p) for k, p in self.presence.items() if k != CLEAN and p >= PRESENT]
        return sorted(kinds, key=lambda item: -item[1])

    @property
    def damage_score(self) -> float:
        """How damaged the photo looks to the prompt, 0 (clean) upwards: the sum of the damage
        kinds' presence probabilities, or without a presence head 1 - p(clean)."""
        if self.presence is not None:
            return sum(p for k, p in self.presence.items() if k != CLEAN)
        return 1.0 - self.probabilities.get(CLEAN, 0.0)

    def kind_words(self, kind: str, share: float) -> str:
        words = f"{KIND_WORDS.get(kind, kind)} {share * 100:.0f} %"
        if kind == "noise" and self.noise_sigma is not None:
            words += f" (sigma ~{self.noise_sigma:.0f})"
        return words

    def words(self) -> str:
        """'haze 91 %', 'noise 97 % (sigma ~24)', 'low light 88 % and noise 74 % (sigma ~18)',
        'looks clean (93 %)', 'haze 66 %, also noise 28 %', or 'unsure: haze 48 %, blur 35 %'."""
        if self.presence is not None:
            return self.presence_words()
        (first, p1), (second, p2) = self.ranked()[:2]
        if not self.confident:
            return f"unsure: {self.kind_words(first, p1)}, {self.kind_words(second, p2)}"
        if first == "clean":
            return f"looks clean ({p1 * 100:.0f} %)"
        named = self.kind_words(first, p1)
        if second != "clean" and p2 >= ALSO:
            named += f", also {self.kind_words(second, p2)}"
        return named

    def presence_words(self) -> str:
        """The words of a reading with a presence head: every kind named, joined by 'and'."""
        assert self.presence is not None
        named = [self.kind_words(kind, p) for kind, p in self.named()]
        if named:
            return named[0] if len(named) == 1 else f"{', '.join(named[:-1])} and {named[-1]}"
        clean = self.presence.get(CLEAN, 0.0)
        if clean >= PRESENT:
            return f"looks clean ({clean * 100:.0f} %)"
        damage = sorted(
            ((k, p) for k, p in self.presence.items() if k != CLEAN), key=lambda item: -item[1]
        )
        return "unsure: " + ", ".join(self.kind_words(k, p) for k, p in damage[:2])

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers and the words, for JSON: with a presence head, every kind's presence
        and the kinds named."""
        record = {
            "found": self.words(),
            "most_likely": self.most_likely,
            "confident": self.confident,
            "named": [kind for kind, _ in self.named()],
            "probabilities": {k: round(p, 4) for k, p in self.probabilities.items()},
            "noise_sigma": None if self.noise_sigma is None else round(self.noise_sigma, 2),
        }
        if self.presence is not None:
            record["presence"] = {k: round(p, 4) for k, p in self.presence.items()}
        return record
