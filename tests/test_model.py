"""MEASNet: shapes, the fixes to the public code, the routing record, parameter counts."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
import torch.nn.functional as F

from measr import MeasrError, build_model
from measr.model import ForwardContext, MEASNet
from measr.model.backbone import channel_attention_map
from measr.model.fd_mee import FrequencyDecomposition
from measr.model.freq_cross_attention import SoftFrequencySplit
from measr.model.stp_g_mese import NoisyTopKGate, PixelExperts

SLOW = pytest.mark.slow


def images(batch: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny() -> MEASNet:
    torch.manual_seed(0)
    return build_model("tiny").eval()


# `small` and `full` take seconds per forward on a CPU: the slow run checks them.
@pytest.mark.parametrize(
    "name", ["tiny", pytest.param("small", marks=SLOW), pytest.param("full", marks=SLOW)]
)
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("training", [False, True])
def test_output_has_input_shape(name: str, batch: int, training: bool) -> None:
    if name == "full" and batch == 3 and training:
        pytest.skip("covered by batch 1; keeps the suite fast")
    model = build_model(name).train(training)
    x = images(batch)
    with torch.set_grad_enabled(training):
        out = model(x)
    assert out.image.shape == x.shape
    assert torch.isfinite(out.image).all()
    assert out.balance_loss.ndim == 0
    assert (out.balance_loss > 0) == training


def test_parameter_counts() -> None:
    counts = {n: sum(p.numel() for p in build_model(n).parameters()) for n in ("tiny", "full")}
    assert abs(counts["full"] - 31.7e6) / 31.7e6 < 0.05
    assert counts["tiny"] < 0.5e6


def test_requirements_are_stated_and_enforced(tiny: MEASNet) -> None:
    req = tiny.requirements
    assert (req.size_multiple, req.min_size) == (8, 64)
    for bad in [(60, 64), (64, 56), (56, 56)]:
        with pytest.raises(MeasrError, match="multiples of 8"):
            tiny(torch.rand(1, 3, *bad))
    assert tiny(torch.rand(1, 3, 64, 72)).image.shape == (1, 3, 64, 72)


def test_level_2_and_3_routing_reach_the_output(tiny: MEASNet) -> None:
    """Public code: the level-2/3 STP-G-MESE outputs were computed and discarded."""
    x = images(1)
    with torch.no_grad():
        before = tiny(x).image
        for level in (tiny.encoder2_experts, tiny.encoder3_experts):
            saved = level.experts.b2.clone()
            level.experts.b2.add_(0.5)
            assert not torch.allclose(tiny(x).image, before, atol=1e-6)
            level.experts.b2.copy_(saved)


def test_each_image_in_a_batch_is_routed_on_its_own(tiny: MEASNet) -> None:
    """Public code: MEE squeezed the top-k indices, so batches crashed or shared experts."""
    a, b = images(1, seed=1), images(1, seed=2) * 0.2
    with torch.no_grad():
        together = tiny(torch.cat([a, b])).image
        alone = torch.cat([tiny(a).image, tiny(b).image])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("size", [4, 8, 16, 64, 200])
def test_fft_low_band_is_not_empty_on_small_or_large_maps(size: int) -> None:
    """Public code: the mask half-size was (H // 128) * rate, empty under 128 px."""
    torch.manual_seed(0)
    split = SoftFrequencySplit(dim=8, max_cutoff=0.25, softness=0.02)
    x = torch.randn(2, 8, size, size) + 1.0
    low, high = split(x)
    assert low.abs().mean() > 0.1 * x.abs().mean()
    torch.testing.assert_close(low + high, x)
    # A low-pass band is smoother than the input it came from.
    assert low.diff(dim=-1).abs().mean() < x.diff(dim=-1).abs().mean()


def test_fft_cutoff_rates_receive_a_gradient() -> None:
    """Public code: `.int()` on the cut-off cut its gradient."""
    split = SoftFrequencySplit(dim=8, max_cutoff=0.25, softness=0.02)
    low, _ = split(torch.randn(1, 8, 32, 32))
    low.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in split.rates.parameters())


