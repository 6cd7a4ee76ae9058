"""The DAM block exactly as the authors released it (`dam_variant: official`; docs/model.md,
section 'Encoder and DAM').

The release's block (`DAM_Fusion{s}` in the published checkpoints) reads the stage output
x (BT, C, HW) and the frame's audio token a (BT, D, S) with S = 1 token, and has two halves:

- V2A (video updates the audio token): an audio-queried attention over the pixels,
  `att = softmax_HW(q(a) . IN(k(x)) / sqrt(C))`, `a <- a + GELU(conv(out(att @ IN(v(x)))))`.
  `att` (BT, HW) is the DAM heat map.
- A2V, as released: the weight map is `W = IN(out(softmax_S(q(x) . k(a) / sqrt(C)) @ v(a)))`.
  The softmax runs over the S = 1 audio token, so it is exactly 1 and `W` is the instance norm
  of a map that is constant over the pixels: W ~ 0 (rounding noise only). The block then adds
  `r = GELU(out_conv(GELU(vis_project(x)) * W))`, i.e. GELU(out_conv.bias) at every pixel,
  through the tanh gate: `x <- x + gate(r) * r`. So the released A2V half only adds a learned
  per-channel bias. We keep that behaviour (the goal is numerical agreement with the published
  weights) and compute every step the release computes, so `a2v_weight` shows it.

IN is a parameter-free InstanceNorm1d over the HW axis (eps 1e-5, instance statistics always).
Both halves read the block's inputs; neither has dropout (the release builds it with 0.0); the
two scalar logits `a2v_mix` / `v2a_mix` scale the attentions by their softmax over one
element, i.e. by exactly 1. The release's audio-token mask is all ones for real frames, which
makes it an identity here; padded frames (AVSS) are zeroed by the encoder instead, which can
change only the padded frames' own values.

Submodules have readable names; `RELEASE_NAMES` says which tensor of the release each one is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# ours -> the release's name inside `DAM_Fusion{s}.` (every Conv1d is 1x1: weight (out, in, 1))
RELEASE_NAMES: dict[str, str] = {
    "vis_project": "fusion.vis_project.0",  # C -> C, then GELU
    "a2v_query": "fusion.audio_visual_att.align_vis.query_conv.0",  # C -> C, then IN
    "a2v_query2": "fusion.audio_visual_att.align_vis.query_conv2.0",  # C -> C, then IN
    "a2v_key": "fusion.audio_visual_att.align_vis.key_conv.0",  # D -> C
    "a2v_value": "fusion.audio_visual_att.audio_value_conv.0",  # D -> C
    "a2v_out": "fusion.audio_visual_att.vis_out.0",  # C -> C, then IN
    "a2v_mix": "fusion.audio_visual_att.vis_weight",  # (1,)
    "out_conv": "fusion.out_conv.0",  # C -> C, then GELU
    "gate": "gate",  # Linear(C, C) -> ReLU -> Linear(C, C) -> Tanh, no biases
    "v2a_query": "fusion.audio_visual_att.align_audio.f_query.0",  # D -> C
    "v2a_query2": "fusion.audio_visual_att.align_audio.f_query2.0",  # C -> D
    "v2a_key": "fusion.audio_visual_att.align_audio.f_key.0",  # C -> D, then IN
    "v2a_value": "fusion.audio_visual_att.vis_value_conv.0",  # C -> D, then IN
    "v2a_out": "fusion.audio_visual_att.audio_out.0",  # D -> D
    "v2a_mix": "fusion.audio_visual_att.audio_weight",  # (1,)
    "audio_out_conv": "audio_out_conv.0",  # D -> D, then GELU
}
IN_EPS = 1e-5  # nn.InstanceNorm1d's default, as released


def release_key(name: str) -> str:
    """Our tensor name inside an OfficialDAM (e.g. `a2v_key.weight`) -> the release's."""
    for ours, theirs in RELEASE_NAMES.items():
        if name == ours or name.startswith(ours + "."):
            return theirs + name[len(ours) :]
    raise KeyError(f"{name!r} is not a tensor of OfficialDAM")


def our_key(name: str) -> str:
    """The release's tensor name inside `DAM_Fusion{s}.` -> ours (inverse of `release_key`)."""
    for ours, theirs in RELEASE_NAMES.items():
        if name == theirs or name.startswith(theirs + "."):
            return ours + name[len(theirs) :]
    raise KeyError(f"{name!r} is not a tensor of the released DAM block")


