"""SelM demo: `python app.py` serves it on http://127.0.0.1:7860 with the bundled model.

This file only parses flags, loads the default predictor and launches; the demo itself is in
`app/`. On Hugging Face Spaces (SPACE_ID set) it binds 0.0.0.0 and the port the Space gives
(PORT / GRADIO_SERVER_PORT), and wraps model runs in `spaces.GPU` when that package exists.

The app owns its cache folder (`--cache-dir`, gradio's GRADIO_TEMP_DIR; by default one per
port): locked while it runs, so that no other start-up empties it, emptied at start-up and
again at shutdown (Ctrl-C or SIGTERM, after the requests in flight have stopped), so no upload
or output outlives the process. Everything the demo writes goes there.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import socket
import sys
import tempfile
import time

from selm.inference.options import check_side
from selm.runtime import yield_idle_threads

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
yield_idle_threads()  # a Space's CPU is shared; app.py imports torch only in main()

DEFAULT_CHECKPOINT = "assets/checkpoints/selm-hard"
DEFAULT_EXAMPLES = "assets/examples"
SHUTDOWN_WAIT = 10.0  # s a request in flight has, at shutdown, to reach its next progress report


def fail(message: str) -> None:
    """One line on stderr and exit status 2, as argparse does for a bad flag."""
    print(f"app.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def positive(kind):
    """An argparse type: a finite number of `kind` (float or int) above 0."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: give a number above 0")
        return value

    parse.__name__ = kind.__name__  # what argparse calls it in messages
    return parse


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
        help="checkpoint directory, Hugging Face repo id, official:NAME (the authors' models, "
        "e.g. official:s4_pvt) or a published .pth; repeat to offer "
        "several (the first is the default). Default: "
        f"{DEFAULT_CHECKPOINT} and the checkpoints beside it",
    )
    parser.add_argument(
        "--examples-dir",
        default=DEFAULT_EXAMPLES,
        help="folder of example clips (default: %(default)s)",
    )
    _limit_flags(parser)
    parser.add_argument(
        "--allow-any-checkpoint",
        action="store_true",
        help="let users load any checkpoint directory or Hub repo they type (your own machine "
        "only; without it only the listed checkpoints and official:NAME load)",
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="the app's own folder for uploads and outputs; emptied at start and at shutdown, "
        "never while another running demo holds it (default: "
        f"{os.path.join(tempfile.gettempdir(), 'selm-demo-PORT')})",
    )
    parser.add_argument("--host", default=host, help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=port, help="port (default: %(default)s)")
    parser.add_argument("--share", action="store_true", help="also open a gradio.live link")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if present)")
    parser.add_argument(
        "--concurrency",
        type=positive(int),
        default=1,
        help="model runs at the same time; others wait in the queue",
    )
    parser.add_argument(
        "--no-warmup", action="store_true", help="skip the one-second warm-up run at start-up"
    )
    parser.add_argument(
        "--no-official",
        action="store_true",
        help="do not list the authors' six published models (official:*, fetched on first pick)",
    )
    args = parser.parse_args(argv)
    try:
        check_side(args.max_side, "--max-side")
    except ValueError as err:
        parser.error(str(err))
    if args.cache_dir is None:  # one per instance: two demos never share one by default
        args.cache_dir = os.path.join(tempfile.gettempdir(), f"selm-demo-{args.port}")
    return args


def _limit_flags(parser: argparse.ArgumentParser) -> None:
    """What visitors may send and what the app keeps for them."""
    parser.add_argument(
        "--max-seconds",
        type=positive(float),
        default=60.0,
        help="longest clip accepted, in seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--max-pixels",
        type=positive(int),
        default=1920 * 1080,
        help="largest frame accepted, W x H pixels (default: %(default)s)",
    )
    parser.add_argument(
        "--max-side",
        type=positive(int),
        default=480,
        help="longest side of the videos and maps shown (default: %(default)s)",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=positive(float),
        default=50.0,
        help="largest file a visitor may upload, in MB (default: %(default)s)",
    )
    parser.add_argument(
        "--session-mb",
        type=positive(float),
        default=1024.0,
        help="memory for all sessions' results kept for redrawing, in MB; the least recently "
        "used are dropped first (default: %(default)s)",
    )
    parser.add_argument(
        "--session-ttl",
        type=positive(float),
        default=3600.0,
        help="seconds a session's results are kept after their last use (default: %(default)s)",
    )


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

    from app.state import CacheDir

    check_port(args.host, args.port)
    cache = CacheDir(args.cache_dir)
    try:
        # gradio's uploads and outputs (set before gradio is imported); the per-request
        # folders lie beside it, so their files are copied into gradio's cache, not left
        os.environ["GRADIO_TEMP_DIR"] = str(cache.reset() / "gradio")
    except ValueError as err:
        fail(str(err))
    settings, pool, default_spec, device = load(args, cache)

    from app.ui import build_demo

    demo = build_demo(settings, pool)
    log.info(
        "model %s on %s, %d examples; ready in %.1f s",
        default_spec,
        device,
        len(settings.examples),
        time.perf_counter() - start,
    )
    serve(demo, args, cache, settings.requests)


