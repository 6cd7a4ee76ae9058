"""BCSM: the bidirectional conditioned selective mechanism (docs/model.md, section 'BCSM').

For each of the 4 feature levels s, two stacks of Mamba blocks run forward in time over a clip's
T frames: one over the audio tokens a (B, T, D), one over the pooled video sequence
p_s = Linear(avgpool_HW(f_s)) (B, T, D). Their outputs become channel gates

    g_a,s = SiLU(Linear(audio_stack_s(a)))      g_v,s = SiLU(Linear(video_stack_s(p_s)))

that select channels of the other modality:

    f_s <- f_s + g_a,s[..., None, None] * f_s    (audio selects video channels, "a2v")
    a   <- a + mean_s(g_v,s) * a                 (video selects audio channels, "v2a")

All gates are computed from the inputs; a is the same input for every level and updated once.
Submodule names follow the released checkpoints (`BCSM.*` / `tem_att.*`), so converting one is a
prefix rename: vis_linear.{s}, video_encoder.{s}.layers.{i}.{layernorm,mamba_block},
audio_encoder.{s}..., audio_gated.{s}.0, video_gated.{s}.0. Frames are ordered (b, t): clips
never mix, and since every scan is causal, frames padded at the end of T leave earlier ones alone.
`cfg.release_batch_gates` instead computes the gates as the authors' release does (see
`_release_gate`), clips of a batch mixed and padded maps zeroed as there.
"""

from __future__ import annotations

import torch
from torch import nn

from selm.config import SelMConfig
from selm.modeling.mamba import Mamba

NUM_LEVELS = 4


def channel_norm(x: torch.Tensor) -> torch.Tensor:
    """(..., D, h, w) -> (..., h, w): the L2 norm over channels, the BCSM heat map (detached)."""
    return x.detach().float().norm(dim=-3)


