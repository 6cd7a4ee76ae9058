"""What a clip costs on CPU with the authors' released architectures (random weights, same shapes).

    python benchmarks/bench_official.py --out benchmarks/results/official_cpu.json
    python benchmarks/bench_official.py --models r50 --seconds 5      # a quicker look

For each model (`selm_r50_official_s4`: ResNet-50 at 224; `selm_pvt_b5_official_s4`: PVT-v2-b5
at 448, the release's input sizes) and each clip length, in a fresh process so peak memory is
that model's: loading the checkpoint, the demo's path from click to result (`app.handlers.
run_model` + `show_run`: read and check the video, run the windows, write the overlay and the
audio), and the CLI (`python -m selm.predict`, a process of its own, load included). Times are
wall seconds and CPU seconds (user + system, all threads); the thread count is torch's default
unless OMP_NUM_THREADS is set. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {"r50": "selm_r50_official_s4", "pvt": "selm_pvt_b5_official_s4"}


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: kilobytes


def write_clip(path: Path, seconds: int, size=(320, 240), fps: int = 10) -> Path:
    """A moving bright square over a dark background, with a 440 Hz tone."""
    from selm.media.writer import open_writer

    width, height = size
    with open_writer(path, size=size, fps=fps, sample_rate=16000) as out:
        t = np.arange(seconds * 16000) / 16000
        out.write_audio((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
        for i in range(seconds * fps):
            frame = np.full((height, width, 3), 40, np.uint8)
            x = (i * 7) % (width - 80)
            frame[80:160, x : x + 80] = 230
            out.write_frame(frame)
    return path


def measure(fn):
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = fn()
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def worker(model: str, seconds: list[int], workdir: Path) -> dict:
    """One model in this process: checkpoint, load, the demo's path per clip length."""
    import torch

    from app import handlers
    from app.validation import Limits
    from selm.build import build_selm
    from selm.inference.predictor import Predictor
    from selm.weights.checkpoint import save_pretrained

    torch.manual_seed(0)
    checkpoint = workdir / model
    save_pretrained(build_selm(MODELS[model]), checkpoint)
    predictor, load_wall, load_cpu = measure(lambda: Predictor.from_pretrained(checkpoint))
    rows = []
    for n in seconds:
        clip = write_clip(workdir / f"clip_{n}s.mp4", n)
        limits = Limits(max_seconds=60)

        def click(clip=clip, limits=limits, n=n):
            out = workdir / f"demo_{model}_{n}"
            out.mkdir(exist_ok=True)
            overlay = out / "overlay.mp4"  # written in the predicting pass, as the demo does
            pred = handlers.run_model(
                predictor,
                clip,
                handlers.AudioRequest(),
                limits=limits,
                max_side=480,
                overlay=overlay,
            )
            return handlers.show_run(
                pred, threshold=0.5, frame=0, level=0, workdir=out, overlay=overlay
            )

        _, wall, cpu = measure(click)
        rows.append(dict(model=model, seconds=n, path="demo", wall_s=wall, cpu_s=cpu))
    return dict(
        model=model,
        preset=MODELS[model],
        input_size=predictor.config.input_size,
        checkpoint=str(checkpoint),
        load_wall_s=load_wall,
        load_cpu_s=load_cpu,
        peak_mb=peak_mb(),
        rows=rows,
    )


def cli_run(checkpoint: str, clip: Path, out: Path) -> dict:
    before_cpu = cpu_seconds(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CLI, str(clip), "--checkpoint", checkpoint, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"selm.predict failed:\n{done.stderr[-2000:]}")
    peak = next(line for line in done.stderr.splitlines() if line.startswith("PEAK_KB="))
    return dict(
        wall_s=time.perf_counter() - start,
        cpu_s=cpu_seconds(resource.RUSAGE_CHILDREN) - before_cpu,
        peak_mb=int(peak.split("=")[1]) / 1024,
    )


# `python -m selm.predict ARGS` that reports its own peak RSS on stderr when it exits
_CLI = (
    "import atexit, resource, runpy, sys; "
    "atexit.register(lambda: print(f'PEAK_KB={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}',"
    " file=sys.stderr)); "
    "sys.argv = ['selm.predict', *sys.argv[1:]]; "
    "runpy.run_module('selm.predict', run_name='__main__', alter_sys=True)"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seconds", nargs="+", type=int, default=[5, 10])
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    parser.add_argument("--worker", choices=list(MODELS), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:  # one model, in its own process
        print(json.dumps(worker(args.worker, args.seconds, args.workdir)))
        return 0

    import torch

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-official-") as tmp:
        workdir = Path(tmp)
        for model in args.models:
            cmd = [sys.executable, __file__, "--worker", model, "--workdir", str(workdir)]
            done = subprocess.run(
                cmd + ["--seconds", *map(str, args.seconds)], capture_output=True, text=True
            )
            if done.returncode:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            result = json.loads(done.stdout.strip().splitlines()[-1])
            for n in args.seconds:
                clip = workdir / f"clip_{n}s.mp4"
                cli = cli_run(result["checkpoint"], clip, workdir / f"cli_{model}_{n}.mp4")
                result["rows"].append(dict(model=model, seconds=n, path="cli", **cli))
            results.append(result)
    meta = dict(
        machine=platform.processor() or platform.machine(),
        cpus=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
        load_average_after=os.getloadavg(),
        torch=torch.__version__,
        python=platform.python_version(),
        weights="random (the released architectures and shapes; the cost does not depend on them)",
    )
    print(f"{'model':28s} {'input':>5s} {'clip':>5s} {'path':>5s} {'wall s':>8s} {'CPU s':>8s}")
    for result in results:
        for row in result["rows"]:
            print(
                f"{result['preset']:28s} {result['input_size']:5d} {row['seconds']:4d}s "
                f"{row['path']:>5s} {row['wall_s']:8.1f} {row['cpu_s']:8.1f}"
            )
        cli_peak = max(r.get("peak_mb", 0) for r in result["rows"])
        print(
            f"  load {result['load_wall_s']:.1f} s wall / {result['load_cpu_s']:.1f} s CPU; "
            f"peak RSS {result['peak_mb']:.0f} MB (demo path), {cli_peak:.0f} MB (CLI)"
        )
    print(json.dumps(meta))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(dict(meta=meta, results=results), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
