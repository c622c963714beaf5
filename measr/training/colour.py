"""Fitting the colour correction by damage (`measr.model.colour`) on degraded training photos.

The rest of the network stays as it is. Its output y and the clean photo c of each sample, and
the kind probabilities p the prompt read, make a linear least-squares problem per channel:

    c - y  ~  sum_k p_k (gain_k y + offset_k)

whose normal equations need only four sums per image and channel (of y, y^2, (c - y) y and
c - y), so the fit is exact, deterministic and costs one forward pass per sample. Minimising the
squared error is what the ship rule's PSNR rewards. A small ridge keeps a kind the samples
hardly show near the identity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from measr.errors import MeasrError
from measr.model import MEASNet
from measr.training.validation import ValidationItem, framed, synthetic_items
from measr.weights import CONFIG_KEY, load_model, read_metadata, save_weights

# The seed of the training samples' degradations: not the validation seed, so that the fit never
# sees a validation image's damage (the photos differ anyway: BSD400, not Kodak24 / McMaster).
COLOUR_FIT_SEED = 7
# Ridge on the normal equations, per pixel of the samples: pulls a kind with few samples towards
# the identity, and is far below what a kind with many samples weighs.
RIDGE = 1e-4


def with_colour_correction(model: MEASNet) -> MEASNet:
    """The same network with a colour correction at the identity (zero gain and offset)."""
    if not model.config.degradation_kinds:
        raise MeasrError(
            "these weights' prompt names no kinds of damage, which the colour correction needs",
            "train the prompt first (measr train --prompt-only --prompt-weight 1)",
        )
    config = dataclasses.replace(model.config, colour_correction=True)
    upgraded = MEASNet(config).to(next(model.parameters()).device)
    missing, unexpected = upgraded.load_state_dict(model.state_dict(), strict=False)
    if any(not name.startswith("colour.") for name in missing) or unexpected:
        raise RuntimeError(f"unexpected tensors adding the colour correction: {missing}")
    if upgraded.colour is not None:  # a correction of `model` itself is fitted again
        with torch.no_grad():
            upgraded.colour.gain.zero_()
            upgraded.colour.offset.zero_()
    return upgraded.eval()


@dataclass
class NormalEquations:
    """The least-squares system of every channel: A^T A (C, 2K, 2K) and A^T r (C, 2K), where
    A's columns are p_k y then p_k, over every pixel seen so far."""

    gram: Tensor
    moment: Tensor
    pixels: int = 0

    @classmethod
    def empty(cls, channels: int, kinds: int) -> NormalEquations:
        return cls(
            torch.zeros(channels, 2 * kinds, 2 * kinds, dtype=torch.float64),
            torch.zeros(channels, 2 * kinds, dtype=torch.float64),
        )

    def add(self, restored: Tensor, clean: Tensor, probabilities: Tensor) -> None:
        """One image: `restored` and `clean` (C, H, W), its kind probabilities (kinds,)."""
        y = restored.double().flatten(1)
        residual = clean.double().flatten(1) - y
        p = probabilities.double()
        count = float(y.shape[1])
        for channel in range(y.shape[0]):
            sums = torch.stack([y[channel].square().sum(), y[channel].sum()])
            block = torch.stack([sums, torch.stack([sums[1], y.new_tensor(count)])])
            self.gram[channel] += torch.kron(block, torch.outer(p, p))
            targets = torch.stack([(residual[channel] * y[channel]).sum(), residual[channel].sum()])
            self.moment[channel] += torch.kron(targets, p)
        self.pixels += y.shape[1]

    def solve(self) -> tuple[Tensor, Tensor]:
        """(gain, offset), each (kinds, C), that minimise the squared error plus the ridge."""
        size = self.gram.shape[-1]
        ridge = RIDGE * self.pixels * torch.eye(size, dtype=torch.float64)
        solution = torch.linalg.solve(self.gram + ridge, self.moment)  # (C, 2K)
        kinds = size // 2
        return solution[:, :kinds].T.float(), solution[:, kinds:].T.float()


def restore_with_reading(model: MEASNet, degraded: Tensor) -> tuple[Tensor, Tensor]:
    """The network's output (C, H, W) and kind probabilities (kinds,) for one (C, H, W) image,
    framed by the engine's mirrored edge margin as `measr restore` runs it (`framed`)."""
    readings: list[Tensor | None] = []

    def restore(x: Tensor) -> Tensor:
        output = model(x)
        readings.append(output.prompt.kind_probabilities)
        return output.image

    image = framed(restore, model.requirements.edge_margin)(degraded[None])
    probabilities = readings[0]
    assert probabilities is not None  # with_colour_correction refuses a prompt without kinds
    return image[0], probabilities[0]


def as_tensor(image_hwc: object) -> Tensor:
    """A float32 (H, W, C) array in [0, 1] as a (C, H, W) tensor."""
    return torch.from_numpy(image_hwc.transpose(2, 0, 1).copy())  # type: ignore[attr-defined]


def colour_fit_samples(
    folder: Path, tasks: list[str], crop: int, photos: int
) -> list[ValidationItem]:
    """Each task's degradation of the centre crops of the first `photos` photos of a folder of
    clean training photos, seeded with COLOUR_FIT_SEED."""
    return synthetic_items(folder, tasks, crop, photos, seed=COLOUR_FIT_SEED)


def fit_colour_correction(
    model: MEASNet,
    samples: Iterable[ValidationItem],
    progress: Callable[[str], None] = lambda _: None,
) -> MEASNet:
    """`model` with its colour correction fitted on `samples` (its other weights unchanged)."""
    fitted = with_colour_correction(model)
    assert fitted.colour is not None
    kinds, channels = fitted.colour.gain.shape
    equations = NormalEquations.empty(channels, kinds)
    with torch.no_grad():
        for sample in samples:
            restored, probabilities = restore_with_reading(fitted, as_tensor(sample.degraded))
            equations.add(restored, as_tensor(sample.clean), probabilities)
            progress(f"{sample.task} {sample.name}")
        gain, offset = equations.solve()
        fitted.colour.gain.copy_(gain)
        fitted.colour.offset.copy_(offset)
    return fitted


def source_model(source: Path) -> tuple[MEASNet, dict[str, str]]:
    """The network of a run folder of `measr train` (its EMA weights) or of a .safetensors
    file, and its provenance for weights.txt."""
    # Imported here: export imports the trainer, which this module's users rarely need.
    from measr.training.export import ema_model, run_provenance
    from measr.training.trainer import TrainConfig

    if source.is_dir():
        model, state = ema_model(source)
        return model, run_provenance(TrainConfig.load(source), state)
    metadata = {k: v for k, v in read_metadata(source).items() if k != CONFIG_KEY}
    return load_model(source), metadata


def fit_weights_file(
    source: Path,
    data: Path,
    out: Path,
    tasks: list[str],
    photos: int,
    crop: int,
    progress: Callable[[str], None] = lambda _: None,
) -> MEASNet:
    """Fit the colour correction of `source`'s network on `photos` photos of `data` degraded
    with each task, and write the network to `out` with its provenance and the fit's."""
    model, provenance = source_model(source)
    samples = colour_fit_samples(data, tasks, crop, photos)
    fitted = fit_colour_correction(model, samples, progress)
    provenance["colour_fit"] = f"{data.name}:{photos}photos:{'+'.join(tasks)}:{crop}px"
    save_weights(fitted, out, metadata=provenance)
    return fitted
