"""`python -m train.synth --out DIR --clips N --seed S [--size 224] [--layout s4|ms3|avss|all]
[--counterfactuals] [--mp4] [--difficulty default|hard]`: write an AVS-Synth data set."""

from __future__ import annotations

import argparse
import sys
import time

from selm.presets import SETTINGS
from train.synth.generate import generate, split_sizes
from train.synth.writer import DIFFICULTIES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.synth", description=__doc__)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--clips", type=int, default=20, help="clips per layout, split 70/15/15 into train/val/test"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=224, help="frame side in pixels")
    parser.add_argument("--layout", choices=[*SETTINGS, "all"], default="all")
    parser.add_argument(
        "--counterfactuals",
        action="store_true",
        help="also write counterfactual/{silent,noise,swapped,offscreen}/",
    )
    parser.add_argument("--mp4", action="store_true", help="also write mp4 clips with audio")
    parser.add_argument(
        "--difficulty",
        choices=DIFFICULTIES,
        default="default",
        help="hard: 2-4 objects with a silent one in every clip, off-screen sounds, 0-15 dB SNR, "
        "sub-second onsets, occlusion, camera pan (train/synth/hard.py)",
    )
    parser.add_argument("--fps", type=int, default=24, help="mp4 frame rate")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: CPUs)")
    parser.add_argument("--overwrite", action="store_true", help="replace earlier output")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    layouts = SETTINGS if args.layout == "all" else (args.layout,)
    try:
        sizes = split_sizes(args.clips, min_test=2 if args.counterfactuals else 1)
        start = time.perf_counter()
        out = generate(
            args.out,
            seed=args.seed,
            size=args.size,
            layouts=layouts,
            sizes=sizes,
            counterfactuals=args.counterfactuals,
            mp4=args.mp4,
            fps=args.fps,
            workers=args.workers,
            overwrite=args.overwrite,
            progress=not args.quiet,
            difficulty=args.difficulty,
        )
    except (ValueError, OSError) as e:  # FileExistsError, a full disk (no partial set is left)
        print(f"error: {e}", file=sys.stderr)
        return 2
    total = sum(sizes.values()) * len(layouts)
    elapsed = time.perf_counter() - start
    print(
        f"wrote {total} clips ({', '.join(layouts)}; train/val/test {sizes['train']}/"
        f"{sizes['val']}/{sizes['test']} each) to {out} in {elapsed:.1f} s "
        f"({total / elapsed:.1f} clips/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