def test_expert_combination_is_linear_in_expert_outputs() -> None:
    """Public code: log(sum(gate * exp(expert))) distorted features and overflowed above ~88."""
    torch.manual_seed(0)
    experts = PixelExperts(dim=4, hidden=8, experts=3)
    tokens = torch.randn(10, 4) * 100.0  # large features, where exp() overflows
    chosen = torch.stack([torch.arange(10) % 3, (torch.arange(10) + 1) % 3], dim=1)
    gates = torch.rand(10, 2)
    mixed = experts(tokens, chosen, gates)
    expected = torch.stack(
        [
            sum(
                gates[t, s] * experts.expert(int(chosen[t, s]), tokens[t : t + 1])[0]
                for s in range(2)
            )
            for t in range(10)
        ]
    )
    assert torch.isfinite(mixed).all()
    torch.testing.assert_close(mixed, expected, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(experts(tokens, chosen, 2 * gates), 2 * mixed, rtol=1e-4, atol=1e-3)


def test_training_with_batch_one_works_and_is_batch_independent() -> None:
    """Public code: FD's BatchNorm on a 1x1 pooled tensor failed for batch 1 in training."""
    torch.manual_seed(0)
    fd = FrequencyDecomposition(channels=16, groups=8, kernel=3).train()
    a, b = torch.randn(1, 16, 8, 8), torch.randn(1, 16, 8, 8) * 3
    low_a, _ = fd(a)
    low_ab, _ = fd(torch.cat([a, b]))
    torch.testing.assert_close(low_ab[:1], low_a)
    model = build_model("tiny").train()
    out = model(images(1))
    (out.image.mean() + out.balance_loss).backward()
    assert torch.isfinite(out.image).all()


def test_every_parameter_trains_except_unchosen_image_experts() -> None:
    """Public code: ~1.5 M parameters never received a gradient."""
    torch.manual_seed(0)
    model = build_model("tiny").train()
    for module in model.modules():
        if hasattr(module, "alpha"):
            torch.nn.init.constant_(module.alpha, 0.1)  # alpha starts at 0, which blocks the branch
    # tiny's channel modulations have one hidden ReLU unit, which the initialisation can leave
    # dead for every input: its two layers then get no gradient by chance, not by design.
    fired: dict[str, bool] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ReLU):
            prefix = name.rsplit(".", 1)[0]

            def record(_m: object, _i: object, out: torch.Tensor, prefix: str = prefix) -> None:
                fired[prefix] = fired.get(prefix, False) or bool((out > 0).any())

            module.register_forward_hook(record)
    ctx = ForwardContext(record_routing=True)
    out = model(images(2), ctx)
    # The noise-level head learns from the prompt's supervision only (measr.training.prompt).
    assert out.prompt.noise_sigma is not None
    (out.image.mean() + out.balance_loss + out.prompt.noise_sigma.mean()).backward()
    chosen = {(n, int(e)) for n, r in ctx.routing.image.items() for e in r.experts.flatten()}
    dead = {prefix for prefix, alive in fired.items() if not alive}
    assert len(dead) <= 1, dead
    for name, param in model.named_parameters():
        got_gradient = param.grad is not None and bool(param.grad.abs().sum() > 0)
        if ".mixture.experts." in name:
            level, band = name.split(".")[:2]
            key = (
                f"{level.removesuffix('_experts')}.{band.removesuffix('_band')}",
                int(name.split(".")[4]),
            )
            assert got_gradient == (key in chosen), name
        elif name.rsplit(".", 2)[0] not in dead:
            assert got_gradient, name


def test_routing_record_shapes(tiny: MEASNet) -> None:
    ctx = ForwardContext(record_routing=True)
    with torch.no_grad():
        tiny(images(2, size=64), ctx)
    record = ctx.routing
    assert record.prompt_weights is not None
    assert record.prompt_weights.shape == (2, tiny.config.prompt_atoms)
    torch.testing.assert_close(record.prompt_weights.sum(1), torch.ones(2))
    assert set(record.pixel) == {"encoder1", "encoder2", "encoder3"}
    for level, routing in record.pixel.items():
        side = 64 // 2 ** (int(level[-1]) - 1)
        assert routing.experts.shape == routing.gates.shape == (2, 2, side, side)
        assert int(routing.experts.max()) < tiny.config.pixel_experts
    names = {f"decoder{lv}.{band}" for lv in (1, 2, 3) for band in ("low", "high")}
    assert set(record.image) == names
    for routing in record.image.values():
        assert routing.experts.shape == routing.weights.shape == (2, 2)


def test_recorded_experts_are_the_ones_that_computed(tiny: MEASNet) -> None:
    x = images(1)
    ctx = ForwardContext(record_routing=True)
    with torch.no_grad():
        before = tiny(x, ctx).image
    mixture = tiny.decoder2_experts.low_band.mixture
    chosen = set(ctx.routing.image["decoder2.low"].experts.flatten().tolist())
    for index, expert in enumerate(mixture.experts):
        saved = expert.up.bias.detach().clone()
        with torch.no_grad():
            expert.up.bias.add_(1.0)
            changed = not torch.allclose(tiny(x).image, before, atol=1e-6)
            expert.up.bias.copy_(saved)
        assert changed == (index in chosen)
    # Pixel level: the tokens each expert computed are exactly the recorded choices.
    computed: list[int] = []
    pixel = tiny.encoder1_experts.experts
    original = pixel.expert
    pixel.expert = lambda i, t: (computed.extend([i] * t.shape[0]), original(i, t))[1]  # type: ignore[method-assign]
    try:
        with torch.no_grad():
            tiny(x, ctx := ForwardContext(record_routing=True))
    finally:
        del pixel.expert
    recorded = torch.bincount(ctx.routing.pixel["encoder1"].experts.long().flatten(), minlength=6)
    assert recorded.tolist() == torch.bincount(torch.tensor(computed), minlength=6).tolist()


