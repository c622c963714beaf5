"""The prompt's presence head (`measr.model.task_prompt`): one probability per kind of damage, so
that a photo that is dark *and* noisy is named both.

The head is a small map of the prompt's pooled features and feeds nothing the network restores
with. So it can be fitted alone, on the features of frozen weights: degraded crops of clean
training photos (never the validation ones), each labelled with every kind its damage holds
(`measr.degrade.task_kinds`: single kinds, clean photos and every composite), their pooled
features read once, then the head fitted to them (L-BFGS; for a linear head that is each
kind's logistic regression). Every restored pixel stays what it was; only the naming changes.
`measr train` also trains the head, by binary cross-entropy, whenever it supervises the prompt
(`PromptTargets.presence_loss`), and adds it to weights and checkpoints that lack it.
"""

from __future__ import annotations

import copy
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
# Hidden units of the heads measr fits and trains (0 would be linear): on the default weights'
# frozen features one hidden layer names more photos rightly than a linear map (docs/prompt.md).
PRESENCE_HIDDEN = 32
# L2 penalty on the standardised weights: keeps a kind the samples hardly separate from
# growing large weights.
L2 = 1e-3
FIT_ITERATIONS = 1000
PRESENCE_PREFIX = "task_prompt.presence."


def with_presence_head(model: MEASNet, hidden: int = PRESENCE_HIDDEN) -> MEASNet:
    """The same network with a presence head of `hidden` units (0: linear; freshly
    initialised), or `model` itself when it has one of that size. Nothing it restores changes:
    the head feeds nothing else."""
    if model.config.presence_head and model.config.presence_hidden == hidden:
        return model
    if not model.config.degradation_kinds:
        raise MeasrError(
            "these weights' prompt names no kinds of damage, which the presence head needs",
            "train the prompt first (measr train --prompt-only --prompt-weight 1)",
        )
    config = dataclasses.replace(model.config, presence_head=True, presence_hidden=hidden)
    parameter = next(model.parameters())
    upgraded = MEASNet(config).to(parameter.device)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(PRESENCE_PREFIX)}
    missing, unexpected = upgraded.load_state_dict(state, strict=False)
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


def fit_head(head: nn.Module, features: Tensor, present: Tensor) -> None:
    """Fit `head` (a Linear, or Linear-GELU-Linear) in place to features (N, F) and 0/1
    targets (N, K), from a seeded start: weighted binary cross-entropy in which positives and
    negatives of each kind weigh alike (composites are rarer than single damage), plus an L2
    penalty, by full-batch L-BFGS (for a Linear head: logistic regression, convex). The
    features are standardised for the solver and the standardisation folded into the first
    layer after, so the head reads the raw pooled features."""
    x = features.double()
    mean, scale = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / scale
    y = present.double()
    weights = y / y.sum(0).clamp_min(1) + (1 - y) / (1 - y).sum(0).clamp_min(1)
    work = copy.deepcopy(head).double()
    layers = [m for m in work.modules() if isinstance(m, nn.Linear)]
    with torch.random.fork_rng():
        torch.manual_seed(PRESENCE_FIT_SEED)
        for layer in layers:
            layer.reset_parameters()
    solver = torch.optim.LBFGS(
        list(work.parameters()), max_iter=FIT_ITERATIONS, line_search_fn="strong_wolfe"
    )

    def objective() -> Tensor:
        solver.zero_grad()
        bce = nn.functional.binary_cross_entropy_with_logits(work(z), y, reduction="none")
        penalty = sum(layer.weight.square().sum() for layer in layers)
        loss = (bce * weights).sum() / 2 + L2 * penalty
        loss.backward()
        return loss

    solver.step(objective)
    first = layers[0]
    with torch.no_grad():
        assert first.bias is not None
        first.bias.sub_((first.weight * mean / scale).sum(1))
        first.weight.div_(scale)
    head.load_state_dict(work.float().state_dict())


def fit_presence_head(
    model: MEASNet, features: Tensor, present: Tensor, hidden: int = PRESENCE_HIDDEN
) -> MEASNet:
    """`model` with a presence head (`hidden` units; 0: linear) fitted on pooled features
    (N, F) and their kinds (N, K); every other weight unchanged."""
    fitted = with_presence_head(model, hidden)
    head = fitted.task_prompt.presence
    assert head is not None
    fit_head(head, features, present)
    return fitted.eval()


def fit_weights_file(
    source: Path,
    data: list[Path],
    out: Path,
    count: int,
    patch: int,
    real: list[tuple[str, Path]] | None = None,
    hidden: int = PRESENCE_HIDDEN,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> MEASNet:
    """Fit the presence head of `source`'s network (a run folder or .safetensors) on `count`
    degraded crops of the clean photos in `data`, and write it to `out` with its provenance and
    the fit's."""
    model, provenance = source_model(source)
    samples, tasks = presence_samples(data, count, patch, real)
    features, task = read_features(model, samples, count, progress)
    present = present_targets(tasks, model.config.degradation_kinds)[task]
    fitted = fit_presence_head(model, features, present, hidden)
    folders = "+".join(f.parent.name if f.name == "clean" else f.name for f in data)
    provenance["presence_fit"] = f"{folders}:{count}crops:{FIT_MIX}:{patch}px:hidden{hidden}"
    save_weights(fitted, out, metadata=provenance)
    return fitted
