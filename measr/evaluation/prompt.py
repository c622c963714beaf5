"""Does the task prompt know what damage it sees, and do the routers listen to it?

On labelled images (validation crops whose damage is known) this measures:

* **naming**: how often the prompt's most probable kind of damage is the true one (and, for the
  noise tasks, whether its noise estimate is nearest the true sigma), with the confusion matrix;
  for weights whose prompt names no kinds, "not named";
* a **probe** of what the prompt carries, whatever its head: nearest class centroid of the log
  atom weights, each image classified by centroids of the other photos;
* the **atom entropy** per task, against the uniform distribution's log(atoms);
* the **mutual information** between task and expert choice at each STP-G-MESE level (each pixel's
  top-k selections) and FD-MEE band (each image's top-k), in bits;
* whether the routers **use** the prompt: the same images routed with the prompt shuffled across
  them, the share of pixels whose expert choice stays the same and the change of PSNR;
* **every kind named** (`presence_naming`), on whole photos with one kind of damage and with
  several (`measr.degrade.COMPOSITES`): the share of photos whose every kind the reading names,
  and of single-damage photos named exactly, by the presence head where the weights have one,
  else by the softmax's words (its first kind, and a second from ALSO).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from measr.degrade import spec_kinds, task_kind, task_noise_sigma
from measr.degrade.tasks import COMPOSITES, NOISE_TASKS
from measr.engine.damage import ALSO, CLEAN, PRESENT, DamageReading
from measr.evaluation.metrics import psnr
from measr.model import ForwardContext, MEASNet, RoutingRecord

# Labels of validation sets that are not task names.
LABEL_KINDS = {"haze-its": "haze", "blur-synthetic": "blur"}
NOISE_TASK_SIGMAS = {task: float(task_noise_sigma(task) or 0) for task in NOISE_TASKS}


def label_kind(label: str) -> str:
    """The kind of damage of a task or validation label ('noise25' -> 'noise')."""
    return LABEL_KINDS.get(label) or task_kind(label)


class LabelledImage(Protocol):
    """An image whose damage is known (a `measr.training.validation.ValidationItem`)."""

    @property
    def task(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def degraded(self) -> np.ndarray: ...
    @property
    def clean(self) -> np.ndarray: ...


@dataclass
class ImageReading:
    """What the network did with one labelled image."""

    task: str
    name: str
    atom_weights: np.ndarray  # (atoms,)
    kind_probabilities: np.ndarray | None  # (kinds,)
    noise_sigma: float | None
    pixel_counts: dict[str, np.ndarray]  # level -> selections per expert
    band_choices: dict[str, np.ndarray]  # band -> (k,) experts chosen
    psnr: float
    shuffled_psnr: float
    same_choice: dict[str, float]  # level -> share of pixels whose top-k set did not change


def atom_entropy(weights: np.ndarray) -> float:
    """Entropy (nats) of a distribution over atoms."""
    p = weights[weights > 0]
    return float(-(p * np.log(p)).sum())


def mutual_information(joint_counts: np.ndarray) -> float:
    """I(row; column) in bits of a table of co-occurrence counts (rows: tasks)."""
    total = joint_counts.sum()
    if total <= 0:
        return 0.0
    joint = joint_counts / total
    rows = joint.sum(axis=1, keepdims=True)
    cols = joint.sum(axis=0, keepdims=True)
    nonzero = joint > 0
    return float((joint[nonzero] * np.log2(joint[nonzero] / (rows @ cols)[nonzero])).sum())


def named_task(kind: str, sigma: float | None) -> str:
    """The task a kind and noise estimate stand for: the noise task of the nearest sigma."""
    if kind != "noise" or sigma is None:
        return kind
    return min(NOISE_TASK_SIGMAS, key=lambda task: abs(NOISE_TASK_SIGMAS[task] - sigma))


def true_task(label: str) -> str:
    """The task name a label is scored against at the task level (kinds, noise by sigma)."""
    return label if label in NOISE_TASK_SIGMAS else label_kind(label)


@torch.no_grad()
def read_images(
    model: MEASNet, images: Sequence[LabelledImage], batch: int = 8, seed: int = 0
) -> list[ImageReading]:
    """Run every image (all of one size) through the network, once as it is and once with the
    prompts of the batch shuffled among its images (a fixed derangement)."""
    model.eval()
    key = model.task_prompt.context_key
    generator = torch.Generator().manual_seed(seed)
    readings = []
    for start in range(0, len(images), batch):
        group = list(images[start : start + batch])
        x = torch.stack([torch.from_numpy(im.degraded.transpose(2, 0, 1).copy()) for im in group])
        ctx = ForwardContext(record_routing=True, capture_global=True)
        out = model(x, ctx)
        pooled = ctx.captured[key]
        order = derangement(len(group), generator)
        shuffled_ctx = ForwardContext(record_routing=True, shared={key: pooled[order]})
        shuffled = model(x, shuffled_ctx)
        readings += [
            reading_of(
                i,
                model.config.pixel_experts,
                im,
                out,
                shuffled.image,
                ctx.routing,
                shuffled_ctx.routing,
            )
            for i, im in enumerate(group)
        ]
    return readings


def derangement(n: int, generator: torch.Generator) -> torch.Tensor:
    """A permutation of range(n) that moves every element (the identity for n = 1)."""
    if n == 1:
        return torch.zeros(1, dtype=torch.long)
    shift = int(torch.randint(1, n, (1,), generator=generator))
    return (torch.arange(n) + shift) % n


def reading_of(
    i: int,
    experts_per_level: int,
    image: LabelledImage,
    out: Any,
    shuffled: torch.Tensor,
    routing: RoutingRecord,
    shuffled_routing: RoutingRecord,
) -> ImageReading:
    prompt = out.prompt
    kinds = prompt.kind_probabilities
    sigma = prompt.noise_sigma
    pixel_counts, same = {}, {}
    for level, record in routing.pixel.items():
        experts = record.experts[i].long()  # (k, h, w)
        counts = torch.bincount(experts.reshape(-1), minlength=experts_per_level)
        pixel_counts[level] = counts.numpy().astype(np.float64)
        other = shuffled_routing.pixel[level].experts[i].long()
        kept = (experts.sort(0).values == other.sort(0).values).all(0)
        same[level] = float(kept.float().mean())

    def restored(t: torch.Tensor) -> np.ndarray:
        return t[i].clamp(0, 1).permute(1, 2, 0).float().numpy()

    return ImageReading(
        task=image.task,
        name=image.name,
        atom_weights=prompt.atom_weights[i].float().numpy(),
        kind_probabilities=None if kinds is None else kinds[i].float().numpy(),
        noise_sigma=None if sigma is None else max(float(sigma[i]), 0.0),
        pixel_counts=pixel_counts,
        band_choices={b: r.experts[i].numpy() for b, r in routing.image.items()},
        psnr=psnr(restored(out.image), image.clean),
        shuffled_psnr=psnr(restored(shuffled), image.clean),
        same_choice=same,
    )


@dataclass
class PromptReport:
    """The measurements of the module docstring, per task and overall."""

    weights: str
    kinds: tuple[str, ...]
    atoms: int
    tasks: list[str]
    count: dict[str, int]
    kind_accuracy: float | None
    task_accuracy: float | None
    accuracy_by_task: dict[str, float]
    confusion: dict[str, dict[str, int]]  # true label -> named kind -> count
    probe_accuracy: float
    entropy_by_task: dict[str, float]
    uniform_entropy: float
    mutual_information: dict[str, float]  # level or band -> bits
    task_entropy_bits: float
    same_choice_when_shuffled: dict[str, float]
    psnr_change_when_shuffled: float
    mean_noise_estimate: dict[str, float] = field(default_factory=dict)
    # Naming on the whole photos (the prompt alone, as `measr restore` reads a photo).
    whole_photo_accuracy: float | None = None
    whole_photo_accuracy_by_task: dict[str, float] = field(default_factory=dict)
    # Every kind named, on whole photos with one kind of damage and with several.
    every_kind: PresenceNaming | None = None
    # The same on photos from sources the training never saw (`--photos`).
    other_sources: SourceNaming | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def markdown(self) -> str:
        """The report as Markdown tables."""
        lines = [f"# Task prompt report: {self.weights}", ""]
        named = (
            "not named (the prompt names no kinds)"
            if self.kind_accuracy is None
            else (
                f"{self.kind_accuracy:.1%} (kinds), {self.task_accuracy:.1%} (tasks, noise by "
                "its estimated sigma)"
            )
        )
        whole = self.whole_photo_accuracy
        lines += [
            f"- damage named right: {named}",
            f"- on the whole photos: {'-' if whole is None else f'{whole:.1%}'}"
            + "".join(f", {t} {a:.0%}" for t, a in self.whole_photo_accuracy_by_task.items()),
            *([] if self.every_kind is None else [self.every_kind.markdown()]),
            f"- probe (nearest centroid of log atom weights, other photos): "
            f"{self.probe_accuracy:.1%}",
            f"- atom entropy: uniform is {self.uniform_entropy:.3f} nats",
            f"- routing with the prompt shuffled across images: PSNR change "
            f"{self.psnr_change_when_shuffled:+.3f} dB; same expert choice: "
            + ", ".join(f"{k} {v:.1%}" for k, v in self.same_choice_when_shuffled.items()),
            f"- mutual information task; expert choice (bits, H(task) = "
            f"{self.task_entropy_bits:.2f}): "
            + ", ".join(f"{k} {v:.3f}" for k, v in self.mutual_information.items()),
            "",
            "| task | n | named right | atom entropy (nats) | noise estimate (sigma) |",
            "|---|---|---|---|---|",
        ]
        for task in self.tasks:
            right = self.accuracy_by_task.get(task)
            noise = self.mean_noise_estimate.get(task)
            lines.append(
                f"| {task} | {self.count[task]} | "
                f"{'-' if right is None else f'{right:.1%}'} | "
                f"{self.entropy_by_task[task]:.3f} | {'-' if noise is None else f'{noise:.1f}'} |"
            )
        if self.kinds:
            lines += ["", "Confusion (rows: true set; columns: the kind named):", ""]
            lines.append("| set | " + " | ".join(self.kinds) + " |")
            lines.append("|---" * (len(self.kinds) + 1) + "|")
            for task in self.tasks:
                row = self.confusion.get(task, {})
                lines.append(
                    f"| {task} | " + " | ".join(str(row.get(k, 0)) for k in self.kinds) + " |"
                )
        elsewhere = "" if self.other_sources is None else self.other_sources.markdown()
        return "\n".join(lines) + "\n" + elsewhere


def whole_photo_naming(
    model: MEASNet, images: Iterable[LabelledImage], device: torch.device | None = None
) -> tuple[float | None, dict[str, float]]:
    """Share of the images (whole photos, any size) whose kind of damage the prompt alone
    names (the softmax's most probable kind), overall and per task; (None, {}) when the prompt
    names no kinds."""
    if not model.config.degradation_kinds:
        return None, {}
    return softmax_naming(read_whole_photos(model, images, device=device))


def softmax_naming(readings: Sequence[PhotoReading]) -> tuple[float | None, dict[str, float]]:
    """Share of whole-photo readings whose softmax names the label's kind, overall and per
    label; (None, {}) without readings. Photos with several kinds of damage (composites) are
    left out: the softmax names one kind, and `presence_naming` measures them."""
    right: dict[str, list[bool]] = {}
    for reading in readings:
        if len(true_kinds(reading.label)) > 1:
            continue
        named = reading.damage.most_likely
        right.setdefault(reading.label, []).append(named == label_kind(reading.label))
    overall = [r for rights in right.values() for r in rights]
    if not overall:
        return None, {}
    return float(np.mean(overall)), {t: float(np.mean(r)) for t, r in right.items()}


def probe_accuracy(readings: list[ImageReading]) -> float:
    """Nearest-centroid classification of the kind from standardised log atom weights; each
    image against centroids of the images of other photos (no photo is its own reference)."""
    features = np.log(np.stack([r.atom_weights for r in readings]) + 1e-12)
    features = (features - features.mean(0)) / (features.std(0) + 1e-12)
    kinds = np.array([label_kind(r.task) for r in readings])
    names = np.array([r.name for r in readings])
    classes = sorted(set(kinds))
    right = 0
    for i in range(len(readings)):
        others = names != names[i]
        distances = []
        for kind in classes:
            members = others & (kinds == kind)
            if not members.any():
                distances.append(math.inf)
                continue
            distances.append(float(np.linalg.norm(features[i] - features[members].mean(0))))
        right += classes[int(np.argmin(distances))] == kinds[i]
    return right / len(readings)


def summarise(
    readings: list[ImageReading],
    kinds: tuple[str, ...],
    weights: str,
    tasks: list[str] | None = None,
) -> PromptReport:
    """The report of a list of readings (tasks listed in the order given, else first seen)."""
    tasks = tasks or list(dict.fromkeys(r.task for r in readings))
    by_task: dict[str, list[ImageReading]] = {
        t: [r for r in readings if r.task == t] for t in tasks
    }
    kind_right, task_right = [], []
    confusion: dict[str, dict[str, int]] = {}
    accuracy_by_task: dict[str, float] = {}
    for task, group in by_task.items():
        rights = []
        for r in group:
            if r.kind_probabilities is None:
                continue
            named = kinds[int(np.argmax(r.kind_probabilities))]
            confusion.setdefault(task, {}).setdefault(named, 0)
            confusion[task][named] += 1
            rights.append(named == label_kind(task))
            task_right.append(named_task(named, r.noise_sigma) == true_task(task))
        kind_right += rights
        if rights:
            accuracy_by_task[task] = float(np.mean(rights))
    task_ids = {t: i for i, t in enumerate(tasks)}
    information = {}
    for level in readings[0].pixel_counts:
        joint = np.zeros((len(tasks), len(readings[0].pixel_counts[level])))
        for r in readings:
            joint[task_ids[r.task]] += r.pixel_counts[level] / r.pixel_counts[level].sum()
        information[level] = mutual_information(joint)
    for band in readings[0].band_choices:
        experts = 1 + max(int(r.band_choices[band].max()) for r in readings)
        joint = np.zeros((len(tasks), experts))
        for r in readings:
            joint[task_ids[r.task], r.band_choices[band]] += 1
        information[band] = mutual_information(joint)
    counts = np.array([len(by_task[t]) for t in tasks], dtype=float)
    shares = counts / counts.sum()
    noise = {
        t: float(np.mean([r.noise_sigma for r in g if r.noise_sigma is not None]))
        for t, g in by_task.items()
        if any(r.noise_sigma is not None for r in g)
    }
    return PromptReport(
        weights=weights,
        kinds=kinds,
        atoms=len(readings[0].atom_weights),
        tasks=tasks,
        count={t: len(g) for t, g in by_task.items()},
        kind_accuracy=float(np.mean(kind_right)) if kind_right else None,
        task_accuracy=float(np.mean(task_right)) if task_right else None,
        accuracy_by_task=accuracy_by_task,
        confusion=confusion,
        probe_accuracy=probe_accuracy(readings),
        entropy_by_task={
            t: float(np.mean([atom_entropy(r.atom_weights) for r in g])) for t, g in by_task.items()
        },
        uniform_entropy=math.log(len(readings[0].atom_weights)),
        mutual_information=information,
        task_entropy_bits=float(-(shares * np.log2(shares)).sum()),
        same_choice_when_shuffled={
            level: float(np.mean([r.same_choice[level] for r in readings]))
            for level in readings[0].same_choice
        },
        psnr_change_when_shuffled=float(
            np.mean([r.shuffled_psnr - r.psnr for r in readings if math.isfinite(r.psnr)])
        ),
        mean_noise_estimate=noise,
    )


def run_prompt_report(
    model: MEASNet,
    images: Sequence[LabelledImage],
    weights: str,
    progress: Callable[[int, int], None] | None = None,
    batch: int = 8,
) -> PromptReport:
    """Read every image and summarise (images grouped by size so they batch)."""
    by_size: dict[tuple[int, ...], list[LabelledImage]] = {}
    for image in images:
        by_size.setdefault(image.degraded.shape, []).append(image)
    readings: list[ImageReading] = []
    done = 0
    for group in by_size.values():
        for start in range(0, len(group), batch):
            readings += read_images(model, group[start : start + batch], batch)
            done += len(group[start : start + batch])
            if progress is not None:
                progress(done, len(images))
    tasks = list(dict.fromkeys(image.task for image in images))
    return summarise(readings, model.config.degradation_kinds, weights, tasks)


def true_kinds(label: str) -> frozenset[str]:
    """The kinds of damage of a validation label (a task, 'haze-its', or a composite spec such
    as 'lowlight+haze'); empty for clean photos."""
    kinds = spec_kinds(label) if label in COMPOSITES else (label_kind(label),)
    return frozenset(kinds) - {CLEAN}


@dataclass(frozen=True)
class PhotoReading:
    """What the prompt read off one whole labelled photo."""

    label: str
    damage: DamageReading


@torch.no_grad()
def read_whole_photos(
    model: MEASNet,
    images: Iterable[LabelledImage],
    progress: Callable[[int], None] | None = None,
    device: torch.device | None = None,
) -> list[PhotoReading]:
    """The prompt's reading of each image (whole, any size), as `measr restore` reads it;
    `images` may be a generator (whole photos need not all be in memory at once)."""
    model.eval()
    readings = []
    for done, image in enumerate(images, 1):
        x = torch.from_numpy(image.degraded.transpose(2, 0, 1).copy())[None].to(device)
        _, reading = model.task_prompt(x)
        damage = DamageReading.from_prompt(reading)
        if damage is not None:
            readings.append(PhotoReading(image.task, damage))
        if progress is not None:
            progress(done)
    return readings


def named_kinds(damage: DamageReading, threshold: float = PRESENT) -> frozenset[str]:
    """The kinds of damage a reading names: with a presence head every kind from `threshold`;
    else the softmax's words (its first kind when confident, and a second from ALSO)."""
    if damage.presence is not None:
        return frozenset(k for k, p in damage.presence.items() if k != CLEAN and p >= threshold)
    named = {kind for kind, _ in damage.named()}
    if named:
        second, share = damage.ranked()[1]
        if share >= ALSO:
            named.add(second)
    return frozenset(named) - {CLEAN}


@dataclass
class PresenceNaming:
    """How many whole photos the reading names rightly, at one threshold of presence."""

    threshold: float | None  # None: the softmax's words (weights without a presence head)
    single_exact: float  # single damage (or clean): exactly its kind named (nothing, if clean)
    single_exact_by_task: dict[str, float]
    single_first: float  # single damage: the most present kind (or the softmax's) is the true one
    two_all: float  # two kinds of damage: both named
    composite_all: float  # two kinds or more: every one named
    composite_exact: float  # ... and nothing else
    composite_all_by_spec: dict[str, float]
    photos: dict[str, int]  # single, two, composite

    def markdown(self) -> str:
        how = "softmax words" if self.threshold is None else f"presence >= {self.threshold:g}"
        by_spec = ", ".join(f"{s} {a:.0%}" for s, a in self.composite_all_by_spec.items())
        by_task = ", ".join(f"{t} {a:.0%}" for t, a in self.single_exact_by_task.items())
        return "\n".join(
            [
                f"- every kind named ({how}), whole photos:",
                f"  - two kinds of damage: {self.two_all:.1%} of {self.photos['two']} photos "
                f"have both named; every composite: {self.composite_all:.1%} all named, "
                f"{self.composite_exact:.1%} exactly ({self.photos['composite']} photos)",
                f"  - by composite (all named): {by_spec}",
                f"  - one kind or clean: {self.single_exact:.1%} of {self.photos['single']} "
                f"photos named exactly ({by_task}); the first kind right: "
                f"{self.single_first:.1%}",
            ]
        )


def first_kind(damage: DamageReading) -> str:
    """The kind a reading names first: the most present (clean when none reaches PRESENT and
    the clean presence is highest), or the softmax's most probable."""
    if damage.presence is None:
        return damage.most_likely
    return max(damage.presence.items(), key=lambda item: item[1])[0]


def presence_naming(
    readings: Sequence[PhotoReading], threshold: float | None = PRESENT
) -> PresenceNaming:
    """The naming measures of whole-photo readings at `threshold` (None: each reading's own
    rule, the softmax's words for weights without a presence head)."""
    single: dict[str, list[bool]] = {}
    first: list[bool] = []
    every: dict[str, list[bool]] = {}
    exact: list[bool] = []
    two: list[bool] = []
    for reading in readings:
        truth = true_kinds(reading.label)
        named = named_kinds(reading.damage, PRESENT if threshold is None else threshold)
        if len(truth) <= 1:
            single.setdefault(reading.label, []).append(named == truth)
            first.append(first_kind(reading.damage) == (next(iter(truth)) if truth else CLEAN))
            continue
        every.setdefault(reading.label, []).append(truth <= named)
        exact.append(truth == named)
        if len(truth) == 2:
            two.append(truth <= named)
    all_single = [r for rights in single.values() for r in rights]
    all_every = [r for rights in every.values() for r in rights]

    def share(values: list[bool]) -> float:
        return float(np.mean(values)) if values else float("nan")

    return PresenceNaming(
        threshold=threshold if readings and readings[0].damage.presence is not None else None,
        single_exact=share(all_single),
        single_exact_by_task={t: share(r) for t, r in single.items()},
        single_first=share(first),
        two_all=share(two),
        composite_all=share(all_every),
        composite_exact=share(exact),
        composite_all_by_spec={s: share(r) for s, r in every.items()},
        photos={"single": len(all_single), "two": len(two), "composite": len(all_every)},
    )


@dataclass
class SourceNaming:
    """Naming on whole photos from sources the training never saw (`--photos`): the softmax's
    first kind and every kind named, on each single damage and composite of those photos."""

    folders: list[str]
    whole_photo_accuracy: float | None
    whole_photo_accuracy_by_task: dict[str, float]
    every_kind: PresenceNaming

    def markdown(self) -> str:
        return (
            f"\n## Photos from other sources ({', '.join(self.folders)})\n\n"
            f"{softmax_line(self.whole_photo_accuracy, self.whole_photo_accuracy_by_task)}\n"
            f"{self.every_kind.markdown()}\n"
        )


def softmax_line(accuracy: float | None, by_task: dict[str, float]) -> str:
    """A Markdown item: how often the softmax's most probable kind is right, and by task."""
    overall = "-" if accuracy is None else f"{accuracy:.1%}"
    tasks = "".join(f", {t} {a:.0%}" for t, a in by_task.items())
    return f"- the softmax's most probable kind right: {overall}{tasks}"


def name_other_sources(
    model: MEASNet,
    folders: Sequence[str],
    images: Iterable[LabelledImage],
    progress: Callable[[int], None] | None = None,
) -> SourceNaming:
    """The naming of `images`: whole photos of `folders` (sources the training never saw),
    each with single damage or several."""
    readings = read_whole_photos(model, images, progress)
    single = [r for r in readings if len(true_kinds(r.label)) <= 1]
    accuracy, by_task = softmax_naming(single)
    return SourceNaming(list(folders), accuracy, by_task, presence_naming(readings))


@dataclass
class NamingReport:
    """The prompt's naming of whole photos alone (`measr benchmark prompt --naming-only`)."""

    weights: str
    whole_photo_accuracy: float | None
    whole_photo_accuracy_by_task: dict[str, float]
    every_kind: PresenceNaming
    other_sources: SourceNaming | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def markdown(self) -> str:
        elsewhere = "" if self.other_sources is None else self.other_sources.markdown()
        return (
            f"# Naming of whole photos: {self.weights}\n\n"
            f"{softmax_line(self.whole_photo_accuracy, self.whole_photo_accuracy_by_task)}\n"
            f"{self.every_kind.markdown()}\n{elsewhere}"
        )