def check_port(host: str, port: int) -> None:
    """Fail in one line, before the model loads, when `port` on `host` is taken (binding as the
    server will, with SO_REUSEADDR, so a port left in TIME_WAIT counts as free)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as err:
        fail(
            f"cannot serve on {host}:{port} ({err.strerror or err}); another server (another "
            "demo?) uses that port: stop it, or give --port another number"
        )


def load(args: argparse.Namespace, cache):
    """The demo's settings and predictor pool, with the default model loaded (and warmed up)
    -> (settings, pool, the default's spec, the device)."""
    import torch

    from app.examples import find_checkpoints, find_examples
    from app.official import with_official
    from app.settings import DemoSettings
    from app.state import PredictorPool, ResultStore
    from app.validation import Limits
    from selm.inference.options import check_device
    from selm.inference.predictor import Predictor
    from selm.weights.checkpoint import CheckpointError

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        check_device(device, "--device")
    except ValueError as err:
        fail(str(err))
    checkpoints = find_checkpoints(args.checkpoint, DEFAULT_CHECKPOINT)
    if not args.no_official:
        checkpoints = with_official(checkpoints)
    default_spec = next(iter(checkpoints.values()))
    try:
        default = Predictor.from_pretrained(default_spec, device=device)
    except CheckpointError as err:
        fail(
            f"the default checkpoint cannot be loaded: {err}; pass one with --checkpoint "
            "DIR_OR_REPO (or official:NAME)"
        )
    if not args.no_warmup:
        warm_up(default)
    pool = PredictorPool(
        lambda spec: Predictor.from_pretrained(spec, device=device), pinned={default_spec: default}
    )
    settings = DemoSettings(
        checkpoints=checkpoints,
        examples=find_examples(args.examples_dir),
        limits=Limits(
            max_seconds=args.max_seconds,
            max_pixels=args.max_pixels,
            max_upload_mb=args.max_upload_mb,
        ),
        max_side=args.max_side,
        concurrency=args.concurrency,
        gpu=gpu_decorator(),
        allow_any_checkpoint=args.allow_any_checkpoint,
        store=ResultStore(max_bytes=int(args.session_mb * 2**20), ttl=args.session_ttl),
        cache_dir=cache.path / "requests",
    )
    return settings, pool, default_spec, device


def serve(demo, args: argparse.Namespace, cache, requests) -> None:
    """Launch until Ctrl-C or SIGTERM; then the requests in flight stop (`Requests.close`) and
    the cache folder is emptied whatever happens."""

    def stop(signum, frame):  # SIGTERM (a Space stopping, `kill`): leave through the finally
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        demo.launch(
            server_name=args.host,
            server_port=args.port,
            share=args.share,
            show_error=True,
            allowed_paths=[os.path.abspath(args.examples_dir)],
            max_file_size=int(args.max_upload_mb * 2**20),  # bytes
        )
    except OSError as err:  # the port was taken after check_port
        fail(f"cannot serve on {args.host}:{args.port} ({err}); give --port another number")
    finally:
        drained = requests.close(SHUTDOWN_WAIT)
        demo.close()
        cache.clear()
        cache.release()
        logging.getLogger("selm.demo").info("stopped; cache folder %s emptied", cache.path)
        if not drained:  # a request stuck past SHUTDOWN_WAIT must not write after the clear
            logging.shutdown()
            os._exit(0)


def warm_up(predictor) -> None:
    """One second of grey frames and silence, so the first user does not pay for lazy setup."""
    import numpy as np

    from selm.media.video import FRAME_OFFSET, Clip
    from selm.transforms.log_mel import SAMPLE_RATE

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
