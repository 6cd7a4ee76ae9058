"""Early fusion after each backbone stage: the DAM of the paper and its ablations (docs/model.md,
sections 'Encoder and DAM' and 'Ablations').

Every fusion module maps (x (BT, C, h, w), a (BT, D)) -> (x, a, att): the fused visual map, the
updated audio token and the V2A attention over the h*w pixels (BT, h*w), or None when the module
has no V2A half. `build_fusion(cfg, C)` picks the module from `cfg.fusion` / `cfg.dam_variant`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from selm.modeling.dam_official import OfficialDAM


def _pointwise(c_in: int, c_out: int, dropout: float) -> nn.Sequential:
    """Conv1d(1x1) + GELU + Dropout over (BT, C, L)."""
    return nn.Sequential(nn.Conv1d(c_in, c_out, kernel_size=1), nn.GELU(), nn.Dropout(dropout))


class DAM(nn.Module):
    """The paper's Dual Alignment Module: A2V re-weights the pixels with the audio, V2A lets the
    audio token attend over the pixels. Both halves read the block's inputs (x, a)."""

    def __init__(
        self, *, channels: int, dim: int, dropout: float = 0.1, direction: str = "both"
    ) -> None:
        super().__init__()
        if direction not in ("both", "a2v", "v2a"):
            raise ValueError(f"DAM direction {direction!r}: expected 'both', 'a2v' or 'v2a'")
        c, d = channels, dim
        self.a2v = direction in ("both", "a2v")
        self.v2a = direction in ("both", "v2a")
        if self.a2v:
            self.branch_v = _pointwise(c, c, dropout)
            self.branch_a = _pointwise(d, c, dropout)
            self.conv_r = nn.Conv1d(c, c, kernel_size=1)
            self.drop_r = nn.Dropout(dropout)
            self.tanh_gate = nn.Sequential(
                nn.Linear(c, c, bias=False), nn.ReLU(), nn.Linear(c, c, bias=False), nn.Tanh()
            )
        if self.v2a:
            self.q = nn.Conv1d(d, d, kernel_size=1)
            self.k = nn.Conv1d(c, d, kernel_size=1)
            self.v = nn.Conv1d(c, d, kernel_size=1)
            self.conv_r_a = nn.Conv1d(d, d, kernel_size=1)
            self.conv_a = nn.Conv1d(d, d, kernel_size=1)

    def forward(
        self, x: torch.Tensor, a: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        bt, c, h, w = x.shape
        pixels = x.flatten(2)  # (BT, C, HW)
        token = a[:, :, None]  # (BT, D, 1)
        att = None
        if self.v2a:
            q = self.q(token)  # (BT, D, 1)
            logits = (q * self.k(pixels)).sum(1) / math.sqrt(q.shape[1])  # (BT, HW)
            att = logits.softmax(dim=-1)
            pooled = torch.einsum("bn,bdn->bd", att, self.v(pixels))[:, :, None]  # (BT, D, 1)
            r_a = self.conv_r_a(pooled)
            a = a + F.gelu(self.conv_a(r_a))[:, :, 0]
        if self.a2v:
            v = self.branch_v(pixels)  # (BT, C, HW)
            weight = v * self.branch_a(token)  # W: (BT, C, HW), audio broadcast over HW
            r = self.drop_r(F.gelu(self.conv_r(v * weight)))  # (BT, C, HW)
            r = r.transpose(1, 2)  # (BT, HW, C): the gate acts per pixel
            pixels = pixels + (self.tanh_gate(r) * r).transpose(1, 2)
            x = pixels.reshape(bt, c, h, w)
        return x, a, att


class AddFusion(nn.Module):
    """Ablation `fusion: add`: x + Linear(D -> C)(a) at every pixel; a unchanged."""

    def __init__(self, *, channels: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, channels)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        return x + self.proj(a)[:, :, None, None], a, None


class ConcatFusion(nn.Module):
    """Ablation `fusion: concat`: Conv1x1(C + D -> C)(cat(x, a at every pixel)); a unchanged."""

    def __init__(self, *, channels: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels + dim, channels, kernel_size=1)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        tiled = a[:, :, None, None].expand(-1, -1, *x.shape[-2:])  # (BT, D, h, w)
        return self.proj(torch.cat([x, tiled], dim=1)), a, None


class NoFusion(nn.Module):
    """Ablation `fusion: none`: the stages see no audio."""

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        return x, a, None


def build_fusion(cfg, channels: int) -> nn.Module:
    """The fusion block after a backbone stage with `channels` maps, as `cfg` selects (the
    config is read here; the blocks take plain keyword arguments)."""
    if cfg.fusion == "dam":
        if cfg.dam_variant == "official":
            if cfg.dam_direction != "both":
                raise ValueError(
                    "dam_variant='official' is the released block, which always has both "
                    f"halves; dam_direction={cfg.dam_direction!r} needs dam_variant='paper'"
                )
            return OfficialDAM(channels=channels, dim=cfg.dim)
        return DAM(channels=channels, dim=cfg.dim, dropout=cfg.dropout, direction=cfg.dam_direction)
    if cfg.fusion == "add":
        return AddFusion(channels=channels, dim=cfg.dim)
    if cfg.fusion == "concat":
        return ConcatFusion(channels=channels, dim=cfg.dim)
    if cfg.fusion == "none":
        return NoFusion()
    raise ValueError(f"fusion {cfg.fusion!r}: expected 'dam', 'add', 'concat' or 'none'")
