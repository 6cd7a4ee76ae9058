"""Segment the sounding objects of a video from the command line.

    python -m selm.predict VIDEO --checkpoint DIR_OR_REPO [--audio FILE | --mute | --noise]
        [--out out.mp4] [--threshold 0.5] [--device cpu] [--masks-dir DIR] [--json FILE]

Writes the video with the masks drawn on it (and the audio the model heard), prints the
segmented area of every second, and optionally one mask PNG per second and a JSON summary.
"""

from __future__ import annotations

from selm.runtime import yield_idle_threads

yield_idle_threads()  # before torch loads OpenMP: `python -m selm.predict` runs this first

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from selm.files import atomic_path, remove_stale_temporaries  # noqa: E402
from selm.inference.audio_source import AudioSource  # noqa: E402
from selm.inference.options import (  # noqa: E402
    VIDEO_SUFFIXES,
    check_device,
    check_max_seconds,
    check_threshold,
)
from selm.inference.prediction import Prediction  # noqa: E402
from selm.inference.predictor import Predictor, check_inputs  # noqa: E402
from selm.media.container import MediaError, MediaWarning  # noqa: E402
from selm.media.video import VideoStream  # noqa: E402
from selm.render.overlay import OverlayVideo  # noqa: E402

BAR = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}"
PROG = "python -m selm.predict"
TERMINATED = 128 + signal.SIGTERM  # the exit status of a run stopped by SIGTERM


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Segment the objects that make the sound of each second of a video (SelM). "
        "The model sees one frame per second (at i + 14/16 s) and hears that second's audio.",
        epilog="example: python -m selm.predict dog.mp4 --checkpoint checkpoints/selm_tiny "
        "--noise --out dog_noise.mp4",
    )
    parser.add_argument("video", type=Path, help="video file (mp4, webm, mov, avi, mkv, ...)")
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="checkpoint folder (config.json + model.safetensors) or Hub repo id",
    )
    heard = parser.add_mutually_exclusive_group()
    heard.add_argument(
        "--audio",
        type=Path,
        metavar="FILE",
        help="let the model hear this audio file instead of the video's track",
    )
    heard.add_argument("--mute", action="store_true", help="let the model hear silence (zeros)")
    heard.add_argument("--noise", action="store_true", help="let the model hear white noise")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="overlay video to write (default: VIDEO_selm.mp4 in the current folder)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="probability above which a pixel is segmented (binary models)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="refuse videos longer than this many seconds",
    )
    parser.add_argument(
        "--masks-dir",
        type=Path,
        default=None,
        help="also write one mask PNG per second here (0/255, or class ids)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write a JSON summary here")
    return parser


def summarize(pred: Prediction, threshold: float) -> dict:
    """Per second: the segmented fraction of the frame (and, for semantic models, per class)."""
    seconds = []
    for time, mask in zip(pred.times, pred.iter_masks(threshold)):
        entry = {"time": float(time), "area": float((mask > 0).mean())}
        if pred.num_classes > 1:
            ids, counts = np.unique(mask[mask > 0], return_counts=True)
            entry["classes"] = {int(i): float(c / mask.size) for i, c in zip(ids, counts)}
        seconds.append(entry)
    return {
        "source": pred.source,
        "audio": pred.audio_label,
        "duration": pred.duration,
        "fps": pred.fps,
        "threshold": threshold,
        "num_classes": pred.num_classes,
        "seconds": seconds,
    }


# the CLI never shows the sampled frames (masks and the overlay are at the decoded size): it
# keeps them as thumbnails, so that a long video's memory grows by ~58 KB per second, not ~700
CLI_FRAMES_SIDE = 160


def write_masks(pred: Prediction, folder: Path, threshold: float) -> None:
    """One PNG per second, each written atomically (a killed run leaves no half mask)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, mask in enumerate(pred.iter_masks(threshold)):
        image = mask.astype(np.uint8) * 255 if mask.dtype == bool else mask.astype(np.uint8)
        with atomic_path(folder / f"mask_{index:03d}.png") as tmp:
            if not cv2.imwrite(str(tmp), image):
                raise OSError(f"could not write masks into {folder}")


def _writable(path: Path) -> str | None:
    """Why a file or folder cannot be created at `path` (its nearest existing parent must be a
    writable folder), or None."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a folder"
            if not os.access(parent, os.W_OK | os.X_OK):
                return f"the folder {parent} is not writable"
            return None
    return None


def output_errors(args: argparse.Namespace, out: Path) -> list[str]:
    """What is wrong with the output paths (--out, --json, --masks-dir), checked before any
    decoding or model run so that nothing is computed, or half written, for nothing."""
    errors = []
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        errors.append(
            f"--out {out}: {'no' if not out.suffix else 'unknown'} video extension "
            f"{out.suffix!r}; give a file name ending in one of {', '.join(VIDEO_SUFFIXES)}"
        )
    files = [("--out", out)] + ([("--json", args.json)] if args.json is not None else [])
    for flag, path in files:
        if path.is_dir():
            errors.append(f"{flag} {path} is a folder; give a file name (e.g. {path / out.name})")
        elif (why := _writable(path)) is not None:
            errors.append(f"{flag} {path}: cannot be written ({why})")
    if args.masks_dir is not None:
        if args.masks_dir.exists() and not args.masks_dir.is_dir():
            errors.append(f"--masks-dir {args.masks_dir} is a file; give a folder")
        elif (why := _writable(args.masks_dir)) is not None:
            errors.append(f"--masks-dir {args.masks_dir}: cannot be created ({why})")
    named = [(flag, path.absolute()) for flag, path in files] + [("VIDEO", args.video.absolute())]
    for i, (flag, path) in enumerate(named):
        for other, same in named[i + 1 :]:
            if path == same:
                errors.append(f"{flag} and {other} name the same file {path.name}; keep them apart")
    return errors


