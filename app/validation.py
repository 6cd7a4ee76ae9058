"""Checks on what a user hands the demo, before any model runs.

Every check raises `DemoError` with a message that says what was wrong and what to do; the UI
shows that message as it is. Probing reads container headers (and, where a container does not
state its duration, its packet timestamps), never whole decoded videos.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import av

from selm.inference.options import check_threshold
from selm.media.container import (
    declared_seconds,
    measured_seconds,
    not_a_video,
    over_limit,
    still_image,
    unreadable_message,
)

# an absolute path in a message: shown as its file name (messages reach visitors)
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~])(?:/[^\s'\"/:,;()\[\]]+)+/([^\s'\"/:,;()\[\]]*)")


def scrub_paths(text: str) -> str:
    """`text` with every absolute path replaced by its last part (a file name)."""
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1), str(text))


class DemoError(ValueError):
    """Bad input a user can fix; the message is shown in the UI as it is."""


def checked_threshold(value) -> float:
    """The mask threshold a request sent (the slider's, or any number the API was given: a
    raw JSON NaN gets past the slider) -> a float strictly between 0 and 1, or DemoError."""
    try:
        return check_threshold(value, "threshold")
    except ValueError as err:
        raise DemoError(str(err)) from None


@dataclass(frozen=True)
class Limits:
    """What the demo accepts: clip length in seconds, frame size in pixels (W x H), and the
    size of one uploaded file in MB (gradio refuses larger uploads before they are stored)."""

    max_seconds: float = 60.0
    max_pixels: int = 1920 * 1080
    max_upload_mb: float = 50.0


@dataclass(frozen=True)
class VideoInfo:
    """A probed video: duration in seconds, frame size, frame rate, and whether it has sound."""

    path: Path
    duration: float
    width: int
    height: int
    fps: float
    has_audio: bool


def _name(path: str | os.PathLike) -> str:
    return Path(path).name


def _open(path: str | os.PathLike, what: str):
    """av.open with a user-facing error; `what` says which input it is ("video", "audio file")."""
    path = Path(path)
    if not path.is_file():
        raise DemoError(f"The {what} {path.name!r} does not exist any more; upload it again.")
    if path.stat().st_size == 0:
        raise DemoError(f"The {what} {path.name!r} is empty (0 bytes); upload another file.")
    try:
        return av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError, OSError) as err:
        message = unreadable_message(path, err, what, reader="the demo", verb="upload")
        raise DemoError(scrub_paths(message)) from err


def probe_video(path: str | os.PathLike | None, limits: Limits) -> VideoInfo:
    """Check a video against `limits`; DemoError says what is wrong with it."""
    if path is None or str(path) == "":
        raise DemoError("No video yet: upload a video or pick one of the examples first.")
    with _open(path, "video") as container:
        if not container.streams.video:
            kind = "an audio file" if container.streams.audio else "not a video"
            raise DemoError(
                f"{_name(path)!r} has no video stream ({kind}). Upload a video; to use a sound "
                "file, choose 'uploaded audio file' as the audio instead."
            )
        if (codec := still_image(container)) is not None:
            raise DemoError(str(not_a_video(Path(path), codec, verb="upload")))
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        rate = stream.average_rate or stream.guessed_rate or 0
        has_audio = bool(container.streams.audio)
        duration = measured_seconds(container, stream)
        # every stream and the container count against the limit (a 5-s video can carry a
        # 30-min audio track); headers only, nothing is decoded
        longest = max([duration, *declared_seconds(container).values()])
    if width <= 0 or height <= 0:
        raise DemoError(f"{_name(path)!r} has no decodable frames; upload another video.")
    if width * height > limits.max_pixels:
        raise DemoError(
            f"{_name(path)!r} is {width}x{height} ({width * height / 1e6:.1f} MP); the demo takes "
            f"frames up to {limits.max_pixels / 1e6:.1f} MP (e.g. 1920x1080). Downscale it first, "
            "e.g. `ffmpeg -i in.mp4 -vf scale=-2:720 out.mp4`."
        )
    if not math.isfinite(duration) or duration <= 0:
        raise DemoError(
            f"{_name(path)!r} has a duration of zero (no frame to look at); upload a video "
            "with at least one frame."
        )
    if over_limit(longest, limits.max_seconds):  # the slack selm.media.video reads with
        what = "lasts" if longest == duration else "holds a stream that lasts"
        raise DemoError(
            f"{_name(path)!r} {what} {longest:.1f} s; this demo runs clips up to "
            f"{limits.max_seconds:g} s. Trim it first (e.g. `ffmpeg -i in.mp4 -t "
            f"{limits.max_seconds:g} out.mp4`), or run the command line, "
            "`python -m selm.predict`, which takes any length."
        )
    return VideoInfo(
        path=Path(path),
        duration=duration,
        width=width,
        height=height,
        fps=float(rate),
        has_audio=has_audio,
    )


def check_audio_file(path: str | os.PathLike | None) -> Path:
    """Check that an uploaded audio file (or a video's audio track) decodes; return its path."""
    if path is None or str(path) == "":
        raise DemoError(
            "You chose 'uploaded audio file' but no audio file is uploaded: upload one, or "
            "choose another audio source."
        )
    with _open(path, "audio file") as container:
        if not container.streams.audio:
            raise DemoError(
                f"{_name(path)!r} has no audio track; upload a file with sound (wav, mp3, flac, "
                "ogg, or a video with an audio track)."
            )
        try:
            decoded = next(container.decode(container.streams.audio[0]), None)
        except av.FFmpegError as err:
            reason = scrub_paths(getattr(err, "strerror", None) or type(err).__name__)
            raise DemoError(
                f"The audio in {_name(path)!r} cannot be decoded (FFmpeg: {reason}); the file "
                "may be truncated or use an unusual codec. Convert it to wav and upload it again."
            ) from err
    if decoded is None:
        raise DemoError(f"{_name(path)!r} holds no audio samples; upload a file with sound.")
    return Path(path)
