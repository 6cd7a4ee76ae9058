"""The Mamba-1 mixer (Gu & Dao, 2023) with `mamba_ssm.Mamba`'s parameter names and shapes.

A state dict of `mamba_ssm.modules.mamba_simple.Mamba` loads into `Mamba` unchanged (and back):
in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj. The convolution runs as a plain causal
depthwise `nn.Conv1d`; the selective scan dispatches to the CUDA kernel when available
(`selm.modeling.ssm.selective_scan`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from selm.modeling.ssm import selective_scan


class Mamba(nn.Module):
    """Mamba-1 mixer: (B, L, d_model) -> (B, L, d_model), causal along L.

    d_inner = expand * d_model channels; each runs a d_state-dimensional selective SSM whose step
    size dt and projections B, C depend on the input. dt_rank "auto" = ceil(d_model / 16).
    `use_kernel` is passed to `selective_scan` (None: the CUDA kernel when available).
    """

    def __init__(
        self,
        d_model: int,
        *,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        use_kernel: bool | None = None,
    ) -> None:
        super().__init__()
        if min(d_model, d_state, d_conv, expand) < 1:
            raise ValueError(
                f"Mamba: d_model={d_model}, d_state={d_state}, d_conv={d_conv}, "
                f"expand={expand} must all be >= 1"
            )
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"Mamba: need 0 < dt_min <= dt_max, got {dt_min}, {dt_max}")
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.use_kernel = use_kernel
        d_inner = self.d_inner

        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=bias)  # -> (x, z)
        # depthwise, padded on both sides; keeping the first L outputs makes it causal
        self.conv1d = nn.Conv1d(
            d_inner, d_inner, d_conv, padding=d_conv - 1, groups=d_inner, bias=conv_bias
        )
        self.x_proj = nn.Linear(d_inner, self.dt_rank + 2 * d_state, bias=False)  # -> (dt, B, C)
        self.dt_proj = nn.Linear(self.dt_rank, d_inner, bias=True)

        # dt_proj weight ~ U(+-dt_rank^-0.5): keeps the low-rank dt pre-activation at unit scale
        std = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        # initial step sizes log-uniform in [dt_min, dt_max]: each channel starts at its own
        # time scale; the floor keeps inverse-softplus finite
        dt = torch.exp(
            torch.rand(d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        ).clamp(min=dt_init_floor)
        # bias = softplus^-1(dt), so softplus(0 + bias) = dt at initialisation
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        # S4D-real: A = -(1..N) per channel, stored as log so that A stays negative (stable decay)
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
        self.A_log = nn.Parameter(torch.log(a))  # (d_inner, d_state)
        # D = 1: a skip connection from the input to the output of every channel
        self.D = nn.Parameter(torch.ones(d_inner))
        # mamba_ssm marks A_log and D `_no_weight_decay`; the release's AdamW decays every
        # parameter all the same, and so does train/ (one parameter group): no flag here
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, d_model) -> (B, L, d_model); output t depends on inputs 0..t only."""
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"Mamba: expected input (batch, length, {self.d_model}), got {tuple(x.shape)}"
            )
        length = x.shape[1]
        xz = self.in_proj(x).transpose(1, 2)  # (B, 2*d_inner, L)
        u, z = xz.chunk(2, dim=1)  # (B, d_inner, L) each
        u = F.silu(self.conv1d(u)[..., :length])
        x_dbl = self.x_proj(u.transpose(1, 2))  # (B, L, dt_rank + 2N)
        dt, b, c = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.linear(dt, self.dt_proj.weight).transpose(1, 2)  # (B, d_inner, L); bias in scan
        a = -torch.exp(self.A_log.float())  # (d_inner, N)
        y = selective_scan(
            u,
            dt,
            a,
            b.transpose(1, 2),
            c.transpose(1, 2),
            self.D.float(),
            z=z,
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
            use_kernel=self.use_kernel,
        )  # (B, d_inner, L)
        return self.out_proj(y.transpose(1, 2))
