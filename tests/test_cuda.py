"""The CUDA path (skipped without a GPU; run on a lent GPU machine by scripts/device/gpu_run.sh)."""

from __future__ import annotations

import pytest
import torch

from measr import build_model
from measr.engine.restorer import Restorer
from measr.evaluation.metrics import psnr
from measr.model import ForwardContext

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_cuda_fp32_matches_cpu(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        cpu = model(x).image
        gpu = model.cuda()(x.cuda()).image.cpu()
    torch.testing.assert_close(gpu, cpu, atol=2e-3, rtol=1e-3)


def test_bf16_autocast_stays_close_to_fp32() -> None:
    torch.manual_seed(0)
    model = build_model("small").eval().cuda()
    x = torch.rand(1, 3, 128, 128, device="cuda")
    with torch.no_grad():
        full = model(x).image.clamp(0, 1)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            half = model(x).image.float().clamp(0, 1)
    as_image = lambda t: t[0].permute(1, 2, 0).cpu().numpy()  # noqa: E731
    assert psnr(as_image(half), as_image(full)) > 35


def test_cuda_training_step_and_routing_record() -> None:
    model = build_model("tiny").train().cuda()
    ctx = ForwardContext(record_routing=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(torch.rand(3, 3, 64, 64, device="cuda"), ctx)
    (out.image.float().mean() + out.balance_loss).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert ctx.routing.pixel["encoder1"].experts.device.type == "cuda"


def test_half_restores_the_shipped_weights_like_fp32() -> None:
    """`--half` (float16) with trained weights on a 512 px image: finite, and within 50 dB of
    the fp32 result (it was NaN while MDTA's map was formed in float16)."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 512, 512).clamp(0.2, 0.8)
    as_image = lambda t: t[0].clamp(0, 1).permute(1, 2, 0).float().cpu().numpy()  # noqa: E731
    outputs = []
    for half in (False, True):
        restorer = Restorer.from_name(device="cuda", half=half)
        with torch.no_grad():
            outputs.append(as_image(restorer.model(x.to("cuda", restorer.dtype)).image))
    assert torch.isfinite(torch.from_numpy(outputs[1])).all()
    assert psnr(outputs[1], outputs[0]) > 50
