"""Forward-time benchmark of SelM presets: full model, backbone alone, the 24 Mamba blocks and
the mask head alone (CLEVER's `proj`, on the inputs the full forward gave it).

Prints a table and writes JSON. B 5-frame clips at 224 (log-mel audio through VGGish), eval
mode; the `family` rows are the model family's width and input (D = 32, 64 px) with either head.
`--compile` also times the forward (and the backbone alone) through `torch.compile` (mode
"default", or "reduce-overhead", which replays CUDA graphs on CUDA); `--train-step` times one
training step (forward, SelM's loss, backward, AdamW) in train mode.
    python benchmarks/bench_model.py --device cpu --out bench_cpu.json
    python benchmarks/bench_model.py --device cuda --dtypes float32 bfloat16 --out bench_cuda.json
    python benchmarks/bench_model.py --device cuda --clips 1 4 --compile none reduce-overhead \
        --train-step --presets selm_r50 selm_pvt_b5
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from selm import build_selm  # noqa: E402
from selm.losses import selm_loss  # noqa: E402
from selm.modeling import ssm  # noqa: E402
from selm.modeling.bcsm import MambaStack  # noqa: E402

# row name -> (preset, overrides)
PRESETS = {
    "selm_tiny": ("selm_tiny", {}),
    "selm_tiny/light": ("selm_tiny", dict(mask_head="light")),
    "family/full": ("selm_tiny", dict(input_size=64, dim=32)),
    "family/light": ("selm_tiny", dict(input_size=64, dim=32, mask_head="light")),
    "selm_r50": ("selm_r50", {}),
    # the paper's input size; the release's PVT runs at 448
    "selm_pvt_b5": ("selm_pvt_b5", dict(input_size=224, output_size=None, mask_upsample_steps=2)),
}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _time(fn, device: str, iters: int, warmup: int) -> float:
    """Median milliseconds of `fn()`."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _compiled(fn, mode: str):
    return fn if mode == "none" else torch.compile(fn, mode=mode)


