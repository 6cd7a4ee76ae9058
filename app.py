"""SelM demo: `python app.py` serves it on http://127.0.0.1:7860 with the bundled model.

This file only parses flags, loads the default predictor and launches; the demo itself is in
`app/`. On Hugging Face Spaces (SPACE_ID set) it binds 0.0.0.0 and the port the Space gives
(PORT / GRADIO_SERVER_PORT), and wraps model runs in `spaces.GPU` when that package exists.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from selm.runtime import yield_idle_threads

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
yield_idle_threads()  # a Space's CPU is shared; app.py imports torch only in main()

DEFAULT_CHECKPOINT = "assets/checkpoints/selm-synth"
DEFAULT_EXAMPLES = "assets/examples"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    on_space = bool(os.environ.get("SPACE_ID"))
    host = os.environ.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if on_space else "127.0.0.1")
    port = int(os.environ.get("PORT") or os.environ.get("GRADIO_SERVER_PORT") or 7860)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=None,
        metavar="DIR_OR_REPO",
        help="checkpoint directory or Hugging Face repo id; repeat to offer "
        "several (the first is the default). Default: "
        f"{DEFAULT_CHECKPOINT} and the checkpoints beside it",
    )
    parser.add_argument(
        "--examples-dir",
        default=DEFAULT_EXAMPLES,
        help="folder of example clips (default: %(default)s)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=60.0,
        help="longest clip accepted, in seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=1920 * 1080,
        help="largest frame accepted, W x H pixels (default: %(default)s)",
    )
    parser.add_argument(
        "--max-side",
        type=int,
        default=480,
        help="longest side of the videos and maps shown (default: %(default)s)",
    )
    parser.add_argument("--host", default=host, help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=port, help="port (default: %(default)s)")
    parser.add_argument("--share", action="store_true", help="also open a gradio.live link")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if present)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="model runs at the same time; others wait in the queue",
    )
    parser.add_argument(
        "--no-warmup", action="store_true", help="skip the one-second warm-up run at start-up"
    )
    return parser.parse_args(argv)


def gpu_decorator():
    """`spaces.GPU` on Hugging Face ZeroGPU, else None (the package is absent elsewhere)."""
    try:
        import spaces
    except ImportError:
        return None
    return spaces.GPU(duration=120)


def main(argv: list[str] | None = None) -> None:
    start = time.perf_counter()
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    log = logging.getLogger("selm.demo")

    import torch

    from app.examples import find_checkpoints, find_examples
    from app.state import PredictorPool
    from app.ui import DemoSettings, build_demo
    from app.validation import Limits
    from selm.checkpoint import CheckpointError
    from selm.predictor import Predictor

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    checkpoints = find_checkpoints(args.checkpoint, DEFAULT_CHECKPOINT)
    default_spec = next(iter(checkpoints.values()))
    try:
        default = Predictor.from_pretrained(default_spec, device=device)
    except CheckpointError as err:
        sys.exit(
            f"error: the default checkpoint cannot be loaded: {err}\n"
            "Pass one with --checkpoint DIR_OR_REPO."
        )
    if not args.no_warmup:
        warm_up(default)
    pool = PredictorPool(
        lambda spec: Predictor.from_pretrained(spec, device=device), pinned={default_spec: default}
    )
    settings = DemoSettings(
        checkpoints=checkpoints,
        examples=find_examples(args.examples_dir),
        limits=Limits(max_seconds=args.max_seconds, max_pixels=args.max_pixels),
        max_side=args.max_side,
        concurrency=args.concurrency,
        gpu=gpu_decorator(),
    )
    demo = build_demo(settings, pool)
    log.info(
        "model %s on %s, %d examples; ready in %.1f s",
        default_spec,
        device,
        len(settings.examples),
        time.perf_counter() - start,
    )
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        show_error=True,
        allowed_paths=[os.path.abspath(args.examples_dir)],
    )


def warm_up(predictor) -> None:
    """One second of grey frames and silence, so the first user does not pay for lazy setup."""
    import numpy as np

    from selm.audio import SAMPLE_RATE
    from selm.media import FRAME_OFFSET, Clip

    size = predictor.config.input_size
    clip = Clip(
        frames=np.full((1, size, size, 3), 128, np.uint8),
        times=np.array([float(FRAME_OFFSET)]),
        waveform=np.zeros(SAMPLE_RATE, np.float32),
        duration=1.0,
        fps=1.0,
        width=size,
        height=size,
        source="warm-up",
    )
    predictor.predict(clip, audio="original")


if __name__ == "__main__":
    main()
