"""The prompt's presence head (`measr.model.task_prompt`): one probability per kind of damage, so
that a photo that is dark *and* noisy is named both.

The head is a linear map of the prompt's pooled features and feeds nothing the network restores
with. So it can be fitted alone, on the features of frozen weights, by logistic regression:
degraded crops of clean training photos (never the validation ones), each labelled with every
kind its damage holds (`measr.degrade.task_kinds`: single kinds, clean photos and every
composite), their pooled features read once, then each kind's logistic regression solved
(L-BFGS, convex). Every restored pixel stays what it was; only the naming changes. `measr
train` also trains the head, by binary cross-entropy, whenever it supervises the prompt
(`PromptTargets.presence_loss`), and adds it to weights and checkpoints that lack it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from measr.degrade import task_kinds
from measr.errors import MeasrError
from measr.model import MEASNet
from measr.training.colour import source_model
from measr.training.data import TrainingSamples
from measr.weights import save_weights

# The seed of the fit's samples: not the validation seed, nor a training run's usual 0.
PRESENCE_FIT_SEED = 11
# The fit's mix: the long run's eight tasks, composites weighted so that about two samples in
# five hold two kinds of damage or more (the head must learn that kinds come together).
FIT_MIX = "eight+composites:composites=3"
# L2 penalty on the standardised weights, per sample: keeps a kind the samples hardly separate
# from growing large weights.
L2 = 1e-3
PRESENCE_PREFIX = "task_prompt.presence."


def with_presence_head(model: MEASNet) -> MEASNet:
    """The same network with a presence head (freshly initialised; `model` itself when it has
    one). Nothing it restores changes: the head feeds nothing else."""
    if model.config.presence_head:
        return model
    if not model.config.degradation_kinds:
        raise MeasrError(
            "these weights' prompt names no kinds of damage, which the presence head needs",
            "train the prompt first (measr train --prompt-only --prompt-weight 1)",
        )
    config = dataclasses.replace(model.config, presence_head=True)
    parameter = next(model.parameters())
    upgraded = MEASNet(config).to(parameter.device)
    missing, unexpected = upgraded.load_state_dict(model.state_dict(), strict=False)
    if any(not name.startswith(PRESENCE_PREFIX) for name in missing) or unexpected:
        raise RuntimeError(f"unexpected tensors adding the presence head: {missing} {unexpected}")
    return upgraded.train(model.training)


def missing_presence(module: nn.Module, state: dict[str, Any]) -> list[str]:
    """The presence head's tensors that `module` has and `state` (a state dict of it, or of
    a model that wraps it) lacks: a checkpoint from before the head."""
    return [n for n in module.state_dict() if "presence." in n and n not in state]


def load_allowing_new_head(module: nn.Module, state: dict[str, Any]) -> bool:
    """Load `state` into `module`, whose presence head `state` may lack (it then stays as
    initialised); True when it did."""
    missing, unexpected = module.load_state_dict(state, strict=False)
    if any("presence." not in name for name in missing) or unexpected:
        raise RuntimeError(f"the checkpoint does not match the network: {missing} {unexpected}")
    return bool(missing)


def with_new_group(saved: dict[str, Any], optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """An optimiser state saved before the presence head, with the head's group (the
    optimiser's last) added, so that `optimizer.load_state_dict` takes it; the head starts
    without moments."""
    groups = optimizer.state_dict()["param_groups"]
    taken = sum(len(group["params"]) for group in saved["param_groups"])
    new = dict(groups[-1])
    new["params"] = list(range(taken, taken + len(groups[-1]["params"])))
    return {**saved, "param_groups": [*saved["param_groups"], new]}


def presence_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The presence head's parameters (its own group in the trainer's optimiser)."""
    return [p for name, p in model.named_parameters() if PRESENCE_PREFIX in name]


def presence_samples(
    data: list[Path], count: int, patch: int, real: list[tuple[str, Path]] | None = None
) -> tuple[TrainingSamples, list[str]]:
    """The fit's samples (`FIT_MIX`, seeded with PRESENCE_FIT_SEED; a share of real blur or
    haze from `real`, as the long run trains) and the mix's task names; index i < count."""
    samples = TrainingSamples(data, FIT_MIX, patch, PRESENCE_FIT_SEED, real=real, real_share=0.3)
    return samples, samples.tasks


@torch.no_grad()
def read_features(
    model: MEASNet,
    samples: TrainingSamples,
    count: int,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> tuple[Tensor, Tensor]:
    """(pooled prompt features (count, F), task index (count,)) of the first `count` samples,
    each read whole as `measr restore` reads a photo."""
    model.eval()
    features, tasks = [], []
    for index in range(count):
        degraded, _, task = samples[index]
        features.append(model.task_prompt.pooled_features(degraded[None].float())[0].double())
        tasks.append(task)
        progress(index + 1, count)
    return torch.stack(features), torch.tensor(tasks)


def present_targets(tasks: list[str], kinds: tuple[str, ...]) -> Tensor:
    """(tasks, kinds) 1 where a task holds a kind of damage ('clean' for a clean photo)."""
    return torch.tensor([[float(kind in task_kinds(task)) for kind in kinds] for task in tasks])


def fit_logistic(features: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
    """(weight (K, F), bias (K,)) of each kind's logistic regression on raw features (N, F)
    and 0/1 targets (N, K). Positives and negatives of each kind weigh alike (composites are
    rarer than single damage); the features are standardised for the solver and the solution
    mapped back, so the head reads the raw pooled features."""
    x = features.double()
    mean, scale = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / scale
    y = present.double()
    positives = y.sum(0).clamp_min(1)
    negatives = (1 - y).sum(0).clamp_min(1)
    weights = y / positives + (1 - y) / negatives  # each kind's two classes sum to 1 each
    w = torch.zeros(y.shape[1], z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(y.shape[1], dtype=torch.float64, requires_grad=True)
    solver = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def objective() -> Tensor:
        solver.zero_grad()
        logits = z @ w.T + b
        bce = nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
        loss = (bce * weights).sum() / 2 + L2 * w.square().sum()
        loss.backward()
        return loss

    solver.step(objective)
    weight = (w / scale).detach()
    bias = (b - (w * mean / scale).sum(1)).detach()
    return weight.float(), bias.float()


def fit_presence_head(model: MEASNet, features: Tensor, present: Tensor) -> MEASNet:
    """`model` with a presence head fitted on pooled features (N, F) and their kinds (N, K);
    every other weight unchanged."""
    fitted = with_presence_head(model)
    head = fitted.task_prompt.presence
    assert head is not None
    weight, bias = fit_logistic(features, present)
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    return fitted.eval()


def fit_weights_file(
    source: Path,
    data: list[Path],
    out: Path,
    count: int,
    patch: int,
    real: list[tuple[str, Path]] | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> MEASNet:
    """Fit the presence head of `source`'s network (a run folder or .safetensors) on `count`
    degraded crops of the clean photos in `data`, and write it to `out` with its provenance and
    the fit's."""
    model, provenance = source_model(source)
    samples, tasks = presence_samples(data, count, patch, real)
    features, task = read_features(model, samples, count, progress)
    present = present_targets(tasks, model.config.degradation_kinds)[task]
    fitted = fit_presence_head(model, features, present)
    folders = "+".join(f.parent.name if f.name == "clean" else f.name for f in data)
    provenance["presence_fit"] = f"{folders}:{count}crops:{FIT_MIX}:{patch}px"
    save_weights(fitted, out, metadata=provenance)
    return fitted