def _conv(c_in: int, c_out: int) -> nn.Conv1d:
    return nn.Conv1d(c_in, c_out, kernel_size=1)


def _instance_norm(t: torch.Tensor) -> torch.Tensor:
    """(BT, C, L) normalised over L per frame and channel, no affine (nn.InstanceNorm1d).
    One position (a 1 x 1 grid) normalises to exactly 0, where torch's kernel would refuse."""
    if t.shape[-1] == 1:
        return torch.zeros_like(t)
    return F.instance_norm(t, eps=IN_EPS)


class OfficialDAM(nn.Module):
    """The released DAM block: (x (BT, C, h, w), a (BT, D)) -> (x, a, att (BT, h*w))."""

    def __init__(self, *, channels: int, dim: int) -> None:
        super().__init__()
        c, d = channels, dim
        self.scale = c**-0.5  # both halves scale by the visual width C (the release's key_channels)
        # A2V (audio -> video)
        self.vis_project = _conv(c, c)
        self.a2v_query = _conv(c, c)
        self.a2v_query2 = _conv(c, c)
        self.a2v_key = _conv(d, c)
        self.a2v_value = _conv(d, c)
        self.a2v_out = _conv(c, c)
        self.a2v_mix = nn.Parameter(torch.ones(1))
        self.out_conv = _conv(c, c)
        self.gate = nn.Sequential(
            nn.Linear(c, c, bias=False), nn.ReLU(), nn.Linear(c, c, bias=False), nn.Tanh()
        )
        # V2A (video -> audio)
        self.v2a_query = _conv(d, c)
        self.v2a_query2 = _conv(c, d)
        self.v2a_key = _conv(c, d)
        self.v2a_value = _conv(c, d)
        self.v2a_out = _conv(d, d)
        self.v2a_mix = nn.Parameter(torch.ones(1))
        self.audio_out_conv = _conv(d, d)

    def a2v_weight(self, pixels: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """The release's A2V weight map W (BT, C, HW) from pixels (BT, C, HW), audio (BT, D, S).

        For S = 1 the softmax over the audio axis is exactly 1, W is the instance norm of a map
        that is constant over HW, and so W ~ 0 whatever the inputs and weights.
        """
        q = _instance_norm(self.a2v_query2(_instance_norm(self.a2v_query(pixels))))  # (BT, C, HW)
        k = self.a2v_key(audio)  # (BT, C, S)
        sim = torch.einsum("bcn,bcs->bns", q, k) * self.scale  # (BT, HW, S)
        sim = sim.softmax(dim=-1) * self.a2v_mix.softmax(dim=0)
        spread = torch.einsum("bns,bcs->bcn", sim, self.a2v_value(audio))  # (BT, C, HW)
        return _instance_norm(self.a2v_out(spread))

    def v2a(self, pixels: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio-queried attention over the pixels: the residual (BT, D, S) for the audio and the
        attention (BT, S, HW), a softmax over HW."""
        q = self.v2a_query2(self.v2a_query(audio))  # (BT, D, S)
        k = _instance_norm(self.v2a_key(pixels))  # (BT, D, HW)
        att = (torch.einsum("bds,bdn->bsn", q, k) * self.scale).softmax(dim=-1)  # (BT, S, HW)
        att = att * self.v2a_mix.softmax(dim=0)
        v = _instance_norm(self.v2a_value(pixels))  # (BT, D, HW)
        return self.v2a_out(torch.einsum("bsn,bdn->bds", att, v)), att

    def forward(
        self, x: torch.Tensor, a: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        bt, c, h, w = x.shape
        pixels = x.flatten(2)  # (BT, C, HW)
        audio = a[:, :, None]  # (BT, D, 1): the release's audio sequence of one token
        residual_a, att = self.v2a(pixels, audio)
        a = a + F.gelu(self.audio_out_conv(residual_a))[:, :, 0]
        vis = F.gelu(self.vis_project(pixels)) * self.a2v_weight(pixels, audio)  # (BT, C, HW)
        r = F.gelu(self.out_conv(vis)).transpose(1, 2)  # (BT, HW, C): the gate acts per pixel
        x = (pixels + (self.gate(r) * r).transpose(1, 2)).reshape(bt, c, h, w)
        return x, a, att[:, 0]
