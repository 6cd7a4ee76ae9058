"""What a caller may ask of inference, checked once where it comes in (the API, the command
line, the demo): a mask threshold, a length limit, frame sizes, a torch device, an output file.
Each check returns the value it accepts and raises ValueError with one line that says what was
wrong and what to give instead; none of them reads a file or imports torch at module level."""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path

# containers that take the overlay's H.264 video and AAC audio (selm.render.overlay)
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".avi")
MIN_PIXELS = 32 * 32  # frames decoded smaller than this say nothing a model could use
MIN_SIDE = 16  # px: the smallest longer side frames, thumbnails and overlays are scaled to
MAX_SIDE = 16384  # px: the largest side a frame or an overlay may be asked to have


def _real(value) -> float | None:
    """`value` as a float when it is a real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def check_threshold(threshold, what: str = "threshold") -> float:
    """A mask threshold: a number strictly between 0 and 1 (a pixel is segmented where its
    probability is above it). NaN, 2.0 or -1 would give silently empty or full masks."""
    value = _real(threshold)
    if value is None or not 0.0 < value < 1.0:
        raise ValueError(
            f"{what}={threshold!r}: give a number strictly between 0 and 1 (a pixel is "
            "segmented where its probability is above it; 0.5 is the usual choice)"
        )
    return value


def check_max_seconds(max_seconds, what: str = "max_seconds") -> float | None:
    """A length limit in seconds: None (no limit) or a positive finite number."""
    if max_seconds is None:
        return None
    value = _real(max_seconds)
    if value is None or not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"{what}={max_seconds!r}: give a positive number of seconds (or no limit); "
            "NaN or a negative limit would turn the check off or refuse every video"
        )
    return value


def _whole(value, what: str, low: int, high: int | None, unit: str) -> int:
    number = _real(value)
    if number is None or not math.isfinite(number) or number != int(number):
        raise ValueError(f"{what}={value!r}: give a whole number of {unit}")
    if number < low or (high is not None and number > high):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise ValueError(f"{what}={value!r}: give a whole number of {unit} {bound}")
    return int(number)


def check_max_pixels(max_pixels, what: str = "max_pixels") -> int | None:
    """A cap on decoded frames' W * H: None (source size) or at least MIN_PIXELS."""
    if max_pixels is None:
        return None
    return _whole(max_pixels, what, MIN_PIXELS, None, "pixels (W x H)")


def check_side(side, what: str) -> int | None:
    """A longest side in pixels: None (as is) or MIN_SIDE to MAX_SIDE."""
    if side is None:
        return None
    return _whole(side, what, MIN_SIDE, MAX_SIDE, "pixels")


def check_size(size, what: str = "size") -> tuple[int, int] | None:
    """A (W, H) frame size: None (the default) or two whole numbers of pixels, 1 to MAX_SIDE."""
    if size is None:
        return None
    try:
        width, height = size
    except (TypeError, ValueError):
        raise ValueError(f"{what}={size!r}: give (width, height) in pixels") from None
    return (
        _whole(width, f"{what} width", 1, MAX_SIDE, "pixels"),
        _whole(height, f"{what} height", 1, MAX_SIDE, "pixels"),
    )


def check_video_path(path, what: str = "video") -> Path:
    """A video to read: a path (str or os.PathLike), not None or another object."""
    if not isinstance(path, str | os.PathLike) or str(path) == "":
        raise ValueError(f"{what}={path!r}: give the path of a video file (or a Clip)")
    return Path(path)


def check_output_video(path, what: str = "overlay") -> Path:
    """A video file to write: its name must end in one of VIDEO_SUFFIXES."""
    if not isinstance(path, str | os.PathLike) or str(path) == "":
        raise ValueError(f"{what}={path!r}: give the path of the video file to write")
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        kind = "no" if not path.suffix else "not a video"
        raise ValueError(
            f"{what}={str(path)!r}: {kind} file extension {path.suffix!r}; give a file name "
            f"ending in one of {', '.join(VIDEO_SUFFIXES)}"
        )
    return path


def check_device(device, what: str = "device"):
    """A torch device that exists here: 'cpu', 'cuda', 'cuda:N', 'mps' or a torch.device."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"{what} {device!r} is not a torch device; give cpu, cuda or cuda:N"
        ) from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{what} {device!r}: CUDA is not available here; use cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ValueError(f"{what} {device!r}: this machine has {count} CUDA device(s)")
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"{what} {device!r}: MPS is not available here; use cpu")
    elif parsed.type != "cpu":
        raise ValueError(f"{what} {device!r}: selm runs on cpu, cuda or mps")
    return parsed
