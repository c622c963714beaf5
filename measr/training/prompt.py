"""Supervising the task prompt: every synthetic sample's damage is known, so the prompt is
trained to name it (cross-entropy on the kinds its atoms are divided among) and to estimate the
Gaussian noise level (smooth L1), beside the restoration loss; with a presence head, each
kind's presence is trained by binary cross-entropy on the set of kinds the sample's spec holds
(composites name several, `measr.degrade.task_kinds`). Inference stays blind.

A composite's softmax target shares its probability equally among the kinds it holds (haze and
noise: one half each). The routers read the prompt the softmax weights; a composite left out of
the cross-entropy was read as its most visible kind, so that σ 15 noise with haze and σ 15 noise
alone got one prompt, and the network learned to decide from the content whether to dehaze
(docs/training-log.md, the long run's ninth session).

Weights trained without this (measr's first ones, whose prompt collapsed to a constant) are
upgraded by `supervised_prompt`: the same network with kinds of damage configured and a fresh
noise-level head. Their routers learned to read a constant prompt, so their prompt weights
only carry a bias; the upgrade moves that bias into each level's prompt projection and starts
the projection's weights at zero. The upgraded network restores exactly as before, and the
routers then learn what the (now informative) prompt means from the restoration loss.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from measr.degrade import task_kinds, task_noise_sigma
from measr.model import MEASNet
from measr.model.configs import DEGRADATION_KINDS
from measr.model.stp_g_mese import STPGMESE
from measr.model.task_prompt import NOISE_SCALE, PromptReading

__all__ = [
    "PromptTargets",
    "prompt_parameters",
    "router_prompt_parameters",
    "supervised_prompt",
]


@dataclass(frozen=True)
class PromptTargets:
    """What the prompt should read off a sample of each task of a mix (indexed like the mix)."""

    shares: Tensor  # (tasks, kinds) the softmax's target: the kinds a task holds, in equal shares
    sigmas: Tensor  # (tasks,) Gaussian noise sigma, NaN where it is not one known value
    present: Tensor  # (tasks, kinds) 1 where the task holds the kind, else 0

    @classmethod
    def for_tasks(cls, tasks: list[str], kinds: tuple[str, ...]) -> PromptTargets:
        sigmas = [task_noise_sigma(t) for t in tasks]
        present = torch.tensor([[float(kind in task_kinds(t)) for kind in kinds] for t in tasks])
        return cls(
            present / present.sum(dim=1, keepdim=True).clamp(min=1),
            torch.tensor([float("nan") if s is None else s for s in sigmas]),
            present,
        )

    def presence_loss(self, reading: PromptReading, task: Tensor) -> Tensor:
        """Binary cross-entropy of each kind's presence (0 without a presence head)."""
        logits = reading.presence_logits
        if logits is None:
            return reading.atom_weights.new_zeros(())
        target = self.present.to(logits.device)[task.to(logits.device)]
        return F.binary_cross_entropy_with_logits(logits, target)

    def loss(self, reading: PromptReading, task: Tensor) -> tuple[Tensor, Tensor]:
        """(cross-entropy of the kinds, smooth L1 of sigma / NOISE_SCALE) for a batch whose
        samples came from tasks `task` (B,)."""
        if reading.kind_log_probabilities is None:
            raise ValueError("this network's prompt names no kinds of damage")
        logp = reading.kind_log_probabilities
        shares = self.shares.to(logp.device)[task.to(logp.device)]
        cross_entropy = -(shares * logp).sum(dim=1).mean()
        if reading.noise_sigma is None:
            return cross_entropy, logp.new_zeros(())
        # The mean over the samples whose sigma is known, by a mask rather than by indexing:
        # the host never waits to learn which they are, and every estimate takes part in the
        # loss (DDP waits for a gradient of the noise head on every rank, every step).
        sigma = self.sigmas.to(logp.device)[task.to(logp.device)]
        known = ~torch.isnan(sigma)
        target = torch.where(known, sigma, 0.0) / NOISE_SCALE
        error = F.smooth_l1_loss(
            reading.noise_sigma / NOISE_SCALE, target, beta=0.1, reduction="none"
        )
        return cross_entropy, (error * known).sum() / known.sum().clamp(min=1)


def supervised_prompt(model: MEASNet, images: Tensor) -> MEASNet:
    """The same network with its prompt naming `DEGRADATION_KINDS` and pooling the mean and
    standard deviation of its features (`model` itself when it already names kinds). The
    logits start from the old ones (zero weight on the new standard deviations), and each
    router's prompt projection is re-anchored on the mean prompt of `images` (B, C, H, W), so
    that the upgraded network restores them exactly as `model` did."""
    if model.config.degradation_kinds:
        return model
    config = dataclasses.replace(
        model.config, degradation_kinds=DEGRADATION_KINDS, prompt_pooling="mean+std"
    )
    upgraded = MEASNet(config).to(next(model.parameters()).device)
    state = model.state_dict()
    old_logits = state["task_prompt.to_logits.weight"]
    widened = torch.zeros_like(upgraded.task_prompt.to_logits.weight)
    widened[:, : old_logits.shape[1]] = old_logits
    state["task_prompt.to_logits.weight"] = widened
    missing, unexpected = upgraded.load_state_dict(state, strict=False)
    if any(not name.startswith("task_prompt.noise_level.") for name in missing) or unexpected:
        raise RuntimeError(f"unexpected tensors upgrading the prompt: {missing} {unexpected}")
    with torch.no_grad():
        prompt, _ = model.task_prompt(images)
        mean_prompt = prompt.mean(dim=0)
        for router in (m for m in upgraded.modules() if isinstance(m, STPGMESE)):
            anchor = router.prompt_projection(mean_prompt)
            router.prompt_projection.weight.zero_()
            router.prompt_projection.bias.copy_(anchor)
    return upgraded


def prompt_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of the prompt net itself (what `--prompt-only` trains)."""
    return [p for name, p in model.named_parameters() if "task_prompt." in name]


def router_prompt_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters through which the routers read the prompt: each STP-G-MESE level's
    prompt projection and the prompt's share of its gate and gate noise (trained at a higher
    learning rate when asked: upgraded weights start them at zero)."""
    keys = ("prompt_projection.", "gate.gate_prompt.", "gate.noise_prompt.")
    return [p for name, p in model.named_parameters() if any(k in name for k in keys)]