def test_routing_record_is_off_by_default(tiny: MEASNet) -> None:
    ctx = ForwardContext()
    with torch.no_grad():
        tiny(images(1), ctx)
    assert ctx.routing.prompt_weights is None and not ctx.routing.pixel and not ctx.routing.image


def test_shared_global_context_reproduces_the_whole_image_pass(tiny: MEASNet) -> None:
    x = images(1, size=128)
    capture = ForwardContext(capture_global=True)
    with torch.no_grad():
        whole = tiny(x, capture).image
        again = tiny(x, ForwardContext(shared=capture.captured)).image
    torch.testing.assert_close(again, whole, atol=1e-5, rtol=1e-5)
    assert any(k.endswith("task_prompt") for k in capture.captured)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_channel_attention_map_is_the_cosine_attention_of_restormer(
    memory_format: torch.memory_format,
) -> None:
    """Restormer Eq. 2 written out: softmax(normalize(Q) normalize(K)^T * t) per head, with an
    all-zero channel (the norm clamp) and either memory format."""
    torch.manual_seed(0)
    q, k = (torch.randn(2, 8, 5, 7).contiguous(memory_format=memory_format) for _ in range(2))
    q[0, 3] = 0
    temperature = torch.rand(2, 1, 1) + 0.5
    qn = F.normalize(q.reshape(2, 2, 4, -1), dim=-1)
    kn = F.normalize(k.reshape(2, 2, 4, -1), dim=-1)
    expected = torch.softmax(qn @ kn.transpose(-2, -1) * temperature, dim=-1)
    actual = channel_attention_map(q, k, 2, temperature)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def test_channel_attention_map_in_float16_does_not_overflow() -> None:
    """`--half` runs the model in float16, whose range (65504) the per-channel products summed
    over a tile's pixels exceed: the map must still match the float32 one."""
    torch.manual_seed(0)
    q, k = (4 + torch.rand(1, 8, 64, 64) for _ in range(2))  # q.k over 4096 px > 65504
    temperature = torch.rand(2, 1, 1) + 0.5
    expected = channel_attention_map(q, k, 2, temperature)
    actual = channel_attention_map(q.half(), k.half(), 2, temperature.half())
    assert actual.dtype == torch.float16
    torch.testing.assert_close(actual.float(), expected, rtol=1e-2, atol=1e-3)


def gate_reading_logits(experts: int, top_k: int) -> NoisyTopKGate:
    """A gate whose logits are the tokens themselves (identity weights, no prompt share)."""
    gate = NoisyTopKGate(dim=experts, experts=experts, top_k=top_k)
    with torch.no_grad():
        gate.gate_pixel.weight.copy_(torch.eye(experts))
        gate.gate_prompt.weight.zero_()
    return gate


def test_the_balance_loss_is_cv_squared_of_importance_plus_load_by_hand() -> None:
    """Four pixels, three experts, top-1, no noise: the picks are experts 0, 0, 1, 2, so
    importance = load = (2, 1, 1); CV^2 = var/mean^2 = (1/3)/(16/9) = 3/16 each."""
    gate = gate_reading_logits(experts=3, top_k=1).eval()
    picks = torch.tensor([0, 0, 1, 2])
    decision = gate(5.0 * F.one_hot(picks, 3).float()[None], torch.zeros(1, 3))
    assert decision.experts.flatten().tolist() == picks.tolist()
    assert decision.balance_loss().item() == pytest.approx(2 * 3 / 16)


def test_the_balance_loss_in_training_reads_the_smooth_load_by_hand(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Training (noisy top-k, Shazeer et al. 2017 Eq. 8-10) with the noise draw set to zero:
    each expert's load is the probability, summed over pixels, that it stays in (or enters)
    the top k under a fresh draw of its own noise, Phi((logit - threshold) / std)."""
    monkeypatch.setattr(torch, "randn_like", torch.zeros_like)
    gate = gate_reading_logits(experts=3, top_k=1).train()
    logits = [[2.0, 0.0, -1.0], [0.0, 1.0, -2.0]]
    decision = gate(torch.tensor([logits]), torch.zeros(1, 3))

    std = math.log(2) + gate.noise_epsilon  # softplus(0): the noise weights start at zero

    def phi(z: float) -> float:
        return 0.5 * (1 + math.erf(z / math.sqrt(2)))

    load = [0.0, 0.0, 0.0]
    for row in logits:
        first, second = sorted(row, reverse=True)[:2]
        for expert, logit in enumerate(row):
            threshold = second if logit == first else first  # in the top 1, or out of it
            load[expert] += phi((logit - threshold) / std)
    importance = [1.0, 1.0, 0.0]  # top-1: the chosen expert's gate is 1

    def cv_squared(values: list[float]) -> float:
        return statistics.variance(values) / statistics.fmean(values) ** 2

    # float32 tails: Phi(-4.3) ~ 1e-5 is 1 - erf(...) computed in float32, good to ~1e-8
    assert decision.load.tolist() == pytest.approx(load, rel=1e-5, abs=1e-7)
    expected = cv_squared(importance) + cv_squared(load)
    assert decision.balance_loss().item() == pytest.approx(expected, rel=1e-5)
