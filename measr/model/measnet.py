"""MEASNet (Yu, Zhou, Li, Zhu: 'Multi-Expert Adaptive Selection: Task-Balancing for All-in-One
Image Restoration', Fig. 2): a Restormer U-Net whose encoder routes pixels through prompt-guided
experts (STP-G-MESE), whose decoder routes frequency bands through low-rank experts (FD-MEE),
and which re-injects the input image with frequency-aware cross-attention."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from measr.errors import MeasrError
from measr.model.backbone import Downsample, TransformerStage, Upsample
from measr.model.colour import ColourCorrection
from measr.model.configs import ModelConfig
from measr.model.context import ForwardContext
from measr.model.fd_mee import FDMEE, MixtureOfLowRankExperts
from measr.model.freq_cross_attention import FrequencyCrossAttention
from measr.model.stp_g_mese import STPGMESE
from measr.model.task_prompt import PromptReading, TaskPrompt


@dataclass(frozen=True)
class InputRequirements:
    """What the network needs from its input, so callers pad instead of guessing."""

    channels: int
    size_multiple: int
    min_size: int
    # Global operations (prompt, pooling, routers, channel attention, FFT) see the whole input:
    # tiles agree only when they share a global context captured on the whole image.
    tiles_need_shared_context: bool = True
    supports_half: bool = True
    # Pixels of mirrored image the network needs beyond each edge of a photo. Its 3x3
    # convolutions pad with zeros, and weights trained on crops restore the outer rows worse
    # (on flat colour, a 1-2 px coloured line, 4-5 of 255 off; outer-row error 20-60 % above
    # the interior's on the validation crops). The engine mirrors this margin around every
    # photo and crops it off, so edges are restored like the interior. A multiple of 8 keeps
    # the down-sampling grid where it was.
    edge_margin: int = 16

    @classmethod
    def of(cls, config: ModelConfig) -> InputRequirements:
        """What the network of `config` needs, known without building it."""
        return cls(config.in_channels, config.size_multiple, config.min_size)

    @property
    def tile_alignment(self) -> int:
        """Tile starts are multiples of this: the network's coarsest pooled grid (the FD-MEE
        context calibration at level 3) has cells of `min_size` input pixels, the quantity that
        sets the minimum input size. Aligned tiles pool the same cells as the whole image does."""
        return self.min_size


@dataclass
class ModelOutput:
    """The restored image (B, C, H, W), what the task prompt read off each input, and, in
    training, the STP-G-MESE balance loss."""

    image: Tensor
    balance_loss: Tensor
    prompt: PromptReading


class MEASNet(nn.Module):
    """The network. `forward(x)` expects (B, C, H, W) in [0, 1] with H and W multiples of
    `requirements.size_multiple` and at least `requirements.min_size` (pad first; see
    `measr.engine`)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = c = config
        d = c.dim
        widths = (d, 2 * d, 4 * d, 8 * d)
        self.requirements = InputRequirements.of(c)

        self.task_prompt = TaskPrompt(
            c.in_channels,
            c.prompt_atoms,
            c.prompt_dim,
            c.prompt_hidden,
            c.degradation_kinds,
            c.prompt_pooling,
            c.prompt_fine_layer,
            c.prompt_context,
            c.presence_head,
            c.presence_hidden,
        )
        self.patch_embed = nn.Conv2d(c.in_channels, d, 3, padding=1, bias=c.bias)

        def stage(count: int, width: int, heads: int) -> TransformerStage:
            return TransformerStage(count, width, heads, c.ffn_expansion, c.bias)

        def pixel_experts(width: int) -> STPGMESE:
            return STPGMESE(
                width, c.prompt_dim, c.pixel_experts, c.pixel_top_k, c.pixel_expert_expansion
            )

        def band_experts(width: int) -> FDMEE:
            return FDMEE(
                width,
                c.mee_ranks,
                c.mee_top_k,
                c.fd_groups,
                c.fd_kernel,
                c.mee_striped_kernel,
                c.mee_calibration_steps,
            )

        def reinjection(width: int) -> FrequencyCrossAttention:
            return FrequencyCrossAttention(
                width,
                c.cross_attention_heads,
                c.bias,
                c.in_channels,
                c.max_cutoff,
                c.cutoff_softness,
            )

        # Encoder: STP-G-MESE routes each level's input before its transformer blocks.
        self.encoder1_experts = pixel_experts(widths[0])
        self.encoder1 = stage(c.encoder_blocks[0], widths[0], c.heads[0])
        self.down1 = Downsample(widths[0])
        self.encoder2_experts = pixel_experts(widths[1])
        self.encoder2 = stage(c.encoder_blocks[1], widths[1], c.heads[1])
        self.down2 = Downsample(widths[1])
        self.encoder3_experts = pixel_experts(widths[2])
        self.encoder3 = stage(c.encoder_blocks[2], widths[2], c.heads[2])
        self.down3 = Downsample(widths[2])
        self.latent = stage(c.encoder_blocks[3], widths[3], c.heads[3])
        self.latent_reinjection = reinjection(widths[3])

        # Decoder: skip fusion, FD-MEE, transformer blocks, image re-injection.
        self.up3 = Upsample(widths[3])
        self.reduce3 = nn.Conv2d(widths[3], widths[2], 1, bias=c.bias)
        self.decoder3_experts = band_experts(widths[2])
        self.decoder3 = stage(c.decoder_blocks[0], widths[2], c.heads[2])
        self.decoder3_reinjection = reinjection(widths[2])
        self.up2 = Upsample(widths[2])
        self.reduce2 = nn.Conv2d(widths[2], widths[1], 1, bias=c.bias)
        self.decoder2_experts = band_experts(widths[1])
        self.decoder2 = stage(c.decoder_blocks[1], widths[1], c.heads[1])
        self.decoder2_reinjection = reinjection(widths[1])
        self.up1 = Upsample(widths[1])
        # Level 1 keeps the concatenated 2*dim channels (no reduction), as in Restormer.
        self.decoder1_experts = band_experts(widths[1])
        self.decoder1 = stage(c.decoder_blocks[2], widths[1], c.heads[0])
        self.refinement = stage(c.refinement_blocks, widths[1], c.heads[0])
        self.output = nn.Conv2d(widths[1], c.in_channels, 3, padding=1, bias=c.bias)
        # measr's addition: a colour correction chosen by the damage the prompt names.
        self.colour = (
            ColourCorrection(len(c.degradation_kinds), c.in_channels)
            if c.colour_correction
            else None
        )

        self._name_global_operations()

    def _name_global_operations(self) -> None:
        """Give every module with a global statistic its key in the shared context, and every
        router the name it has in the routing record ('encoder1', 'decoder3.low', ...)."""
        for name, module in self.named_modules():
            if hasattr(module, "context_key"):
                module.context_key = name
            if isinstance(module, STPGMESE):
                module.context_key = name.removesuffix("_experts")
            if isinstance(module, MixtureOfLowRankExperts):
                level, band = name.split(".")[:2]
                module.routing_name = (
                    f"{level.removesuffix('_experts')}.{band.removesuffix('_band')}"
                )

    def set_activation_checkpointing(self, enabled: bool) -> None:
        """Recompute transformer blocks in backward instead of storing their activations."""
        for module in self.modules():
            if isinstance(module, TransformerStage):
                module.checkpointing = enabled

    def check_input(self, image: Tensor) -> None:
        """Refuse inputs the network cannot take, saying what to do (it never crops)."""
        req = self.requirements
        h, w = image.shape[-2:]
        if image.ndim != 4 or image.shape[1] != req.channels:
            raise MeasrError(
                f"MEASNet expects (B, {req.channels}, H, W) input, got {tuple(image.shape)}"
            )
        if h % req.size_multiple or w % req.size_multiple or min(h, w) < req.min_size:
            raise MeasrError(
                f"MEASNet needs sides that are multiples of {req.size_multiple} and at least "
                f"{req.min_size} px, got {h}x{w}",
                "pad the input first (measr.engine.pad_to_requirements does it)",
            )

    def forward(self, image: Tensor, ctx: ForwardContext | None = None) -> ModelOutput:
        self.check_input(image)
        prompt, reading = self.task_prompt(image, ctx)
        if ctx is not None and ctx.record_routing:
            ctx.routing.prompt_weights = reading.atom_weights.detach()

        # Fix: the public code computes the level-2 and level-3 STP-G-MESE outputs and then feeds
        # the un-routed input to the encoder, so only level 1 was routed. Here every level is.
        x, loss1 = self.encoder1_experts(self.patch_embed(image), prompt, ctx)
        skip1 = self.encoder1(x, ctx)
        x, loss2 = self.encoder2_experts(self.down1(skip1), prompt, ctx)
        skip2 = self.encoder2(x, ctx)
        x, loss3 = self.encoder3_experts(self.down2(skip2), prompt, ctx)
        skip3 = self.encoder3(x, ctx)
        x = self.latent(self.down3(skip3), ctx)
        x = self.latent_reinjection(image, x, ctx)

        x = self.reduce3(torch.cat([self.up3(x), skip3], dim=1))
        x = self.decoder3(self.decoder3_experts(x, ctx), ctx)
        x = self.decoder3_reinjection(image, x, ctx)
        x = self.reduce2(torch.cat([self.up2(x), skip2], dim=1))
        x = self.decoder2(self.decoder2_experts(x, ctx), ctx)
        x = self.decoder2_reinjection(image, x, ctx)
        x = torch.cat([self.up1(x), skip1], dim=1)
        x = self.decoder1(self.decoder1_experts(x, ctx), ctx)
        x = self.refinement(x, ctx)
        restored = self.output(x) + image
        if self.colour is not None:
            probabilities = reading.kind_probabilities
            assert probabilities is not None  # the config refuses colour without kinds
            restored = self.colour(restored, probabilities)
        return ModelOutput(restored, loss1 + loss2 + loss3, reading)
