"""Visual encoder with early fusion: timm stages run one by one, a DAM after each (docs/model.md,
sections 'Audio tokens' and 'Encoder and DAM').

`Backbone` runs a timm model stage by stage (`stem`, then `stage(s, x)` for s = 0..3, NCHW maps at
strides 4/8/16/32). `AudioVisualEncoder` turns the audio into one token per frame
(`LayerNorm(Linear(128 -> D)(vggish(x)))`) and fuses it into every stage: the fused map of stage
s is the input of stage s+1, and the token is carried from DAM to DAM.
"""

from __future__ import annotations

import torch
from torch import nn

from selm.modeling.dam import build_fusion
from selm.modeling.vggish import EMBEDDING_DIM, VGGish

_RESNET_STEM = ("conv1", "bn1", "act1", "maxpool")
_RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")
_STAGES = tuple(f"stages.{i}" for i in range(4))
LOG_MEL_SHAPE = (1, 96, 64)


def timm_model(name: str) -> nn.Module:
    """timm model `name` without its classifier (num_classes=0), randomly initialised: weights
    are the builder's job (`selm.build`), so constructing never reads a file or the network."""
    import timm

    if not timm.is_model(name.split(".")[0]):
        close = timm.list_models(f"*{name.split('.')[0].split('_')[0]}*")[:12]
        raise ValueError(f"unknown timm model {name!r}; similar names: {close}")
    return timm.create_model(name, pretrained=False, num_classes=0)


class Backbone(nn.Module):
    """A timm model run one stage at a time.

    Supported: timm's ResNet family (conv1/bn1/act1/maxpool + layer1..4) and any timm model with
    `stem` or `patch_embed` plus four `stages` whose outputs are NCHW (PVT-v2, ConvNeXt, ...).
    `channels[s]` and `reductions[s]` come from the model's `feature_info`.
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.model = timm_model(name)
        m = self.model
        if all(hasattr(m, n) for n in _RESNET_STEM + _RESNET_STAGES):
            self.stem_names, self.stage_names = _RESNET_STEM, _RESNET_STAGES
        elif (
            isinstance(getattr(m, "stages", None), nn.Sequential)
            and len(m.stages) == 4
            and (hasattr(m, "stem") or hasattr(m, "patch_embed"))
        ):
            self.stem_names = ("stem",) if hasattr(m, "stem") else ("patch_embed",)
            self.stage_names = _STAGES
        else:
            raise ValueError(
                f"backbone {name!r} cannot be run stage by stage: expected a timm ResNet "
                "(conv1/bn1/act1/maxpool + layer1..4) or a model with stem/patch_embed and 4 "
                "`stages` (e.g. resnet50, pvt_v2_b0..b5, convnext_tiny)"
            )
        info = {f["module"]: f for f in getattr(m.feature_info, "info", m.feature_info)}
        absent = [n for n in self.stage_names if n not in info]
        if absent:
            raise ValueError(f"backbone {name!r}: feature_info lists no stage(s) {absent}")
        self.channels = [int(info[n]["num_chs"]) for n in self.stage_names]  # C_s
        self.reductions = [int(info[n]["reduction"]) for n in self.stage_names]  # 4, 8, 16, 32

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """(BT, 3, H, W) frames -> the input of stage 0 (layout as the model's own)."""
        for n in self.stem_names:
            x = getattr(self.model, n)(x)
        return x

    def stage(self, s: int, x: torch.Tensor) -> torch.Tensor:
        """Stage s (0..3): its input -> (BT, C_s, H / r_s, W / r_s)."""
        x = self.model.get_submodule(self.stage_names[s])(x)
        if x.dim() != 4 or x.shape[1] != self.channels[s]:
            raise ValueError(
                f"backbone {self.name!r}: stage {s} returned {tuple(x.shape)}, not NCHW with "
                f"{self.channels[s]} channels; only backbones whose stages return NCHW maps work"
            )
        return x


class AudioVisualEncoder(nn.Module):
    """Backbone + VGGish + audio tokens + a fusion block (DAM) after each of the 4 stages."""

    def __init__(self, cfg) -> None:
        super().__init__()
        self.backbone = Backbone(cfg.backbone)
        self.channels = list(self.backbone.channels)  # C_1..C_4
        self.vggish = VGGish(cfg.vggish)
        self.audio_proj = nn.Linear(EMBEDDING_DIM, cfg.dim)
        self.audio_norm = nn.LayerNorm(cfg.dim)
        self.dam = nn.ModuleList(build_fusion(cfg, c) for c in self.channels)
        self.freeze_vggish = cfg.freeze_vggish
        self.freeze_backbone = cfg.freeze_backbone
        self.vggish.requires_grad_(not cfg.freeze_vggish)
        self.backbone.requires_grad_(not cfg.freeze_backbone)

    def train(self, mode: bool = True) -> AudioVisualEncoder:
        super().train(mode)
        if self.freeze_backbone:  # frozen means frozen: BatchNorm statistics stay as loaded too
            self.backbone.eval()
        return self

    def audio_tokens(self, audio: torch.Tensor, bt: int) -> torch.Tensor:
        """(BT, 1, 96, 64) log-mel examples or (BT, 128) VGGish embeddings -> (BT, D) tokens."""
        if audio.shape == (bt, *LOG_MEL_SHAPE):
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_vggish):
                audio = self.vggish(audio)  # (BT, 128)
        elif audio.shape != (bt, EMBEDDING_DIM):
            raise ValueError(
                f"audio must be log-mel examples ({bt}, 1, 96, 64) or VGGish embeddings "
                f"({bt}, {EMBEDDING_DIM}) for {bt} frames, got {tuple(audio.shape)}"
            )
        return self.audio_norm(self.audio_proj(audio))  # (BT, D)

    def forward(
        self,
        frames: torch.Tensor,
        audio: torch.Tensor,
        frame_mask: torch.Tensor | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor, list[torch.Tensor] | None]:
        """frames (BT, 3, H, W); audio (BT, 1, 96, 64) or (BT, 128); frame_mask (BT,) bool, False
        for padded frames. Returns the 4 fused maps (BT, C_s, H/r_s, W/r_s), the audio tokens
        (BT, D) after the 4th fusion, and the 4 V2A maps (BT, h_s*w_s) (None without V2A)."""
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames must be (BT, 3, H, W), got {tuple(frames.shape)}")
        bt = frames.shape[0]
        keep = None
        if frame_mask is not None:
            if frame_mask.shape != (bt,):
                raise ValueError(f"frame_mask must be ({bt},), got {tuple(frame_mask.shape)}")
            keep = frame_mask.to(frames.dtype)[:, None]  # (BT, 1): padded frames -> 0
            frames = frames * keep[:, :, None, None]
        tokens = self.audio_tokens(audio, bt)
        if keep is not None:
            tokens = tokens * keep

        x = self.backbone.stem(frames)
        feats, maps = [], []
        for s, fusion in enumerate(self.dam):
            x = self.backbone.stage(s, x)  # (BT, C_s, h_s, w_s)
            x, tokens, att = fusion(x, tokens)  # the fused map feeds stage s + 1
            if keep is not None:  # padded frames' tokens stay 0 from DAM to DAM
                tokens = tokens * keep
            feats.append(x)
            maps.append(att)
        dam_maps = None if all(m is None for m in maps) else maps
        return feats, tokens, dam_maps