def train_step_ms(model, frames, audio, device, iters, warmup) -> float:
    """Median ms of one training step: forward, selm_loss on random masks, backward, AdamW."""
    model.train()
    cfg = model.config
    side = cfg.output_size or cfg.input_size
    g = torch.Generator(device="cpu").manual_seed(0)
    masks = torch.rand(frames.shape[0], frames.shape[1], side, side, generator=g) > 0.5
    masks = masks.float().to(device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        loss, _ = selm_loss(model(frames, audio), masks, None, cfg)
        loss.backward()
        opt.step()

    ms = _time(step, device, iters, warmup)
    model.eval()
    return ms


def bench_preset(
    row, device, dtype, iters, warmup, kernel, clips=1, compile_mode="none", train_step=False
):
    name, overrides = PRESETS[row]
    torch.manual_seed(0)
    model = build_selm(name, **overrides).to(device).eval()
    size, t = model.config.input_size, 5
    frames = torch.randn(clips, t, 3, size, size, device=device)
    audio = torch.randn(clips, t, 1, 96, 64, device=device)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    saved_flag = ssm.HAS_MAMBA_KERNEL
    ssm.HAS_MAMBA_KERNEL = saved_flag and kernel

    # capture the inputs of the 8 Mamba stacks (4 levels x video/audio x 3 blocks = 24 blocks)
    captured, head = [], []
    hooks = [
        m.register_forward_pre_hook(lambda mod, args: captured.append((mod, args)))
        for m in model.modules()
        if isinstance(m, MambaStack)
    ]
    hooks.append(model.decoder.proj.register_forward_pre_hook(lambda m, a: head.append((m, a))))
    with torch.inference_mode(), autocast:
        eager_logits = model(frames, audio).logits
    for h in hooks:
        h.remove()
    blocks = sum(len(getattr(mod, "layers", [])) for mod, _ in captured)
    flat = frames.flatten(0, 1)

    def backbone_only():
        x = model.encoder.backbone.stem(flat)
        for s in range(4):
            x = model.encoder.backbone.stage(s, x)
        return x

    forward = _compiled(model, compile_mode)
    backbone_fn = _compiled(backbone_only, compile_mode)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    # compiled functions are traced outside inference mode (inference tensors cannot be saved)
    grad_mode = torch.inference_mode() if compile_mode == "none" else torch.no_grad()
    with grad_mode, autocast:
        begin = time.perf_counter()
        logits = forward(frames, audio).logits
        _sync(device)
        first_ms = (time.perf_counter() - begin) * 1e3
        max_diff = float((logits.float() - eager_logits.float()).abs().max())
        full = _time(lambda: forward(frames, audio), device, iters, warmup)
        backbone = _time(backbone_fn, device, iters, warmup)
        mamba = _time(lambda: [mod(*args) for mod, args in captured], device, iters, warmup)
        head_ms = _time(lambda: head[0][0](*head[0][1]), device, iters, warmup)
    step_ms = None
    if train_step:
        with autocast:
            step_ms = train_step_ms(model, frames, audio, device, iters, warmup)
    ssm.HAS_MAMBA_KERNEL = saved_flag
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return dict(
        row=row,
        preset=name,
        mask_head=model.config.mask_head,
        input_size=size,
        clips=clips,
        frames=t,
        device=device,
        dtype=dtype,
        compile=compile_mode,
        scan="mamba_ssm kernel" if (kernel and saved_flag and device == "cuda") else "pure PyTorch",
        first_call_ms=first_ms,
        max_abs_diff_vs_eager=max_diff,
        full_ms=full,
        backbone_ms=backbone,
        mamba_blocks=blocks,
        mamba_ms=mamba,
        head_ms=head_ms,
        head_share=head_ms / full,
        full_over_backbone=full / backbone,
        train_step_ms=step_ms,
        peak_mib=peak,
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    p.add_argument("--dtypes", nargs="+", default=["float32"], choices=["float32", "bfloat16"])
    p.add_argument("--iters", type=int, default=None, help="timed runs (default 20 cuda, 3 cpu)")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--both-scans", action="store_true", help="also time the pure scan on CUDA")
    p.add_argument("--clips", nargs="+", type=int, default=[1], help="batch sizes B (clips)")
    p.add_argument(
        "--compile",
        nargs="+",
        default=["none"],
        choices=["none", "default", "reduce-overhead", "max-autotune"],
        help="torch.compile modes to time (none = eager); reduce-overhead uses CUDA graphs",
    )
    p.add_argument("--train-step", action="store_true", help="also time one training step")
    p.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = p.parse_args(argv)
    iters = args.iters or (20 if args.device == "cuda" else 3)
    warmup = args.warmup if args.warmup is not None else (5 if args.device == "cuda" else 1)
    kernels = [True, False] if (args.device == "cuda" and args.both_scans) else [True]
    rows = []
    head = (
        f"{'row':16} {'B':>2} {'compile':15} {'dtype':9} {'scan':17} {'full ms':>9} "
        f"{'backbone':>9} {'ratio':>6} {'24 Mamba':>9} {'head ms':>8} {'head %':>6} "
        f"{'step ms':>9} {'peak MiB':>9}"
    )
    print(head + "\n" + "-" * len(head))
    for name in args.presets:
        for clips in args.clips:
            for mode in args.compile:
                for dtype in args.dtypes:
                    for kernel in kernels:
                        r = bench_preset(
                            name,
                            args.device,
                            dtype,
                            iters,
                            warmup,
                            kernel,
                            clips,
                            mode,
                            args.train_step,
                        )
                        rows.append(r)
                        step = "" if r["train_step_ms"] is None else f"{r['train_step_ms']:.2f}"
                        print(
                            f"{name:16} {clips:2d} {mode:15} {dtype:9} {r['scan']:17} "
                            f"{r['full_ms']:9.2f} {r['backbone_ms']:9.2f} "
                            f"{r['full_over_backbone']:6.2f} {r['mamba_ms']:9.2f} "
                            f"{r['head_ms']:8.2f} {100 * r['head_share']:6.1f} {step:>9} "
                            f"{r['peak_mib']:9.0f}",
                            flush=True,
                        )
    meta = dict(
        machine=torch.cuda.get_device_name()
        if args.device == "cuda"
        else platform.processor() or platform.machine(),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        iters=iters,
        warmup=warmup,
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(dict(meta=meta, rows=rows), indent=2))
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
