"""CLEVER's mask head: upsample the finest fused map, then a dynamic 1x1 convolution whose kernel
comes from the last token (docs/model.md, section 'Mask head').

`light=True` (`SelMConfig.mask_head="light"`, for our own models; never the official presets)
runs the same layers, with the same parameters, without the two upsampling steps: the conv
blocks, the Conv1x1 and the dynamic kernel work at the fused map's size and only the N-channel
logits are upsampled (bilinear, x 2^steps). At full resolution the D -> D 3x3 convolutions are
most of the head's cost (39-50 % of a selm_tiny forward); the light head does them on 4^steps
times fewer pixels. Its cost and accuracy are measured, not assumed (benchmarks/README.md).

Submodule names follow the authors' release (`decoder.proj.vis.*`, `decoder.proj.audio_linear`),
so their checkpoints load by renaming the prefix only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MaskHead(nn.Module):
    """`vis`: `upsample_steps` x (bilinear x2, Conv3x3 without bias + GroupNorm(32) + ReLU), then a
    Conv1x1. With two steps its indices are 0 up, 1 conv block, 2 up, 3 conv block, 4 Conv1x1,
    as in the release.

    `audio_linear` turns the last token into the dynamic kernel: D weights and 1 bias for the
    binary mask (N = 1), or N per-class kernels of D weights and no per-class bias (N > 1; the
    release's AVSS layer has exactly N * D outputs).
    """

    def __init__(
        self, *, dim: int, num_classes: int, upsample_steps: int, light: bool = False
    ) -> None:
        super().__init__()
        if upsample_steps < 0:
            raise ValueError(f"mask_upsample_steps={upsample_steps}: expected 0 or more x2 steps")
        self.num_classes = num_classes
        self.upsample_steps, self.light = upsample_steps, light
        layers: list[nn.Module] = []
        for _ in range(upsample_steps):
            layers += [
                # the release's nn.Upsample(scale_factor=2, mode="bilinear"): align_corners=False
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Sequential(
                    nn.Conv2d(dim, dim, kernel_size=3, padding=1, bias=False),
                    nn.GroupNorm(32, dim),
                    nn.ReLU(inplace=True),
                ),
            ]
        layers.append(nn.Conv2d(dim, dim, kernel_size=1))
        self.vis = nn.Sequential(*layers)
        out = dim + 1 if num_classes == 1 else num_classes * dim
        self.audio_linear = nn.Linear(dim, out)

    def forward(self, v: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        """v (BT, D, h, w) the finest fused map; token (BT, D) the last CLEVER token.
        Returns logits (BT, N, h * 2^steps, w * 2^steps)."""
        if self.light:
            x = v
            for layer in self.vis:
                if not isinstance(layer, nn.Upsample):
                    x = layer(x)  # (BT, D, h, w)
        else:
            x = self.vis(v)  # (BT, D, H, W)
        params = self.audio_linear(token)  # (BT, D + 1) or (BT, N * D)
        if self.num_classes == 1:
            weight, bias = params[:, :-1], params[:, -1]
            logits = (torch.einsum("bd,bdhw->bhw", weight, x) + bias[:, None, None])[:, None]
        else:
            kernels = params.unflatten(-1, (self.num_classes, -1))  # (BT, N, D)
            logits = torch.einsum("bnd,bdhw->bnhw", kernels, x)
        if self.light and self.upsample_steps:
            scale = 2**self.upsample_steps
            logits = F.interpolate(logits, scale_factor=scale, mode="bilinear", align_corners=False)
        return logits
