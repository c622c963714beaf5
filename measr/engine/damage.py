"""What damage the task prompt found in a photo, in numbers and in words.

The prompt reads the whole photo at full resolution (its pooled features are accumulated over
strips, `measr.engine.inference.prompt_features`), so a large noisy photo is read as noisy,
not as the cleaner image its downscaled copy would be.
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
# Shown as a kind's name in words.
KIND_WORDS = {"lowlight": "low light"}


@dataclass(frozen=True)
class DamageReading:
    """The prompt's probabilities per kind of damage ('clean': none), and its noise estimate."""

    probabilities: dict[str, float]
    noise_sigma: float | None

    @classmethod
    def from_prompt(cls, reading: PromptReading, index: int = 0) -> DamageReading | None:
        """Image `index` of a prompt reading; None when the prompt names no kinds."""
        probabilities = reading.kind_probabilities
        if probabilities is None:
            return None
        sigma = reading.noise_sigma
        return cls(
            {kind: float(probabilities[index, k]) for k, kind in enumerate(reading.kinds)},
            None if sigma is None else max(float(sigma[index]), 0.0),
        )

    def ranked(self) -> list[tuple[str, float]]:
        """(kind, probability), most probable first."""
        return sorted(self.probabilities.items(), key=lambda item: -item[1])

    @property
    def most_likely(self) -> str:
        return self.ranked()[0][0]

    @property
    def confident(self) -> bool:
        return self.ranked()[0][1] >= CONFIDENT

    def kind_words(self, kind: str, share: float) -> str:
        words = f"{KIND_WORDS.get(kind, kind)} {share * 100:.0f} %"
        if kind == "noise" and self.noise_sigma is not None:
            words += f" (sigma ~{self.noise_sigma:.0f})"
        return words

    def words(self) -> str:
        """'haze 91 %', 'noise 97 % (sigma ~24)', 'looks clean (93 %)', 'haze 66 %, also
        noise 28 %', or 'unsure: haze 48 %, blur 35 %'."""
        (first, p1), (second, p2) = self.ranked()[:2]
        if not self.confident:
            return f"unsure: {self.kind_words(first, p1)}, {self.kind_words(second, p2)}"
        if first == "clean":
            return f"looks clean ({p1 * 100:.0f} %)"
        named = self.kind_words(first, p1)
        if second != "clean" and p2 >= ALSO:
            named += f", also {self.kind_words(second, p2)}"
        return named

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers and the words, for JSON."""
        return {
            "found": self.words(),
            "most_likely": self.most_likely,
            "confident": self.confident,
            "probabilities": {k: round(p, 4) for k, p in self.probabilities.items()},
            "noise_sigma": None if self.noise_sigma is None else round(self.noise_sigma, 2),
        }
