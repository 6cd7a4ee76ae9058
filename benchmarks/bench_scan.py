"""Time the selective scan and stacks of Mamba blocks at the BCSM's shapes.

Scan: batch = B clips x 4 levels (4 or 16), d_inner 512 (D = 256) or 128 (D = 64), L = T frames
(5, 10), d_state 16; the pure path with each recurrence ("sequential" per-step loop, "parallel"
prefix scan, "auto" what `selective_scan` runs) and, on CUDA with mamba_ssm, the kernel.
Mamba: the BCSM's 24 blocks as it runs them, 8 stacks (4 levels x audio/video) of 3
LayerNorm + Mamba blocks, each stack on its own (B, 5, D) input.
Each row is the median over repeats, forward alone and forward + backward.

    python benchmarks/bench_scan.py --device cpu --out scan_cpu.json
    python benchmarks/bench_scan.py --device cuda --lengths 5,10,32,64,128,256
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
from selm.config import SelMConfig  # noqa: E402
from selm.modeling.bcsm import MambaStack  # noqa: E402
from selm.modeling.ssm import HAS_MAMBA_KERNEL, selective_scan, selective_scan_ref  # noqa: E402


def time_ms(fn: Callable[[], None], device: torch.device, repeats: int, warmup: int) -> float:
    """Median wall time of fn() in milliseconds (CUDA work synchronised)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def scan_inputs(batch: int, dim: int, length: int, n: int, device: torch.device) -> dict:
    g = torch.Generator().manual_seed(0)

    def r(*shape):
        return torch.randn(*shape, generator=g).to(device)

    return {
        "u": r(batch, dim, length),
        "delta": r(batch, dim, length) * 0.5,
        "A": -torch.arange(1.0, n + 1).repeat(dim, 1).to(device),
        "B": r(batch, n, length),
        "C": r(batch, n, length),
        "D": r(dim),
        "z": r(batch, dim, length),
        "delta_bias": r(dim) * 0.3,
    }


def scan_variants(device: torch.device) -> dict[str, Callable]:
    variants = {
        f"pure-{method}": partial(selective_scan_ref, delta_softplus=True, recurrence=method)
        for method in ("auto", "sequential", "parallel", "stepwise")
    }
    try:  # measured side by side when installed (`pip install mambapy`); never a dependency
        from mambapy.pscan import pscan

        variants["mambapy-pscan"] = partial(_mambapy_scan, pscan)
    except ImportError:
        pass
    if device.type == "cuda" and HAS_MAMBA_KERNEL:
        variants["kernel"] = partial(selective_scan, delta_softplus=True, use_kernel=True)
    return variants


def _mambapy_scan(pscan, u, delta, A, B, C, D=None, z=None, delta_bias=None, **_):
    """The same scan through mambapy's parallel scan (its MambaBlock.selective_scan's math)."""
    dt = torch.nn.functional.softplus(delta + delta_bias[:, None]).transpose(1, 2)  # (B, L, Dm)
    x = u.transpose(1, 2)
    decay = torch.exp(dt.unsqueeze(-1) * A)  # (B, L, Dm, N)
    drive = (dt * x).unsqueeze(-1) * B.transpose(1, 2).unsqueeze(2)  # (B, L, Dm, N)
    hs = pscan(decay, drive)
    y = (hs @ C.transpose(1, 2).unsqueeze(-1)).squeeze(3) + D * x
    return (y * torch.nn.functional.silu(z.transpose(1, 2))).transpose(1, 2)


def scan_forward(fn: Callable, inputs: dict) -> None:
    with torch.no_grad():
        fn(**inputs)


def scan_backward(fn: Callable, leaves: dict) -> None:
    fn(**leaves).sum().backward()


