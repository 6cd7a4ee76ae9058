"""Mamba: parameter layout, initialisation, causality, and the mixer against a float64 loop."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from selm.modeling import ssm
from selm.modeling.mamba import Mamba

# mamba_ssm.Mamba(256) as stored in the released SelM checkpoints (BCSM.*.mamba_block.*)
EXPECTED_256 = [
    ("A_log", (512, 16)),
    ("D", (512,)),
    ("in_proj.weight", (1024, 256)),
    ("conv1d.weight", (512, 1, 4)),
    ("conv1d.bias", (512,)),
    ("x_proj.weight", (48, 512)),
    ("dt_proj.weight", (512, 16)),
    ("dt_proj.bias", (512,)),
    ("out_proj.weight", (256, 512)),
]


def naive_mamba(m: Mamba, x: torch.Tensor) -> torch.Tensor:
    """The mixer written out step by step in float64 from its parameters."""
    p = {k: v.detach().double() for k, v in m.state_dict().items()}
    x = x.double()
    batch, length, _ = x.shape
    di, n, r, k = m.d_inner, m.d_state, m.dt_rank, m.d_conv
    xz = x @ p["in_proj.weight"].T  # (B, L, 2 di)
    u, z = xz[..., :di], xz[..., di:]
    conv = torch.zeros_like(u) + p["conv1d.bias"]
    for t in range(length):  # causal depthwise: taps at t-k+1 .. t
        for j in range(k):
            s = t - (k - 1) + j
            if s >= 0:
                conv[:, t] += p["conv1d.weight"][:, 0, j] * u[:, s]
    u = conv * torch.sigmoid(conv)
    x_dbl = u @ p["x_proj.weight"].T
    dt, b, c = x_dbl[..., :r], x_dbl[..., r : r + n], x_dbl[..., r + n :]
    delta = torch.log1p(torch.exp(dt @ p["dt_proj.weight"].T + p["dt_proj.bias"]))  # (B, L, di)
    a = -torch.exp(p["A_log"])
    y = torch.zeros_like(u)
    for bi in range(batch):
        h = torch.zeros(di, n, dtype=torch.float64)
        for t in range(length):
            h = torch.exp(delta[bi, t, :, None] * a) * h
            h = h + (delta[bi, t] * u[bi, t])[:, None] * b[bi, t]
            y[bi, t] = h @ c[bi, t] + p["D"] * u[bi, t]
    y = y * z * torch.sigmoid(z)
    return y @ p["out_proj.weight"].T


def test_parameter_names_and_shapes_match_mamba_ssm():
    m = Mamba(256)
    assert [(k, tuple(v.shape)) for k, v in m.state_dict().items()] == EXPECTED_256
    assert m.dt_rank == 16 and m.d_inner == 512
    assert Mamba(64).dt_rank == 4 and Mamba(65).dt_rank == 5  # ceil(d_model / 16)
    assert Mamba(64, dt_rank=7).x_proj.weight.shape == (7 + 32, 128)
    with_bias = dict(Mamba(32, bias=True).state_dict())
    assert "in_proj.bias" in with_bias and "out_proj.bias" in with_bias


def test_initialisation():
    torch.manual_seed(0)
    m = Mamba(256, dt_min=0.001, dt_max=0.1)
    assert torch.equal(m.A_log, torch.log(torch.arange(1.0, 17.0)).repeat(512, 1))
    assert torch.equal(m.D, torch.ones(512))
    dt = F.softplus(m.dt_proj.bias.detach())
    assert dt.min() >= 0.001 * (1 - 1e-4) and dt.max() <= 0.1 * (1 + 1e-4)
    # log-uniform: the mean of log(dt) sits mid-range (std of that mean ~ 0.06 here)
    mid = (math.log(0.001) + math.log(0.1)) / 2
    assert abs(dt.log().mean().item() - mid) < 0.3
    assert m.dt_proj.weight.abs().max() <= 16**-0.5


def test_forward_matches_float64_loop():
    torch.manual_seed(1)
    m = Mamba(16, d_state=4, expand=2)
    with torch.no_grad():  # move D and A away from their structured init
        m.D.normal_()
        m.A_log.add_(0.3 * torch.randn_like(m.A_log))
    x = torch.randn(2, 7, 16)
    out = m(x)
    assert out.shape == (2, 7, 16) and out.dtype == torch.float32
    ref = naive_mamba(m, x)
    assert (out.double() - ref).abs().max() / ref.abs().max() < 1e-5


def test_causal_along_the_sequence():
    torch.manual_seed(2)
    m = Mamba(16, d_state=4)
    x = torch.randn(2, 9, 16)
    k = 4
    changed = x.clone()
    changed[:, k + 1 :] = torch.randn(2, 9 - k - 1, 16)
    out, out_changed = m(x), m(changed)
    assert torch.allclose(out[:, : k + 1], out_changed[:, : k + 1], rtol=0, atol=1e-6)
    assert not torch.allclose(out[:, k + 1 :], out_changed[:, k + 1 :], atol=1e-3)


def test_gradients_reach_every_parameter():
    m = Mamba(16, d_state=4)
    m(torch.randn(2, 5, 16)).square().sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_input_is_a_clear_error():
    m = Mamba(16)
    with pytest.raises(ValueError, match="batch, length, 16"):
        m(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="dt_min"):
        Mamba(16, dt_min=0.2, dt_max=0.1)


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or not ssm.HAS_MAMBA_KERNEL, reason="needs CUDA and mamba_ssm"
)
@pytest.mark.parametrize("d_model, length", [(64, 5), (256, 10)])
def test_matches_mamba_ssm_module(monkeypatch, d_model, length):
    from mamba_ssm import Mamba as ReferenceMamba

    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(3)
    ours = Mamba(d_model, use_kernel=False).cuda()  # the pure path against their kernel
    reference = ReferenceMamba(d_model=d_model, d_state=16, d_conv=4, expand=2).cuda()
    reference.load_state_dict(ours.state_dict())
    ours.load_state_dict(reference.state_dict())  # and back: same names, same shapes
    x = torch.randn(3, length, d_model, device="cuda")
    outs, grads = [], []
    for module in (ours, reference):
        xi = x.clone().requires_grad_()
        out = module(xi)
        (out * torch.linspace(-1, 1, out.numel(), device="cuda").view_as(out)).sum().backward()
        outs.append(out.detach())
        grads.append({"input": xi.grad, **{k: p.grad for k, p in module.named_parameters()}})

    def rel(a, b):
        return ((a - b).abs().max() / b.abs().max()).item()

    assert rel(outs[0], outs[1]) < 1e-5
    assert grads[0].keys() == grads[1].keys()
    for name, g_ours in grads[0].items():
        assert rel(g_ours, grads[1][name]) < 1e-5, name
