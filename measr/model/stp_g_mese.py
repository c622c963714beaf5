"""STP-G-MESE: single-task-prompt-guided multi-expert selection (MEASNet Sec. III-C).

At encoder levels 1-3, every pixel reads its own features plus the task prompt and picks the
top-k of n MLP experts (noisy top-k gating, Shazeer et al. 2017). A balance loss (CV^2 of
expert importance + CV^2 of expert load) keeps every expert in use.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from measr.model.context import ForwardContext, record_pixel_routing


def coefficient_of_variation_squared(values: Tensor, eps: float = 1e-10) -> Tensor:
    """CV^2 = var / mean^2 of a per-expert quantity (Shazeer et al. 2017, Eq. 6)."""
    values = values.float()
    if values.numel() < 2:
        return values.new_zeros(())
    return values.var() / (values.mean() ** 2 + eps)


@dataclass
class GateDecision:
    """The gate's output for N tokens: top-k experts (N, k), their weights (N, k), and the
    per-expert importance and load (E,) that the balance loss reads."""

    experts: Tensor
    gates: Tensor
    importance: Tensor
    load: Tensor

    def balance_loss(self) -> Tensor:
        """CV^2(importance) + CV^2(load)."""
        return coefficient_of_variation_squared(self.importance) + coefficient_of_variation_squared(
            self.load
        )


class NoisyTopKGate(nn.Module):
    """Gate over concat(pixel features, prompt): logits = [x, p] W_g, plus, in training, Gaussian
    noise scaled by softplus([x, p] W_noise). The concat is never materialised: the prompt's share
    of the product is computed once per image and broadcast to its pixels."""

    def __init__(self, dim: int, experts: int, top_k: int, noise_epsilon: float = 1e-2) -> None:
        super().__init__()
        self.experts, self.top_k, self.noise_epsilon = experts, top_k, noise_epsilon
        self.gate_pixel = nn.Linear(dim, experts, bias=False)
        self.gate_prompt = nn.Linear(dim, experts, bias=False)
        self.noise_pixel = nn.Linear(dim, experts, bias=False)
        self.noise_prompt = nn.Linear(dim, experts, bias=False)
        for layer in (self.noise_pixel, self.noise_prompt):
            nn.init.zeros_(layer.weight)

    def forward(self, tokens: Tensor, prompt: Tensor) -> GateDecision:
        """tokens (B, P, C) pixels of each image, prompt (B, C) -> decision over B*P tokens."""
        clean = self.gate_pixel(tokens) + self.gate_prompt(prompt)[:, None, :]
        clean = clean.reshape(-1, self.experts).float()
        noisy = self.training and self.top_k < self.experts
        if noisy:
            raw_std = self.noise_pixel(tokens) + self.noise_prompt(prompt)[:, None, :]
            noise_std = F.softplus(raw_std.reshape(-1, self.experts).float()) + self.noise_epsilon
            logits = clean + torch.randn_like(clean) * noise_std
        else:
            logits = clean
        top_logits, experts = logits.topk(min(self.top_k + 1, self.experts), dim=1)
        gates = torch.softmax(top_logits[:, : self.top_k], dim=1)
        experts = experts[:, : self.top_k]
        dense = torch.zeros_like(logits).scatter(1, experts, gates)
        if noisy:
            load = self._smooth_load(clean, logits, noise_std, top_logits)
        else:
            load = (dense > 0).float().sum(0)
        return GateDecision(experts, gates, dense.sum(0), load)

    def _smooth_load(
        self, clean: Tensor, noisy: Tensor, noise_std: Tensor, top_noisy: Tensor
    ) -> Tensor:
        """Differentiable expected load (Shazeer et al. 2017, Eq. 8-10): for each token and expert,
        the probability that the expert stays in the top k under a fresh draw of its own noise."""
        threshold_if_in = top_noisy[:, self.top_k : self.top_k + 1]
        threshold_if_out = top_noisy[:, self.top_k - 1 : self.top_k]
        is_in = noisy > threshold_if_in
        normal = torch.distributions.Normal(0.0, 1.0)
        prob_in = normal.cdf((clean - threshold_if_in) / noise_std)
        prob_out = normal.cdf((clean - threshold_if_out) / noise_std)
        return torch.where(is_in, prob_in, prob_out).sum(0)


def expert_mlp(tokens: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    """One expert MLP, dim -> hidden (GELU) -> dim, on tokens (N, dim)."""
    return torch.addmm(b2, F.gelu(torch.addmm(b1, tokens, w1)), w2)


def mix_selected_experts(
    tokens: Tensor, experts: Tensor, gates: Tensor, expert: Callable[[int, Tensor], Tensor]
) -> Tensor:
    """Gate-weighted sum of each token's k selected experts, computing only those: the N*k
    (token, expert) pairs are sorted by expert, each expert runs once on its group
    (`expert(index, tokens)`), and results are added back to their tokens."""
    n, k = experts.shape
    flat_experts = experts.reshape(-1)
    order = torch.argsort(flat_experts, stable=True)
    token_of = torch.arange(n, device=tokens.device).repeat_interleave(k)[order]
    weight_of = gates.reshape(-1)[order]
    counts = torch.bincount(flat_experts).tolist()  # group sizes: a host sync on GPUs
    grouped = tokens[token_of]
    outputs = [
        expert(index, chunk) for index, chunk in enumerate(grouped.split(counts)) if chunk.shape[0]
    ]
    mixed = torch.cat(outputs) * weight_of[:, None].to(grouped.dtype)
    return tokens.new_zeros(n, mixed.shape[1], dtype=mixed.dtype).index_add_(0, token_of, mixed)


class PixelExperts(nn.Module):
    """n MLP experts dim -> hidden -> dim (GELU), stored stacked so that each token runs only its
    k selected experts: tokens are grouped by expert, each group is one matmul, and results are
    scattered back weighted by the gates."""

    def __init__(self, dim: int, hidden: int, experts: int) -> None:
        super().__init__()
        bound1, bound2 = 1 / math.sqrt(dim), 1 / math.sqrt(hidden)
        self.w1 = nn.Parameter(torch.empty(experts, dim, hidden).uniform_(-bound1, bound1))
        self.b1 = nn.Parameter(torch.empty(experts, hidden).uniform_(-bound1, bound1))
        self.w2 = nn.Parameter(torch.empty(experts, hidden, dim).uniform_(-bound2, bound2))
        self.b2 = nn.Parameter(torch.empty(experts, dim).uniform_(-bound2, bound2))

    def expert(self, index: int, tokens: Tensor) -> Tensor:
        """Expert `index` applied to tokens (N, dim)."""
        return expert_mlp(tokens, self.w1[index], self.b1[index], self.w2[index], self.b2[index])

    def forward(self, tokens: Tensor, experts: Tensor, gates: Tensor) -> Tensor:
        """Gate-weighted sum of each token's selected experts: a plain linear combination.

        Fix: the public code combines experts as log(sum(gate * exp(expert))), a trick for
        log-probabilities that distorts image features and overflows above ~88.
        """
        return mix_selected_experts(tokens, experts, gates, self.expert)


class STPGMESE(nn.Module):
    """STP-G-MESE block: y = x + sum_{i in top-k(pixel, prompt)} g_i E_i(x), per pixel."""

    def __init__(
        self, dim: int, prompt_dim: int, experts: int, top_k: int, expansion: float
    ) -> None:
        super().__init__()
        self.prompt_projection = nn.Linear(prompt_dim, dim)
        self.gate = NoisyTopKGate(dim, experts, top_k)
        self.experts = PixelExperts(dim, int(dim * expansion), experts)
        self.context_key = ""

    def forward(
        self, x: Tensor, prompt: Tensor, ctx: ForwardContext | None = None
    ) -> tuple[Tensor, Tensor]:
        """Routed features (B, C, H, W) and this level's balance loss (scalar)."""
        b, c, h, w = x.shape
        tokens = x.permute(0, 2, 3, 1).reshape(b, h * w, c)
        decision = self.gate(tokens, self.prompt_projection(prompt))
        mixed = self.experts(tokens.reshape(-1, c), decision.experts, decision.gates)
        routed = mixed.reshape(b, h, w, c).permute(0, 3, 1, 2).to(x.dtype)
        record_pixel_routing(
            ctx,
            self.context_key,
            decision.experts.reshape(b, h, w, -1).permute(0, 3, 1, 2),
            decision.gates.reshape(b, h, w, -1).permute(0, 3, 1, 2),
        )
        loss = decision.balance_loss() if self.training else x.new_zeros(())
        return x + routed, loss
