"""Selective scan: Mamba-1's input-dependent state-space recurrence (docs/model.md, section 'BCSM').

With u, delta, z of shape (B, Dm, L) (batch, channels, time), A (Dm, N) and B_t, C_t in R^N:

    delta  = softplus(delta + delta_bias)          (each optional)
    h_t    = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t,   h_{-1} = 0,  h_t (B, Dm, N)
    y_t    = <h_t, C_t> + D * u_t,   y_t *= silu(z_t)

`selective_scan` takes `mamba_ssm.ops.selective_scan_interface.selective_scan_fn`'s arguments and
returns what it returns. On CUDA tensors it calls that kernel when `mamba_ssm` is importable;
otherwise (and always when `use_kernel=False`) it runs `selective_scan_ref`, the pure-PyTorch
path, which is the oracle the kernel is tested against.

The pure path is vectorised over everything but the recurrence itself: the decays, inputs and
read-outs of all L steps are single tensor ops in float32; the recurrence h_t = a_t h_{t-1} + b_t
is one fused multiply-add per step over all (batch, channel, state) entries for short sequences
and a log2(L)-step parallel prefix scan (Hillis-Steele) for long ones; its backward pass is the
same recurrence in reverse. Neither takes logarithms or divides by decay products, so nothing
overflows or loses precision as L grows. Wide steps on CPU instead run one step at a time
without materialising (L, B, Dm, N) tensors. Which one runs was chosen from
`benchmarks/bench_scan.py`: on 2 CPU cores (`results/scan_cpu.json`) the materialised per-step
loop up to 2,048 entries a step and the step-by-step scan from 4,096; on an H200 (measured with
autograd through every step, before the reverse backward) both recurrences are launch-bound and
within noise at L = 5..10 (about 0.3 ms forward, 2-3 ms forward + backward, against the
kernel's 0.07 / 0.5 ms), and the prefix scan wins from L = 16 on (forward + backward at
L = 256: 5.7 ms against 35 ms).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

try:  # the fused CUDA kernel is optional: `pip install mamba-ssm` on a CUDA machine
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as _kernel_scan

    HAS_MAMBA_KERNEL = True
except ImportError:
    _kernel_scan = None
    HAS_MAMBA_KERNEL = False

RECURRENCES = ("auto", "sequential", "parallel")
# "auto" runs the parallel prefix scan from this length on, on CUDA only (measured on an H200;
# on CPU the per-step loop wins at every length)
PARALLEL_MIN_LENGTH_CUDA = 16
# selective_scan_ref's "auto" on CPU: the step-by-step scan once a step is this wide (B x Dm
# entries), else the materialised sequential recurrence. Forward + backward on 2 CPU cores
# (benchmarks/bench_scan.py, results/scan_cpu.json, L = 5-245, d_state 16): up to 2,048 wide
# the materialised loop is as fast or faster (4x at B = 1, Dm = 64, L = 245); from 4,096 on
# the step-by-step scan is (1.6-1.7x at B = 16, Dm = 512), as it keeps no (L, B, Dm, N) tensors
STEPWISE_MIN_WIDTH_CPU = 4096
SCANS = (*RECURRENCES, "stepwise")  # what selective_scan_ref's `recurrence` may be
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def linear_recurrence(a: torch.Tensor, b: torch.Tensor, method: str = "auto") -> torch.Tensor:
    """h_t = a_t * h_{t-1} + b_t with h_{-1} = 0, along dim 0.

    a, b: (L, ...) of the same shape; returns h (L, ...). `method`: "sequential" (one fused
    multiply-add per step), "parallel" (Hillis-Steele prefix scan, ceil(log2 L) steps) or "auto".
    Differentiable in a and b; the backward pass is the same recurrence run in reverse
    (g_t = dh_t + a_{t+1} g_{t+1}; db_t = g_t, da_t = g_t h_{t-1}), so autograd keeps only a and
    h, not every step of the scan.
    """
    if method not in RECURRENCES:
        raise ValueError(f"linear_recurrence: method={method!r}, expected one of {RECURRENCES}")
    if method == "auto":
        long = a.is_cuda and a.shape[0] >= PARALLEL_MIN_LENGTH_CUDA
        method = "parallel" if long else "sequential"
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        return _Recurrence.apply(a, b, method)
    return _recur(a, b, method)


def _recur(a: torch.Tensor, b: torch.Tensor, method: str) -> torch.Tensor:
    """`linear_recurrence` with a resolved method, through plain tensor ops."""
    if method == "sequential":
        h = b[0]
        states = [h]
        for t in range(1, a.shape[0]):
            h = torch.addcmul(b[t], a[t], h)
            states.append(h)
        return torch.stack(states)
    # Prefix scan over pairs (a, b) with (a1, b1) then (a2, b2) = (a1 a2, a2 b1 + b2): after the
    # step with offset k, entry t holds the composition of the 2k entries ending at t.
    length, k = a.shape[0], 1
    while k < length:
        b = torch.cat([b[:k], torch.addcmul(b[k:], a[k:], b[:-k])])
        if 2 * k < length:  # the last step needs no decay products
            a = torch.cat([a[:k], a[k:] * a[:-k]])
        k *= 2
    return b


class _Recurrence(torch.autograd.Function):
    """h = linear_recurrence(a, b) with the reverse recurrence as its backward."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, method: str) -> torch.Tensor:
        h = _recur(a, b, method)
        ctx.save_for_backward(a, h)
        ctx.method = method
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h: torch.Tensor):
        a, h = ctx.saved_tensors
        # g_t = grad_h_t + a_{t+1} g_{t+1}: the forward recurrence over the flipped sequence
        a_next = torch.cat([a[1:], torch.zeros_like(a[:1])])
        g = _recur(a_next.flip(0), grad_h.flip(0), ctx.method).flip(0)
        grad_a = torch.cat([torch.zeros_like(g[:1]), g[1:] * h[:-1]])  # h_{-1} = 0
        return grad_a, g, None


