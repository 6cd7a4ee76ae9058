"""CLEVER: the cross-level decoder of SelM (docs/model.md, section 'CLEVER').

K learnable tokens walk the fused feature pyramid coarse to fine. At each of the three layers the
finer backbone level is fused in, the last token reads the frame's audio, and every token gathers
the pixels it wins in a hard (straight-through) assignment: that assignment is the CLEVER hit map.
The last token finally becomes the kernel of the mask head (`selm.modeling.mask_head`).

Submodule names follow the authors' release so their checkpoints load by renaming only:
`tokens`, `fuses.{i}.fusion`, `layers.{i}` (positional embedding + audio step), `cgattention{1,2,3}`
(video cross-attention), `proj` (mask head). Which LayerNorm is which:
- `layers.{i}.loadtoken.normq` / `.normk`: the query (last token) and the audio keys;
- `layers.{i}.norm`: before `layers.{i}.mlp`, the MLP that follows the audio step;
- `layers.{i}.loadtoken.norm` / `.mlp`: in the release's checkpoints but never used by its forward;
  kept, frozen, only so those checkpoints load unchanged;
- `cgattention{i}.norm_v`: the pixels plus positional embedding; `.norm_t`: the tokens before
  `q_proj`; `.norm`: `new + tokens` before `cgattention{i}.mlp`.

Switched-off parts (docs/model.md, section 'Ablations'): a layer whose video cross-attention is
off (`decoder="single_level"` for the two coarse layers, or `clever_cross_attention="audio"`) still
computes its assignment map, for display and for the auxiliary loss, but does not update the
tokens; a layer whose audio step is off skips it and the MLP after it. All parameters exist in
every configuration, so the state dict layout never depends on the switches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selm.config import SelMConfig
from selm.modeling.mask_head import MaskHead


class Mlp(nn.Module):
    """D -> 2D -> D with GELU (the release's `Mlp`: dropout after both linears)."""

    def __init__(self, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(2 * dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def l2norm(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """x / (||x|| + eps) over the last axis (the release's form, kept for parity)."""
    return x / (x.square().sum(-1, keepdim=True).sqrt() + eps)


def hard_assignment(
    logits: torch.Tensor, temperature: torch.Tensor, *, noise: bool
) -> torch.Tensor:
    """One-hot over dim 1 (the K tokens) of `logits` (BT, K, hw), straight-through.

    Forward value: exactly one-hot at argmax(logits + g), g Gumbel(0, 1) noise when `noise`.
    Gradient: that of softmax((logits + g) / temperature) over K.
    """
    if noise:
        logits = logits - torch.empty_like(logits).exponential_().log()  # + Gumbel(0, 1)
    soft = (logits / temperature).softmax(dim=1)
    hard = torch.zeros_like(soft).scatter_(1, soft.argmax(dim=1, keepdim=True), 1.0)
    return hard + (soft - soft.detach())  # value exactly `hard`, gradient of `soft`


def gather_assigned(hit: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Each token's mean of the values it won, shrunk toward 0: (hit / (sum_hw hit + 1)) @ values.

    hit (BT, K, hw) one-hot over K; values (BT, hw, D) -> (BT, K, D). The +1 keeps a token that
    wins no pixel at zero instead of dividing by zero.
    """
    return (hit / (hit.sum(dim=-1, keepdim=True) + 1)) @ values


class CrossAttention(nn.Module):
    """Single-head attention of queries over the audio tokens (qkv without bias, proj with)."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.scale = dim**-0.5
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.attn_drop = nn.Dropout(dropout)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, valid: torch.Tensor | None
    ) -> torch.Tensor:
        """query (BT, Q, D); key (BT, S, D), also the value as released; valid (BT, S) bool or
        None. Returns (BT, Q, D); zero for a frame whose keys are all invalid."""
        q, k, v = self.q_proj(query), self.k_proj(key), self.v_proj(key)
        logits = (q @ k.transpose(1, 2)) * self.scale  # (BT, Q, S)
        if valid is not None:
            # finite fill: a fully masked row stays finite (uniform), and is zeroed below
            logits = logits.masked_fill(~valid[:, None, :], torch.finfo(logits.dtype).min)
        attn = self.attn_drop(logits.softmax(dim=-1))
        out = self.proj_drop(self.proj(attn @ v))
        if valid is not None:
            out = out * valid.any(dim=-1).to(out.dtype)[:, None, None]
        return out


class LoadToken(nn.Module):
    """The audio step: only the last token attends to the frame's audio tokens (`loadtoken`)."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.cross_attn = CrossAttention(dim, dropout)
        self.normq = nn.LayerNorm(dim)
        self.normk = nn.LayerNorm(dim)
        # in the release's checkpoints, unused by its forward: kept frozen so they load by name
        self.norm = nn.LayerNorm(dim).requires_grad_(False)
        self.mlp = Mlp(dim).requires_grad_(False)

    def forward(
        self, tokens: torch.Tensor, audio: torch.Tensor, valid: torch.Tensor | None
    ) -> torch.Tensor:
        """tokens (BT, K, D); audio (BT, S, D); valid (BT, S) or None -> tokens (BT, K, D)."""
        last = tokens[:, -1:]
        key = self.normk(audio)  # keys and values are the normalised audio tokens, as released
        last = last + self.cross_attn(self.normq(last), key, valid)
        return torch.cat([tokens[:, :-1], last], dim=1)


class AudioLayer(nn.Module):
    """One CLEVER layer's audio step and positional embedding (the release's `layers.{i}`)."""

    def __init__(self, *, dim: int, grid: int, dropout: float) -> None:
        super().__init__()
        self.grid = grid
        self.loadtoken = LoadToken(dim, dropout)
        self.norm = nn.LayerNorm(dim)
        self.mlp = Mlp(dim)
        # (g*g, D) rows in row-major (y, x) order; N(0, 1/D) as released
        self.positional_embedding = nn.Parameter(torch.randn(grid * grid, dim) / dim**0.5)

    def forward(
        self, tokens: torch.Tensor, audio: torch.Tensor, valid: torch.Tensor | None
    ) -> torch.Tensor:
        """Audio cross-attention, then `tokens = MLP(LN(tokens))` (no residual, as released)."""
        return self.mlp(self.norm(self.loadtoken(tokens, audio, valid)))

    def position(self, h: int, w: int) -> torch.Tensor:
        """The positional embedding for an h x w grid: (h*w, D), resampled bilinearly when the
        grid differs from the g x g one it was created for."""
        pos = self.positional_embedding
        if (h, w) == (self.grid, self.grid):
            return pos
        grid = pos.T.reshape(1, -1, self.grid, self.grid)  # (1, D, g, g)
        grid = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)
        return grid.flatten(2)[0].T  # (h*w, D)


class VideoCrossAttention(nn.Module):
    """Tokens gather the pixels they win in a hard assignment over the K tokens (`cgattention`)."""

    def __init__(self, *, dim: int, dropout: float, gumbel_at_eval: bool) -> None:
        super().__init__()
        self.gumbel_at_eval = gumbel_at_eval
        self.norm_v = nn.LayerNorm(dim)
        self.norm_t = nn.LayerNorm(dim)
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dropout)
        self.tau = nn.Parameter(torch.ones(1))  # temperature exp(min(tau, 0)), as released

    def forward(
        self, tokens: torch.Tensor, v: torch.Tensor, pos: torch.Tensor, *, update: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (BT, K, D); v (BT, D, h, w) fused features; pos (h*w, D).
        Returns tokens (BT, K, D) (unchanged when not `update`) and hit (BT, K, h, w)."""
        h, w = v.shape[-2:]
        vis = self.norm_v(v.flatten(2).transpose(1, 2) + pos)  # (BT, hw, D)
        q = l2norm(self.q_proj(self.norm_t(tokens)))  # (BT, K, D)
        k = l2norm(self.k_proj(vis))  # (BT, hw, D)
        temperature = self.tau.clamp(max=0).exp()
        noise = self.training or self.gumbel_at_eval
        hit = hard_assignment(q @ k.transpose(1, 2), temperature, noise=noise)  # (BT, K, hw)
        if update:
            new = self.proj_drop(self.proj(gather_assigned(hit, self.v_proj(vis))))  # (BT, K, D)
            tokens = self.mlp(self.norm(new + tokens))
        return tokens, hit.unflatten(-1, (h, w))


class Fuse(nn.Module):
    """Upsample the coarser map to the finer (bilinear, align_corners=True), concatenate
    [coarse, fine], then 2 x (Conv3x3 + GroupNorm(32) + ReLU)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fusion = nn.Sequential(
            nn.Conv2d(2 * dim, dim, kernel_size=3, padding=1),
            nn.GroupNorm(32, dim),
            nn.ReLU(),
            nn.Conv2d(dim, dim, kernel_size=3, padding=1),
            nn.GroupNorm(32, dim),
            nn.ReLU(),
        )

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        """coarse (BT, D, h', w'), fine (BT, D, h, w) -> (BT, D, h, w)."""
        if coarse.shape[-2:] != fine.shape[-2:]:
            size = fine.shape[-2:]
            coarse = F.interpolate(coarse, size=size, mode="bilinear", align_corners=True)
        return self.fusion(torch.cat([coarse, fine], dim=1))


class CleverDecoder(nn.Module):
    """Three AV layers over the pyramid (f4 into f3, then into f2, then into f1), then the mask
    head on the finest fused map and the last token."""

    def __init__(self, cfg: SelMConfig) -> None:
        super().__init__()
        d = cfg.dim
        self.out_size = cfg.out_size
        self.tokens = nn.Embedding(cfg.num_tokens, d)
        nn.init.trunc_normal_(self.tokens.weight, std=0.02)
        self.layers = nn.ModuleList(
            AudioLayer(dim=d, grid=g, dropout=cfg.dropout) for g in cfg.grids
        )
        attention = dict(dim=d, dropout=cfg.dropout, gumbel_at_eval=cfg.gumbel_at_eval)
        self.cgattention1 = VideoCrossAttention(**attention)
        self.cgattention2 = VideoCrossAttention(**attention)
        self.cgattention3 = VideoCrossAttention(**attention)
        self.fuses = nn.ModuleList(Fuse(d) for _ in range(3))
        self.proj = MaskHead(
            dim=d,
            num_classes=cfg.num_classes,
            upsample_steps=cfg.mask_upsample_steps,
            light=cfg.mask_head == "light",
        )
        # which token updates run per layer (coarse to fine), fixed by the config; the audio step
        # is skipped where the configured grid side is below audio_attn_min_side
        attends = (False, False, True) if cfg.decoder == "single_level" else (True, True, True)
        audio_on = cfg.clever_cross_attention in ("both", "audio")
        video_on = cfg.clever_cross_attention in ("both", "video")
        self.audio_steps = tuple(
            a and audio_on and g >= cfg.audio_attn_min_side for a, g in zip(attends, cfg.grids)
        )
        self.video_steps = tuple(a and video_on for a in attends)

    @property
    def video_attentions(self) -> tuple[VideoCrossAttention, ...]:
        return (self.cgattention1, self.cgattention2, self.cgattention3)

    def forward(
        self,
        feats: list[torch.Tensor],
        audio_tokens: torch.Tensor,
        audio_valid: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """feats: 4 x (BT, D, h_s, w_s), finest first (strides 4, 8, 16, 32); audio_tokens
        (BT, S, D) (S = 1 in SelM); audio_valid (BT, S) bool, False for padded tokens, or None.

        Returns logits (BT, N, out, out) at `cfg.out_size` and the hit maps, 3 x (BT, K, h, w),
        coarse to fine.
        """
        self._check(feats, audio_tokens, audio_valid)
        f1, f2, f3, f4 = feats
        tokens = self.tokens.weight[None].expand(f1.shape[0], -1, -1)  # (BT, K, D)
        v, hit_maps = f4, []
        for i, fine in enumerate((f3, f2, f1)):
            v = self.fuses[i](v, fine)  # (BT, D, h, w)
            layer = self.layers[i]
            if self.audio_steps[i]:
                tokens = layer(tokens, audio_tokens, audio_valid)
            pos = layer.position(*v.shape[-2:])
            tokens, hit = self.video_attentions[i](tokens, v, pos, update=self.video_steps[i])
            hit_maps.append(hit)
        logits = self.proj(v, tokens[:, -1])  # (BT, N, h', w')
        if logits.shape[-2:] != (self.out_size, self.out_size):
            logits = F.interpolate(
                logits, size=(self.out_size, self.out_size), mode="bilinear", align_corners=True
            )
        return logits, hit_maps

    def _check(
        self, feats: list[torch.Tensor], audio: torch.Tensor, valid: torch.Tensor | None
    ) -> None:
        d = self.tokens.embedding_dim
        if len(feats) != 4:
            raise ValueError(f"CleverDecoder needs 4 feature maps (f1..f4), got {len(feats)}")
        bt = feats[0].shape[0]
        for s, f in enumerate(feats, start=1):
            if f.dim() != 4 or f.shape[:2] != (bt, d):
                raise ValueError(
                    f"feature map f{s} must be (BT={bt}, D={d}, h, w), got {tuple(f.shape)}"
                )
        if feats[0].shape[-1] < feats[-1].shape[-1]:
            raise ValueError("CleverDecoder feats must be ordered finest first (f1 stride 4 ...)")
        if audio.dim() != 3 or audio.shape[0] != bt or audio.shape[2] != d:
            raise ValueError(f"audio_tokens must be (BT={bt}, S, D={d}), got {tuple(audio.shape)}")
        if valid is not None and (valid.shape != audio.shape[:2] or valid.dtype != torch.bool):
            raise ValueError(
                f"audio_valid must be a bool tensor of shape {tuple(audio.shape[:2])}, "
                f"got {valid.dtype} {tuple(valid.shape)}"
            )