class MambaLayer(nn.Module):
    """One block: "normed" y = LN(x) + Mamba(LN(x)) (as released) or "input" x + Mamba(LN(x))."""

    def __init__(self, dim: int, mamba: Mamba, residual: str = "normed") -> None:
        super().__init__()
        if residual not in ("normed", "input"):
            raise ValueError(f"MambaLayer: residual={residual!r}, expected 'normed' or 'input'")
        self.residual = residual
        self.layernorm = nn.LayerNorm(dim)
        self.mamba_block = mamba

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, D) -> (B, T, D)."""
        y = self.layernorm(x)
        return (y if self.residual == "normed" else x) + self.mamba_block(y)


class MambaStack(nn.Module):
    """`depth` MambaLayers in sequence: (B, T, D) -> (B, T, D)."""

    def __init__(self, cfg: SelMConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            MambaLayer(
                cfg.dim,
                Mamba(
                    cfg.dim,
                    d_state=cfg.mamba_d_state,
                    d_conv=cfg.mamba_d_conv,
                    expand=cfg.mamba_expand,
                ),
                cfg.bcsm_residual,
            )
            for _ in range(cfg.bcsm_depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def _gates(dim: int) -> nn.ModuleList:
    # Linear then SiLU in a Sequential, as released (`*_gated.{s}.0` is the Linear)
    return nn.ModuleList(nn.Sequential(nn.Linear(dim, dim), nn.SiLU()) for _ in range(NUM_LEVELS))


def _stacks(cfg: SelMConfig) -> nn.ModuleList:
    return nn.ModuleList(MambaStack(cfg) for _ in range(NUM_LEVELS))


class BCSM(nn.Module):
    """(feats [4 x (B, T, D, h_s, w_s)], audio (B, T, D)) -> (feats, audio, maps).

    maps: per level {"norm_before", "norm_after": (B, T, h_s, w_s) channel L2 norms of f_s,
    "gate_audio": g_a,s, "gate_video": g_v,s (B, T, D) or None where the direction skips them},
    all detached (they are for display). cfg.bcsm_direction: "both"; "a2v" updates only the
    video features (audio returned unchanged); "v2a" only the audio. Only the stacks a direction
    needs are built.
    """

    def __init__(self, cfg: SelMConfig) -> None:
        super().__init__()
        if cfg.bcsm_depth < 1:
            raise ValueError(
                f"BCSM: cfg.bcsm_depth={cfg.bcsm_depth} must be >= 1 (or set "
                "cfg.bcsm=False to drop the BCSM)"
            )
        self.dim = cfg.dim
        self.direction = cfg.bcsm_direction
        self.release_batch_gates = cfg.release_batch_gates
        # the release's BCSM code differs between its S4/MS3 and AVSS (semantic) folders
        self.release_avss = cfg.num_classes > 1
        audio_selects_video = cfg.bcsm_direction in ("both", "a2v")
        video_selects_audio = cfg.bcsm_direction in ("both", "v2a")
        d = cfg.dim
        self.vis_linear = (
            nn.ModuleList(nn.Linear(d, d) for _ in range(NUM_LEVELS))
            if video_selects_audio
            else None
        )
        self.video_encoder = _stacks(cfg) if video_selects_audio else None
        self.video_gated = _gates(d) if video_selects_audio else None
        self.audio_encoder = _stacks(cfg) if audio_selects_video else None
        self.audio_gated = _gates(d) if audio_selects_video else None

    def _check_inputs(self, feats: list[torch.Tensor], audio: torch.Tensor) -> None:
        if audio.dim() != 3 or audio.shape[-1] != self.dim:
            raise ValueError(f"BCSM: audio must be (B, T, D={self.dim}), got {tuple(audio.shape)}")
        if len(feats) != NUM_LEVELS:
            raise ValueError(f"BCSM: expected {NUM_LEVELS} feature levels, got {len(feats)}")
        for s, f in enumerate(feats):
            if f.dim() != 5 or f.shape[:3] != (*audio.shape[:2], self.dim):
                raise ValueError(
                    f"BCSM: feats[{s}] must be (B, T, D, h, w) with (B, T, D) = "
                    f"{(*audio.shape[:2], self.dim)}, got {tuple(f.shape)}"
                )

    def forward(
        self,
        feats: list[torch.Tensor],
        audio: torch.Tensor,
        return_maps: bool = True,
        frame_mask: torch.Tensor | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor, list[dict[str, torch.Tensor | None]] | None]:
        """The selected maps, the selected audio tokens, and (with `return_maps`) the display maps
        of the class docstring, else None. `frame_mask` (B, T), False for padded frames, is only
        read with `release_batch_gates` (elsewhere padding at the end of a clip changes nothing)."""
        self._check_inputs(feats, audio)
        b, t = audio.shape[:2]
        release = self.release_batch_gates
        if release and frame_mask is not None:
            # the release multiplies the projected maps by the frame flag before its BCSM, so a
            # padded frame pools to 0; at B >= 2 other clips read gates at those positions
            keep = frame_mask.reshape(b, t, 1, 1, 1).to(feats[0].dtype)
            feats = [f * keep for f in feats]
        # the release's runs: video 10 frames (AVSS) or 5 (S4/MS3); audio the whole batch as one
        # sequence (AVSS) or 5 frames; both one clip per run at the released T
        video_run, audio_run = (10, b * t) if self.release_avss else (5, 5)
        out_feats, maps, video_gates = [], [], []
        for s, f in enumerate(feats):
            gate_a = gate_v = None
            if self.video_encoder is not None:
                p = self.vis_linear[s](f.mean(dim=(-2, -1)))  # (B, T, D)
                if release:
                    gate_v = _release_gate(
                        self.video_gated[s], self.video_encoder[s], p, video_run, True
                    )
                else:
                    gate_v = self.video_gated[s](self.video_encoder[s](p))  # (B, T, D)
                video_gates.append(gate_v)
            selected = f
            if self.audio_encoder is not None:
                if release:
                    gate_a = _release_gate(
                        self.audio_gated[s], self.audio_encoder[s], audio, audio_run, s > 0
                    )
                else:
                    gate_a = self.audio_gated[s](self.audio_encoder[s](audio))  # (B, T, D)
                selected = f + gate_a[..., None, None] * f
            out_feats.append(selected)
            if return_maps:
                maps.append(
                    {
                        "norm_before": channel_norm(f),
                        "norm_after": channel_norm(selected),
                        "gate_audio": None if gate_a is None else gate_a.detach(),
                        "gate_video": None if gate_v is None else gate_v.detach(),
                    }
                )
        if video_gates:
            audio = audio + torch.stack(video_gates).mean(dim=0) * audio
        return out_feats, audio, maps if return_maps else None


def _release_gate(
    gate: nn.Module, stack: MambaStack, x: torch.Tensor, run: int, transposed: bool
) -> torch.Tensor:
    """A gate as the release computes and applies it: the B*T frames of x (B, T, D), in (b, t)
    order, are scanned in consecutive runs of `run` frames, and with `transposed` the
    (runs, run, D) gates are read out position by position (frame i gets run i % runs, position
    i // runs): at B >= 2 they land on other clips' frames, in AVSS on padded positions' gates
    too. -> (B, T, D)."""
    b, t, d = x.shape
    if (b * t) % run:
        raise ValueError(
            f"release_batch_gates: B*T = {b * t} frames do not split into the release's runs of "
            f"{run} (its S4/MS3 code takes clips of 5 frames, its AVSS code clips of 10)"
        )
    g = gate(stack(x.reshape(-1, run, d)))  # (B*T / run, run, D)
    return (g.transpose(0, 1) if transposed else g).reshape(b, t, d)