def _check_inputs(u, delta, A, B, C, D, z, delta_bias) -> None:
    """Raise a ValueError naming the argument whose shape breaks selective_scan_fn's contract."""
    if u.dim() != 3:
        raise ValueError(
            f"selective_scan: u must be (batch, channels, length), got {tuple(u.shape)}"
        )
    batch, dim, length = u.shape
    if length < 1:
        raise ValueError("selective_scan: the sequence is empty (length 0)")
    if delta.shape != u.shape:
        raise ValueError(
            f"selective_scan: delta must have u's shape {tuple(u.shape)}, got {tuple(delta.shape)}"
        )
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(
            f"selective_scan: A must be (channels={dim}, d_state), got {tuple(A.shape)}"
        )
    if A.is_complex():
        raise ValueError(
            "selective_scan: complex A is not supported; pass a real (channels, "
            "d_state) matrix (Mamba uses A = -exp(A_log))"
        )
    n = A.shape[1]
    for name, m in (("B", B), ("C", C)):
        if m.shape not in ((batch, n, length), (dim, n)):
            raise ValueError(
                f"selective_scan: {name} must be (batch, d_state, length) = "
                f"{(batch, n, length)} or constant (channels, d_state) = {(dim, n)}, "
                f"got {tuple(m.shape)}"
            )
    for name, v in (("D", D), ("delta_bias", delta_bias)):
        if v is not None and v.shape != (dim,):
            raise ValueError(
                f"selective_scan: {name} must be (channels,) = ({dim},), got {tuple(v.shape)}"
            )
    if z is not None and z.shape != u.shape:
        raise ValueError(
            f"selective_scan: z must have u's shape {tuple(u.shape)}, got {tuple(z.shape)}"
        )


