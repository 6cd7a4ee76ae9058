"""AVS-Synth generation speed and loader throughput.

    python benchmarks/bench_data.py [--clips 200] [--size 224] [--workers 2] [--layout ms3]

Generation: clips per second written with `--workers` processes (all files: frames, masks,
log-mel pickle, wav; `--counterfactuals` adds the four test-set versions). Loader: clips per
second through a DataLoader with `--workers` workers at `--size`, log-mel from the pickles.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from selm.presets import SETTINGS  # noqa: E402
from train.data import build_dataset  # noqa: E402
from train.synth import generate, split_sizes  # noqa: E402


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the workers)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bench_generation(out: Path, args) -> dict:
    start, cpu = time.perf_counter(), _cpu_seconds()
    generate(
        out,
        clips=args.clips,
        seed=0,
        size=args.size,
        layouts=(args.layout,),
        counterfactuals=args.counterfactuals,
        workers=args.workers,
        progress=False,
    )
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    # on a shared machine wall time depends on the neighbours; CPU time / workers does not
    return dict(
        clips=args.clips,
        seconds=round(seconds, 2),
        cpu_seconds=round(cpu, 2),
        clips_per_s=round(args.clips / seconds, 1),
        clips_per_s_on_free_cores=round(args.clips * args.workers / cpu, 1),
        projected_1000_clips_s=round(1000 * cpu / args.workers / args.clips, 1),
    )


def bench_loader(root: Path, args) -> dict:
    dataset = build_dataset(args.layout, root, "train", size=args.size)
    loader = DataLoader(
        dataset, batch_size=args.batch_size, num_workers=args.workers, persistent_workers=False
    )
    next(iter(loader))  # imports warm
    start, cpu, clips = time.perf_counter(), _cpu_seconds(), 0
    for _ in range(args.epochs):
        for batch in loader:  # workers exit at the end of each epoch: their CPU time counts
            clips += batch["frames"].shape[0]
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    return dict(
        clips=clips,
        seconds=round(seconds, 2),
        cpu_seconds=round(cpu, 2),
        clips_per_s=round(clips / seconds, 1),
        clips_per_s_on_free_cores=round(clips * max(args.workers, 1) / cpu, 1),
        frames_per_s=round(clips * dataset.num_frames / seconds, 1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--layout", default="ms3", choices=SETTINGS)
    parser.add_argument("--counterfactuals", action="store_true")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        results = dict(
            setup=dict(
                size=args.size,
                workers=args.workers,
                layout=args.layout,
                counterfactuals=args.counterfactuals,
                splits=split_sizes(args.clips),
            ),
            generation=bench_generation(Path(tmp), args),
            loader=bench_loader(Path(tmp), args),
        )
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