def run_stacks(stacks: torch.nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    return sum(stack(x) for stack in stacks)


def stacks_forward(stacks: torch.nn.ModuleList, x: torch.Tensor) -> None:
    with torch.no_grad():
        run_stacks(stacks, x)


def stacks_backward(stacks: torch.nn.ModuleList, x: torch.Tensor) -> None:
    run_stacks(stacks, x).sum().backward()


def bench_scans(args, device: torch.device) -> list[dict]:
    rows = []
    for batch in args.batches:
        for dim in args.dims:
            for length in args.lengths:
                inputs = scan_inputs(batch, dim, length, args.d_state, device)
                leaves = {k: v.clone().requires_grad_() for k, v in inputs.items()}
                for name, fn in scan_variants(device).items():
                    if args.variants and name not in args.variants:
                        continue
                    forward = partial(scan_forward, fn, inputs)
                    backward = partial(scan_backward, fn, leaves)
                    rows.append(
                        {
                            "bench": "scan",
                            "variant": name,
                            "batch": batch,
                            "d_inner": dim,
                            "length": length,
                            "d_state": args.d_state,
                            "forward_ms": time_ms(forward, device, args.repeats, args.warmup),
                            "fwd_bwd_ms": time_ms(backward, device, args.repeats, args.warmup),
                        }
                    )
    return rows


def bench_mamba_stacks(args, device: torch.device) -> list[dict]:
    rows = []
    kernel_modes = {"auto": None}
    if device.type == "cuda" and HAS_MAMBA_KERNEL:
        kernel_modes = {"kernel": True, "pure": False}
    for d_model in (256, 64):
        torch.manual_seed(0)
        cfg = SelMConfig(dim=d_model, bcsm_depth=3)
        stacks = torch.nn.ModuleList(MambaStack(cfg) for _ in range(8)).to(device)
        for clips in (1, 4):
            x = torch.randn(clips, 5, d_model, device=device)
            for mode, use_kernel in kernel_modes.items():
                for layer in stacks.modules():
                    if hasattr(layer, "use_kernel"):
                        layer.use_kernel = use_kernel
                forward = partial(stacks_forward, stacks, x)
                backward = partial(stacks_backward, stacks, x)
                rows.append(
                    {
                        "bench": "24 Mamba blocks",
                        "variant": mode,
                        "batch": clips,
                        "d_model": d_model,
                        "length": 5,
                        "forward_ms": time_ms(forward, device, args.repeats, args.warmup),
                        "fwd_bwd_ms": time_ms(backward, device, args.repeats, args.warmup),
                    }
                )
    return rows


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'bench':<18}{'variant':<17}{'batch':>6}{'dim':>6}{'L':>5}{'fwd ms':>10}{'f+b ms':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        dim = r.get("d_inner", r.get("d_model"))
        print(
            f"{r['bench']:<18}{r['variant']:<17}{r['batch']:>6}{dim:>6}{r['length']:>5}"
            f"{r['forward_ms']:>10.3f}{r['fwd_bwd_ms']:>10.3f}"
        )


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", help="write the results as JSON to this file")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per row (median)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs before timing")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--batches", type=ints, default=[4, 16], help="scan batch sizes")
    parser.add_argument("--dims", type=ints, default=[512, 128], help="scan d_inner values")
    parser.add_argument("--lengths", type=ints, default=[5, 10], help="scan lengths")
    parser.add_argument("--d-state", type=int, default=16)
    parser.add_argument(
        "--variants",
        type=lambda text: [v for v in text.split(",") if v],
        default=None,
        help="scan variants to time, comma-separated (default: all; e.g. pure-auto,mambapy-pscan)",
    )
    parser.add_argument("--skip-mamba", action="store_true", help="time the scan only")
    parser.add_argument("--skip-scan", action="store_true", help="time the Mamba blocks only")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here; use --device cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = [] if args.skip_scan else bench_scans(args, device)
    if not args.skip_mamba:
        rows += bench_mamba_stacks(args, device)
    print_table(rows)
    result = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "mamba_kernel": HAS_MAMBA_KERNEL and device.type == "cuda",
        "repeats": args.repeats,
        "rows": rows,
    }
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
