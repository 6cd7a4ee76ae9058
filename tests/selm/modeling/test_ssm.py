"""The pure selective scan against a float64 step-by-step loop, and the CUDA kernel."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from selm.modeling import ssm
from selm.modeling.ssm import linear_recurrence, selective_scan, selective_scan_ref

ARGS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def loop_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """The recurrence written out one step, one batch entry at a time, in float64."""
    u, delta, A, B, C = (t.double() for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.double()[:, None]
    if delta_softplus:
        delta = torch.log1p(torch.exp(delta))
    batch, dim, length = u.shape
    outs = []
    for b in range(batch):
        h = torch.zeros(dim, A.shape[1], dtype=torch.float64)
        ys = []
        for t in range(length):
            b_t = B[b, :, t] if B.dim() == 3 else B  # (N,) or (Dm, N)
            c_t = C[b, :, t] if C.dim() == 3 else C
            drive = (delta[b, :, t] * u[b, :, t])[:, None] * b_t
            h = torch.exp(delta[b, :, t, None] * A) * h + drive
            ys.append((h * c_t).sum(-1))
        outs.append(torch.stack(ys, dim=-1))
    y = torch.stack(outs)
    if D is not None:
        y = y + u * D.double()[:, None]
    if z is not None:
        y = y * z.double() * torch.sigmoid(z.double())
    return y


def make_inputs(batch, dim, n, length, *, softplus, constant_bc=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    # without softplus, delta must be positive for a decaying (stable) recurrence
    delta = r(batch, dim, length) * 0.5 if softplus else torch.rand(batch, dim, length, generator=g)
    bc = (dim, n) if constant_bc else (batch, n, length)
    return {
        "u": r(batch, dim, length),
        "delta": delta,
        "A": -torch.exp(r(dim, n) * 0.5),
        "B": r(*bc),
        "C": r(*bc),
        "D": r(dim),
        "z": r(batch, dim, length),
        "delta_bias": r(dim) * 0.3 if softplus else torch.rand(dim, generator=g) * 0.3,
    }


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    x, ref = x.detach().double(), ref.detach().double()
    return float((x - ref).abs().max() / ref.abs().max().clamp_min(1e-12))


def grads(fn, inputs, names, dtype):
    leaves = {k: v.detach().to(dtype).requires_grad_(k in names) for k, v in inputs.items()}
    out = fn(**leaves)
    weight = torch.linspace(-1, 1, out.numel(), dtype=torch.float64, device=out.device)
    weight = weight.reshape(out.shape)
    (out.double() * weight).sum().backward()
    # None (an input that did not reach the output, e.g. A at L = 1) counts as a zero gradient
    return out, {
        k: torch.zeros_like(leaves[k]) if leaves[k].grad is None else leaves[k].grad for k in names
    }


OPTIONS = [  # (use D, use z, use delta_bias, softplus)
    (False, False, False, False),
    (True, True, True, True),
    (True, False, True, False),
    (False, True, False, True),
]


@pytest.mark.parametrize("length", [1, 5, 10, 256])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "DzbS" + "".join(str(int(v)) for v in o))
def test_scan_matches_float64_loop_values_and_gradients(length, options):
    use_d, use_z, use_bias, softplus = options
    inputs = make_inputs(2, 6, 4, length, softplus=softplus, seed=length)
    for name, used in (("D", use_d), ("z", use_z), ("delta_bias", use_bias)):
        if not used:
            inputs.pop(name)
    names = list(inputs)

    def ours(**kw):
        return selective_scan(**kw, delta_softplus=softplus)

    def ref(**kw):
        return loop_scan(**kw, delta_softplus=softplus)

    out, g = grads(ours, inputs, names, torch.float32)
    out_ref, g_ref = grads(ref, inputs, names, torch.float64)
    assert out.dtype == torch.float32 and out.shape == inputs["u"].shape
    assert rel_err(out, out_ref) < 1e-5
    for name in names:
        assert rel_err(g[name], g_ref[name]) < 2e-5, name


@pytest.mark.parametrize("method", ["sequential", "parallel", "stepwise", "auto"])
@pytest.mark.parametrize("length", [1, 2, 7, 16, 33])
def test_both_recurrences_match_the_loop(method, length):
    inputs = make_inputs(2, 3, 5, length, softplus=True, seed=7)
    out = selective_scan_ref(**inputs, delta_softplus=True, recurrence=method)
    assert rel_err(out, loop_scan(**inputs, delta_softplus=True)) < 1e-5


@pytest.mark.parametrize(
    "shape, chosen",
    [
        ((5, 1, 64), "auto"),  # the shipped model at inference: materialised
        ((245, 1, 64), "auto"),  # long and narrow
        ((5, 4, 512), "auto"),  # 2,048 wide
        ((5, 8, 512), "stepwise"),  # 4,096 wide: the official width at batch 8
        ((245, 16, 512), "stepwise"),
    ],
)
def test_auto_on_cpu_goes_step_by_step_by_width(shape, chosen):
    assert ssm._scan_method("auto", torch.zeros(shape)) == chosen
    assert ssm._scan_method("sequential", torch.zeros(shape)) == "sequential"


@pytest.mark.parametrize("width, chosen", [(7, "auto"), (6, "stepwise")])
def test_both_branches_of_auto_match_the_loop(monkeypatch, width, chosen):
    monkeypatch.setattr(ssm, "STEPWISE_MIN_WIDTH_CPU", width)
    inputs = make_inputs(2, 3, 5, 9, softplus=True, seed=width)  # 2 x 3 = 6 wide
    assert ssm._scan_method("auto", inputs["u"].permute(2, 0, 1)) == chosen
    auto = selective_scan_ref(**inputs, delta_softplus=True, recurrence="auto")
    same = selective_scan_ref(**inputs, delta_softplus=True, recurrence=chosen)
    assert torch.equal(auto, same)
    out, g = grads(partial(selective_scan_ref, delta_softplus=True), inputs, ARGS, torch.float32)
    ref, g_ref = grads(partial(loop_scan, delta_softplus=True), inputs, ARGS, torch.float64)
    assert rel_err(out, ref) < 1e-5
    for name in ARGS:
        assert rel_err(g[name], g_ref[name]) < 2e-5, name


@pytest.mark.parametrize("method", ["sequential", "parallel", "stepwise"])
@pytest.mark.parametrize("length", [1, 2, 7, 33])
def test_every_recurrence_has_the_loops_gradients(method, length):
    inputs = make_inputs(2, 3, 4, length, softplus=True, seed=11)
    scan = partial(selective_scan_ref, delta_softplus=True, recurrence=method)
    out, g = grads(scan, inputs, ARGS, torch.float32)
    ref, g_ref = grads(partial(loop_scan, delta_softplus=True), inputs, ARGS, torch.float64)
    assert rel_err(out, ref) < 1e-5
    for name in ARGS:
        assert rel_err(g[name], g_ref[name]) < 2e-5, name


@pytest.mark.parametrize("method", ["sequential", "parallel"])
def test_linear_recurrence_gradients_pass_gradcheck(method):
    g = torch.Generator().manual_seed(3)
    a = (torch.rand(9, 2, 3, generator=g, dtype=torch.float64) * 1.6 - 0.8).requires_grad_()
    b = torch.randn(9, 2, 3, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: linear_recurrence(a, b, method), (a, b))


def test_linear_recurrence_by_hand():
    a = torch.tensor([0.5, 2.0, -1.0, 0.25])
    b = torch.tensor([1.0, 1.0, 3.0, 4.0])
    expected = torch.tensor([1.0, 3.0, 0.0, 4.0])  # 1; 2*1+1; -1*3+3; 0.25*0+4
    for method in ("sequential", "parallel", "auto"):
        assert torch.allclose(linear_recurrence(a, b, method), expected)
    with pytest.raises(ValueError, match="method"):
        linear_recurrence(a, b, "fast")


def test_constant_b_and_c():
    inputs = make_inputs(2, 5, 3, 9, softplus=True, constant_bc=True, seed=3)
    out, g = grads(
        lambda **kw: selective_scan(**kw, delta_softplus=True), inputs, ARGS, torch.float32
    )
    out_ref, g_ref = grads(
        lambda **kw: loop_scan(**kw, delta_softplus=True), inputs, ARGS, torch.float64
    )
    assert rel_err(out, out_ref) < 1e-5
    for name in ARGS:
        assert rel_err(g[name], g_ref[name]) < 2e-5, name


def test_last_state_is_the_final_hidden_state():
    inputs = make_inputs(2, 4, 3, 6, softplus=True, seed=5)
    inputs.pop("z"), inputs.pop("D")
    y, last = selective_scan(**inputs, delta_softplus=True, return_last_state=True)
    assert last.shape == (2, 4, 3) and last.dtype == torch.float32
    # with C = e_n (constant) the output at the last step is the n-th state component
    for n in range(3):
        c = torch.zeros(4, 3)
        c[:, n] = 1
        y_n = selective_scan(**{**inputs, "C": c}, delta_softplus=True)
        assert torch.allclose(last[..., n], y_n[..., -1], atol=1e-6)


def test_bfloat16_in_bfloat16_out_close_to_float64():
    inputs = make_inputs(2, 8, 4, 10, softplus=True, seed=11)
    bf16 = {k: v.bfloat16() for k, v in inputs.items()}
    out = selective_scan(**bf16, delta_softplus=True)
    assert out.dtype == torch.bfloat16
    ref = loop_scan(**{k: v.double() for k, v in bf16.items()}, delta_softplus=True)
    assert rel_err(out, ref) < 1e-2  # bf16 rounding of the output only


def test_float64_inputs_pass_gradcheck():
    inputs = make_inputs(1, 2, 2, 4, softplus=True, seed=2)
    leaves = [inputs[k].double().requires_grad_() for k in ARGS]
    assert torch.autograd.gradcheck(
        lambda *xs: selective_scan(*xs, delta_softplus=True), leaves, eps=1e-6, atol=1e-6
    )


def test_long_sequence_with_strong_decay_stays_finite():
    # decay products reach exp(-3e4): a log-space or cumulative-product formulation would
    # under/overflow here; the recurrence must not
    inputs = make_inputs(1, 3, 4, 256, softplus=False, seed=4)
    inputs["delta"] = inputs["delta"] * 10
    inputs["A"] = -torch.arange(1.0, 5.0).repeat(3, 1) * 3
    out = selective_scan(**inputs)
    assert torch.isfinite(out).all()
    assert rel_err(out, loop_scan(**inputs)) < 1e-5


@pytest.mark.parametrize(
    "change, message",
    [
        ({"u": torch.zeros(2, 3)}, "u must be"),
        ({"delta": torch.zeros(1, 4, 6)}, "delta must"),
        ({"A": torch.zeros(5, 3)}, "A must be"),
        ({"B": torch.zeros(1, 3, 4)}, "B must be"),
        ({"C": torch.zeros(4, 2)}, "C must be"),
        ({"D": torch.zeros(3)}, "D must be"),
        ({"z": torch.zeros(1, 4, 4)}, "z must"),
        ({"delta_bias": torch.zeros(4, 1)}, "delta_bias must"),
        ({"A": torch.zeros(4, 3, dtype=torch.complex64)}, "complex"),
    ],
)
def test_bad_shapes_say_what_is_wrong(change, message):
    inputs = make_inputs(1, 4, 3, 5, softplus=True)
    with pytest.raises(ValueError, match=message):
        selective_scan(**{**inputs, **change})


@pytest.mark.skipif(ssm.HAS_MAMBA_KERNEL and torch.cuda.is_available(), reason="kernel present")
def test_use_kernel_true_without_kernel_or_cuda_is_a_clear_error():
    inputs = make_inputs(1, 4, 3, 5, softplus=True)
    with pytest.raises(RuntimeError, match="use_kernel"):
        selective_scan(**inputs, use_kernel=True)


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or not ssm.HAS_MAMBA_KERNEL, reason="needs CUDA and mamba_ssm"
)
@pytest.mark.parametrize("length", [5, 10, 256])
@pytest.mark.parametrize("constant_bc", [False, True])
def test_kernel_matches_pure_path(monkeypatch, length, constant_bc):
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    inputs = make_inputs(4, 64, 16, length, softplus=True, constant_bc=constant_bc, seed=1)
    inputs = {k: v.cuda() for k, v in inputs.items()}

    def run(use_kernel):
        def fn(**kw):
            return selective_scan(**kw, delta_softplus=True, use_kernel=use_kernel)

        return grads(fn, inputs, ARGS, torch.float32)

    out_k, g_k = run(True)
    out_p, g_p = run(False)
    assert rel_err(out_k, out_p) < 1e-5
    for name in ARGS:
        assert rel_err(g_k[name], g_p[name]) < 1e-5, name
    _, last_k = selective_scan(
        **inputs, delta_softplus=True, return_last_state=True, use_kernel=True
    )
    _, last_p = selective_scan(
        **inputs, delta_softplus=True, return_last_state=True, use_kernel=False
    )
    assert rel_err(last_k, last_p) < 1e-5
    # auto mode picks the kernel on CUDA
    assert torch.equal(selective_scan(**inputs, delta_softplus=True), out_k.detach())
