"""Row strips (`measr.engine.row_strips`): the transformer block computed a few rows at a time
gives the whole-map block's outputs and attention maps."""

from __future__ import annotations

import copy

import pytest
import torch

from measr.engine.acceleration import default_acceleration
from measr.engine.row_strips import (
    MIN_STRIP_ROWS,
    StripedTransformerBlock,
    strip_rows,
    stripe_blocks,
)
from measr.evaluation.metrics import unquantised_psnr
from measr.model import build_model
from measr.model.backbone import TransformerBlock


def random_block(dim: int = 16, heads: int = 2) -> TransformerBlock:
    torch.manual_seed(0)
    block = TransformerBlock(dim, heads, 2.66, bias=True).eval()
    with torch.no_grad():  # trained-looking LayerNorms, biases and temperatures, not the init
        for parameter in block.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return block


@pytest.mark.parametrize("height", [8, 9, 23, 37])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_striped_block_agrees_with_the_block(height: int, layout: torch.memory_format) -> None:
    """Heights of one strip, one row over, and several strips with a short last one."""
    block = random_block()
    striped = StripedTransformerBlock(copy.deepcopy(block), budget=1)  # MIN_STRIP_ROWS rows
    x = torch.randn(2, 16, height, 21, generator=torch.Generator().manual_seed(1))
    x = x.contiguous(memory_format=layout)
    with torch.inference_mode():
        expected, expected_map = block.branches(x)
        got, got_map = striped.branches(x)
    torch.testing.assert_close(got_map, expected_map, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_striped_block_uses_a_given_attention_map() -> None:
    """Tiles sharing the whole image's context: the given map is used (only v is computed)."""
    block = random_block()
    striped = StripedTransformerBlock(copy.deepcopy(block), budget=1)
    whole = torch.randn(1, 16, 40, 40, generator=torch.Generator().manual_seed(2))
    tile = whole[:, :, :27, :19]
    with torch.inference_mode():
        _, shared = block.branches(whole)
        expected, _ = block.branches(tile, shared)
        got, used = striped.branches(tile, shared)
    assert torch.equal(used, shared)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_strip_rows_follow_width_and_channels() -> None:
    assert strip_rows(256, 510, budget=8 * 2**20) == 16
    assert strip_rows(512, 510, budget=8 * 2**20) == 8
    assert strip_rows(4096, 510, budget=8 * 2**20) == MIN_STRIP_ROWS


@pytest.mark.slow  # strips of the fewest rows: many small steps (the default run has
# test_the_gpu_form_of_the_network_agrees_with_the_plain_one, strips of the default budget)
def test_striped_network_agrees_and_keeps_the_state_dict() -> None:
    torch.manual_seed(0)
    plain = build_model("tiny").eval()
    striped = stripe_blocks(copy.deepcopy(plain), budget=1)
    assert any(isinstance(m, StripedTransformerBlock) for m in striped.modules())
    assert plain.state_dict().keys() == striped.state_dict().keys()
    x = torch.rand(2, 3, 72, 64, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        assert unquantised_psnr(striped(x).image.numpy(), plain(x).image.numpy()) >= 50.0


def test_strips_are_a_cpu_lever_that_the_environment_can_turn_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.delenv("MEASR_ROW_STRIPS", raising=False)
    assert default_acceleration(cpu).row_strips
    assert "strips" in default_acceleration(cpu).describe()
    assert not default_acceleration(cuda).row_strips
    monkeypatch.setenv("MEASR_ROW_STRIPS", "0")
    assert not default_acceleration(cpu).row_strips