def audio_source(args: argparse.Namespace) -> AudioSource:
    """--mute, --noise or --audio FILE (always a file, whatever its name), else the track."""
    if args.mute:
        return AudioSource.mute()
    if args.noise:
        return AudioSource.noise()
    if args.audio is not None:
        return AudioSource.file(args.audio)
    return AudioSource.original()


def remove_stale_outputs(args: argparse.Namespace, out: Path) -> list[Path]:
    """The temporaries a killed earlier run left beside this run's outputs (a live run's are
    kept: selm.files)."""
    removed = remove_stale_temporaries(out.parent, [out.name])
    if args.json is not None:
        removed += remove_stale_temporaries(args.json.parent, [args.json.name])
    if args.masks_dir is not None:
        removed += remove_stale_temporaries(args.masks_dir)
    return removed


class Terminated(SystemExit):
    """SIGTERM arrived: raised in the main thread, so every write under way is undone on the
    way out (selm.files.atomic_path) and the process exits with TERMINATED."""


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM -> `Terminated` while the block runs (the main thread only; the previous
    handler comes back afterwards)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Terminated(TERMINATED)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def checked_args(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """Every flag checked before anything is read -> (audio source, overlay path); a bad one
    ends the run with one line and exit code 2 (parser.error)."""
    try:
        args.threshold = check_threshold(args.threshold, "--threshold")
        args.max_seconds = check_max_seconds(args.max_seconds, "--max-seconds")
        check_device(args.device, "--device")
    except ValueError as err:
        parser.error(str(err))
    if args.audio is not None and not args.audio.is_file():
        what = "is a folder, not an audio file" if args.audio.is_dir() else "no such file"
        parser.error(f"--audio {args.audio}: {what}")
    out = args.out or Path(f"{args.video.stem}_selm.mp4")
    if errors := output_errors(args, out):
        parser.error("; ".join(errors))
    return audio_source(args), out


def check_video(parser: argparse.ArgumentParser, args: argparse.Namespace, audio) -> None:
    """The video opens and holds what the audio choice needs, before the model loads."""
    try:
        with VideoStream(args.video, args.max_seconds) as stream:
            has_audio = stream.has_audio
        if audio.kind == "original" and not has_audio:
            parser.error(
                f"{args.video.name} has no audio track; choose what the model hears with "
                "--mute, --noise or --audio FILE"
            )
        check_inputs(args.video, audio, args.max_seconds)  # fail before the model loads
    except MediaError as err:
        parser.error(str(err))


def run(parser, args: argparse.Namespace, predictor: Predictor, audio, out: Path) -> Prediction:
    """One pass over the video: decode, model, draw and encode the overlay window by window."""
    with tqdm(total=1000, unit="‰", desc=args.video.name, bar_format=BAR) as bar:

        def progress(fraction: float, message: str) -> None:
            bar.set_postfix_str(message)
            bar.update(round(fraction * 1000) - bar.n)

        windows = predictor.windows(
            args.video,
            audio=audio,
            progress=progress,
            max_seconds=args.max_seconds,
            frames_max_side=CLI_FRAMES_SIDE,
            video_frames=True,
        )
        try:
            with warnings.catch_warnings(), OverlayVideo(out, threshold=args.threshold) as video:
                warnings.simplefilter("ignore", MediaWarning)  # printed below as pred.notes
                return Prediction.from_windows(windows, video.add)
        except MediaError as err:
            parser.error(str(err))
        except OSError as err:
            parser.error(f"could not write the outputs: {err}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    audio, out = checked_args(parser, args)
    for path in remove_stale_outputs(args, out):
        print(f"removed {path.name}, left by a run that was killed while writing", file=sys.stderr)
    try:
        with stop_on_sigterm():
            pred, summary = predict(parser, args, audio, out)
    except Terminated:
        print(f"{PROG}: stopped by SIGTERM; unfinished outputs removed", file=sys.stderr)
        return TERMINATED
    for note in pred.notes:
        print(f"warning: {note}", file=sys.stderr)
    width, height = pred.size
    print(
        f"{args.video.name}: {len(pred.times)} s at {pred.fps:.2f} fps, "
        f"{width}x{height}, audio heard: {pred.audio_label}"
    )
    for entry in summary["seconds"]:
        print(f"  second {int(entry['time']):3d}: {100 * entry['area']:5.1f}% segmented")
    print(f"wrote {out}")
    return 0


def predict(parser, args: argparse.Namespace, audio, out: Path) -> tuple[Prediction, dict]:
    """Check the video, load the model, write the overlay, then the masks and the summary
    -> (the prediction, its summary)."""
    check_video(parser, args, audio)
    try:
        predictor = Predictor.from_pretrained(args.checkpoint, device=args.device)
    except (OSError, ValueError, KeyError) as err:
        parser.error(f"--checkpoint: {err}")
    pred = run(parser, args, predictor, audio, out)
    summary = summarize(pred, args.threshold)
    try:
        if args.masks_dir is not None:
            write_masks(pred, args.masks_dir, args.threshold)
        if args.json is not None:
            with atomic_path(args.json) as tmp:
                tmp.write_text(json.dumps(summary, indent=2))
    except OSError as err:
        parser.error(f"could not write the outputs: {err}")
    return pred, summary


if __name__ == "__main__":
    sys.exit(main())
