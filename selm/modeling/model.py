"""SelM: encoder with early fusion (DAM) -> projection -> BCSM -> CLEVER decoder (docs/model.md,
sections 'Audio tokens' to 'Mask head')."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from selm.config import SelMConfig
from selm.modeling.bcsm import BCSM
from selm.modeling.clever import CleverDecoder
from selm.modeling.encoder import AudioVisualEncoder


@dataclass
class SelMOutput:
    """What one forward pass gives (shapes for B clips of T frames)."""

    logits: torch.Tensor  # (B, T, N, H, W): N = 1 binary, N = num_classes semantic
    hit_maps: list[torch.Tensor]  # 3 x (B, T, K, h, w): CLEVER token assignment, coarse to fine
    dam_maps: list[torch.Tensor] | None  # 4 x (B, T, h_s, w_s): DAM's V2A attention over pixels
    # per level {norm_before, norm_after (B, T, h, w), gate_audio, gate_video (B, T, D) or None};
    # None unless asked for (`return_maps=True`) or when the model has no BCSM
    bcsm: list[dict[str, torch.Tensor | None]] | None


class SelM(nn.Module):
    def __init__(self, config: SelMConfig) -> None:
        super().__init__()
        self.config = config
        d = config.dim
        self.encoder = AudioVisualEncoder(config)
        # f_s = GroupNorm(32, D)(Conv1x1(C_s -> D)(x_s))  (docs/model.md, section 'Projection')
        self.proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, d, kernel_size=1), nn.GroupNorm(32, d))
            for c in self.encoder.channels
        )
        self.bcsm = BCSM(config) if config.bcsm else None
        self.decoder = CleverDecoder(config)

    def forward(
        self,
        frames: torch.Tensor,
        audio: torch.Tensor,
        frame_mask: torch.Tensor | None = None,
        return_maps: bool = False,
    ) -> SelMOutput:
        """frames (B, T, 3, H, W) ImageNet-normalised; audio (B, T, 1, 96, 64) log-mel examples or
        (B, T, 128) VGGish embeddings; frame_mask (B, T) bool, False for padded frames.
        `return_maps`: also compute BCSM's display maps (channel norms before/after selection);
        off for training, on in the Predictor."""
        if frames.dim() != 5 or frames.shape[2] != 3:
            raise ValueError(f"frames must be (B, T, 3, H, W), got {tuple(frames.shape)}")
        b, t, _, h, w = frames.shape
        if audio.shape[:2] != (b, t):
            raise ValueError(
                f"audio must start with (B, T) = {(b, t)} like the frames, got {tuple(audio.shape)}"
            )
        mask = None
        if frame_mask is not None:
            if frame_mask.shape != (b, t):
                raise ValueError(
                    f"frame_mask must be (B, T) = {(b, t)}, got {tuple(frame_mask.shape)}"
                )
            mask = frame_mask.reshape(b * t).bool()

        feats, tokens, dam_maps = self.encoder(frames.flatten(0, 1), audio.flatten(0, 1), mask)
        feats = [proj(x) for proj, x in zip(self.proj, feats)]  # 4 x (BT, D, h_s, w_s)

        bcsm_maps = None
        if self.bcsm is not None:
            clip_feats = [f.unflatten(0, (b, t)) for f in feats]  # (B, T, D, h, w)
            clip_feats, clip_audio, bcsm_maps = self.bcsm(
                clip_feats, tokens.unflatten(0, (b, t)), return_maps, frame_mask
            )
            feats = [f.flatten(0, 1) for f in clip_feats]
            tokens = clip_audio.flatten(0, 1)

        valid = None if mask is None else mask[:, None]  # (BT, 1)
        logits, hit_maps = self.decoder(feats, tokens[:, None], valid)
        if self.config.output_size is None and logits.shape[-2:] != (h, w):
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=True)
        if mask is not None:  # padded frames come out exactly 0, as released (AVSS counts them)
            logits = logits * mask.view(-1, 1, 1, 1).to(logits.dtype)
        return SelMOutput(
            logits=logits.unflatten(0, (b, t)),
            hit_maps=[m.unflatten(0, (b, t)) for m in hit_maps],
            dam_maps=None
            if dam_maps is None or any(m is None for m in dam_maps)
            else [
                m.unflatten(0, (b, t)).unflatten(-1, f.shape[-2:]) for m, f in zip(dam_maps, feats)
            ],
            bcsm=bcsm_maps,
        )