def selective_scan_ref(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    *,
    recurrence: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The pure-PyTorch selective scan (see the module docstring for the formula).

    u, delta, z: (B, Dm, L); A: (Dm, N) real; B, C: (B, N, L) input-dependent or (Dm, N) constant;
    D, delta_bias: (Dm,). Computes in float32 (float64 for float64 inputs) and returns y
    (B, Dm, L) in u's dtype, plus the final state h_{L-1} (B, Dm, N) in the compute dtype when
    `return_last_state`. Differentiable in every tensor argument.
    """
    _check_inputs(u, delta, A, B, C, D, z, delta_bias)
    dtype_in = u.dtype
    ct = torch.promote_types(dtype_in, torch.float32)  # compute type: at least float32
    u_t = u.to(ct).permute(2, 0, 1)  # (L, B, Dm)
    dt = delta.to(ct)
    if delta_bias is not None:
        dt = dt + delta_bias.to(ct)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    dt = dt.permute(2, 0, 1)  # (L, B, Dm)
    if _scan_method(recurrence, u_t) == "stepwise":
        y, last = _stepwise(u_t, dt, A.to(ct), B.to(ct), C.to(ct))
    else:
        y, last = _materialized(u_t, dt, A.to(ct), B.to(ct), C.to(ct), recurrence)
    if D is not None:
        y = y + u.to(ct) * D.to(ct)[:, None]
    if z is not None:
        y = y * F.silu(z.to(ct))
    y = y.to(dtype_in)
    return (y, last) if return_last_state else y


def _scan_method(recurrence: str, u_t: torch.Tensor) -> str:
    """ "auto": on CPU, the step-by-step scan once u_t (L, B, Dm) has B x Dm >=
    STEPWISE_MIN_WIDTH_CPU, else the recurrence (`linear_recurrence`'s own "auto")."""
    if recurrence not in SCANS:
        raise ValueError(f"selective_scan_ref: recurrence={recurrence!r}, expected one of {SCANS}")
    if recurrence == "auto" and not u_t.is_cuda and u_t[0].numel() >= STEPWISE_MIN_WIDTH_CPU:
        return "stepwise"
    return recurrence


def _stepwise(u_t, dt, A, B, C):
    """One step at a time: h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t, y_t = <h_t, C_t>.
    u_t, dt: (L, B, Dm) -> y (B, Dm, L), h_{L-1} (B, Dm, N)."""
    h = None
    ys = []
    for t in range(u_t.shape[0]):
        b_t = B[:, :, t][:, None, :] if B.dim() == 3 else B  # (B, 1, N) or (Dm, N)
        c_t = C[:, :, t][:, None, :] if C.dim() == 3 else C
        drive = (dt[t] * u_t[t])[..., None] * b_t  # (B, Dm, N)
        h = drive if h is None else torch.addcmul(drive, torch.exp(dt[t][..., None] * A), h)
        ys.append((h * c_t).sum(-1))  # (B, Dm)
    return torch.stack(ys, -1), h


def _materialized(u_t, dt, A, B, C, recurrence):
    """Decays and drives of all steps at once, then `linear_recurrence` over them."""
    decay = torch.exp(dt[..., None] * A)  # (L, B, Dm, N)
    if B.dim() == 3:  # input-dependent B: (B, N, L)
        drive = (dt * u_t)[..., None] * B.permute(2, 0, 1)[:, :, None, :]
    else:  # constant B: (Dm, N)
        drive = (dt * u_t)[..., None] * B
    h = linear_recurrence(decay, drive, recurrence)  # (L, B, Dm, N)
    if C.dim() == 3:
        y = torch.einsum("lbdn,bnl->bdl", h, C)
    else:
        y = torch.einsum("lbdn,dn->bdl", h, C)
    return y, h[-1]


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    *,
    use_kernel: bool | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Selective scan with `mamba_ssm`'s `selective_scan_fn` arguments, shapes and outputs.

    use_kernel: None picks the CUDA kernel when `mamba_ssm` imports and u is on CUDA (float32,
    float16 or bfloat16), else the pure path; True demands the kernel (error if it cannot run);
    False forces the pure path. On the kernel path, as in mamba_ssm, the last state is not
    differentiated (the pure path differentiates it).
    """
    if use_kernel is None:
        use_kernel = HAS_MAMBA_KERNEL and u.is_cuda and u.dtype in _KERNEL_DTYPES
    if not use_kernel:
        return selective_scan_ref(
            u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state
        )
    if not HAS_MAMBA_KERNEL:
        raise RuntimeError(
            "selective_scan(use_kernel=True): mamba_ssm is not importable; "
            "install mamba-ssm on a CUDA machine or pass use_kernel=None/False"
        )
    if not u.is_cuda:
        raise RuntimeError(
            "selective_scan(use_kernel=True): the kernel needs CUDA tensors, got "
            f"u on {u.device}; move the inputs to CUDA or pass "
            "use_kernel=None/False"
        )
    if u.dtype not in _KERNEL_DTYPES:
        raise RuntimeError(
            "selective_scan(use_kernel=True): the kernel takes u in "
            f"{_KERNEL_DTYPES}, got {u.dtype}; cast u or pass use_kernel=None/False"
        )
    _check_inputs(u, delta, A, B, C, D, z, delta_bias)
    # the kernel wants delta, z and input-dependent B/C in u's dtype, everything else in float32
    f32 = torch.float32
    result = _kernel_scan(
        u,
        delta.to(u.dtype),
        A.to(f32),
        B.to(u.dtype if B.dim() == 3 else f32),
        C.to(u.dtype if C.dim() == 3 else f32),
        None if D is None else D.to(f32),
        None if z is None else z.to(u.dtype),
        None if delta_bias is None else delta_bias.to(f32),
        delta_softplus,
        return_last_state,
    )
    if return_last_state and B.dim() == 2:
        # with a constant B the kernel folds B into the read-out and returns s with h = B * s
        y, last = result
        return y, last * B.to(f32)
    return result
