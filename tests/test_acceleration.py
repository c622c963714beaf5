"""The inference forms of the expert layers compute what the paper's modules compute."""

from __future__ import annotations

import copy

import torch

from measr.engine.acceleration import Acceleration, accelerate, prepare_input
from measr.evaluation.metrics import unquantised_psnr
from measr.model import build_model
from measr.model.fast import FusedLowRankMixture


def test_fused_experts_agree_with_the_plain_model_on_a_batch() -> None:
    torch.manual_seed(0)
    plain = build_model("tiny").eval()
    fused = accelerate(copy.deepcopy(plain), Acceleration(fuse_experts=True))
    assert any(isinstance(m, FusedLowRankMixture) for m in fused.modules())
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = plain(x).image
        got = fused(prepare_input(x, Acceleration())).image
    assert unquantised_psnr(got.numpy(), expected.numpy()) >= 50.0


def test_fusing_keeps_the_state_dict() -> None:
    torch.manual_seed(0)
    plain = build_model("tiny").eval()
    fused = accelerate(copy.deepcopy(plain), Acceleration(fuse_experts=True))
    assert plain.state_dict().keys() == fused.state_dict().keys()
