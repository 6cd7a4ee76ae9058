"""Opening media files and what they declare, before anything is decoded: `MediaError` (a file
the user gave cannot be used, with the reason and what to do), the one wording for a file FFmpeg
cannot read, every stream's and the container's declared duration, and the limit checks.

`PARTIAL_SECOND_MIN` is the slack of every "too long" check (`over_limit`, here and in the demo):
a clip within it of the limit has no more seconds than the limit (see selm.media.video).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av

PARTIAL_SECOND_MIN = 0.05  # s: a shorter trailing part of a second is rounding, not a second
# s: the most a stream may start after its file's time zero (`clock_origin`); a start hours
# later is a damaged or hostile header, not a recording, and would fill memory with silence
MAX_LEAD = 3600.0


def over_limit(seconds: float, max_seconds: float | None) -> bool:
    """Whether `seconds` of media is longer than the limit, PARTIAL_SECOND_MIN of slack."""
    return max_seconds is not None and seconds > max_seconds + PARTIAL_SECOND_MIN


class MediaError(ValueError):
    """A media file the user gave cannot be used; the message says why and what to do."""


class MediaWarning(UserWarning):
    """A media file was usable but not as it declares itself (e.g. truncated)."""


# what "a common format" means in messages, and the suffixes that claim to be one
COMMON_FORMATS = {
    "video": ("mp4, webm, mov or mkv", (".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v")),
    "audio file": ("wav, mp3, flac or ogg", (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".opus")),
}


def unreadable_message(
    path: Path, err: Exception, what: str = "video", *, reader: str = "selm", verb: str = "give"
) -> str:
    """One wording, for the CLI and the demo alike, for a file FFmpeg cannot open: a file named
    like a `what` is damaged or truncated; anything else is not a common format. `reader` and
    `verb` fit the words to where they are read ("the demo", "upload")."""
    formats, suffixes = COMMON_FORMATS[what]
    reason = getattr(err, "strerror", None) or type(err).__name__  # no errno numbers
    if path.suffix.lower() in suffixes:
        advice = (
            f"it is named like a {what} but its contents cannot be read: the file is damaged or "
            "truncated (e.g. an interrupted upload or copy). Export or download it again."
        )
    else:
        advice = f"{verb} a common format: {formats}."
    return f"{path.name!r} is not a {what} {reader} can read (FFmpeg: {reason}); {advice}"


def existing(path: str | os.PathLike) -> Path:
    """`path` as a Path; MediaError when it is no file or an empty one."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path.name!r} is empty (0 bytes); give another file")
    return path


@contextmanager
def open_container(path: Path) -> Iterator[av.container.InputContainer]:
    """The open container of `path`, closed on leaving; MediaError (`unreadable_message`) when
    FFmpeg cannot open it."""
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        what = "audio file" if path.suffix.lower() in COMMON_FORMATS["audio file"][1] else "video"
        raise MediaError(unreadable_message(path, err, what)) from err
    try:
        yield container
    finally:
        container.close()


def too_long(path: Path, seconds: float, max_seconds: float) -> MediaError:
    return MediaError(
        f"{path.name} lasts {seconds:.1f} s, longer than the limit of {max_seconds:g} s; "
        f"trim it (e.g. `ffmpeg -i in.mp4 -t {max_seconds:g} out.mp4`) or raise max_seconds"
    )


def stream_seconds(stream) -> float | None:
    """The seconds a stream's header says it lasts, or None when it says nothing."""
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    return None


def stream_start(stream) -> Fraction | None:
    """Where a stream starts on its file's clock, in seconds (exact), or None when unstated."""
    if stream.start_time is None or not stream.time_base:
        return None
    return stream.start_time * Fraction(stream.time_base)


def clock_origin(container) -> Fraction | None:
    """Time zero of a file as a player plays it: the earliest start of its first video stream
    and its first audio stream (a stream starting later begins that much after it: `ffmpeg
    -itsoffset`); None when neither states where it starts."""
    streams = (container.streams.video[:1], container.streams.audio[:1])
    starts = [stream_start(found[0]) for found in streams if found]
    starts = [start for start in starts if start is not None]
    return min(starts) if starts else None


def still_image(container) -> str | None:
    """The image codec (e.g. "png") when FFmpeg reads the file as a still picture, whatever its
    name says (a PNG renamed .mp4), else None. Animated formats (GIF) count as videos."""
    names = container.format.name.split(",")
    if container.streams.video and any(n == "image2" or n.endswith("_pipe") for n in names):
        return container.streams.video[0].codec_context.name
    return None


def not_a_video(path: Path, codec: str, verb: str = "give") -> MediaError:
    """The error for a still image given as a video."""
    return MediaError(
        f"{path.name!r} is a still image ({codec.upper()}), not a video, whatever its name "
        f"says; {verb} a video file ({COMMON_FORMATS['video'][0]})"
    )


def declared_seconds(container) -> dict[str, float]:
    """What the container and each of its audio / video streams say they last, in seconds."""
    found = {}
    for stream in (*container.streams.video, *container.streams.audio):
        seconds = stream_seconds(stream)
        if seconds is not None:
            found[f"its {stream.type} stream #{stream.index}"] = seconds
    if container.duration is not None and container.duration > 0:
        found["the container"] = container.duration / av.time_base
    return found


def measured_seconds(container, stream) -> float:
    """The seconds `stream` lasts: as it or the container declares, else up to the end of its
    last packet (demuxed, not decoded; a truncated file counts what is readable); 0.0 when
    nothing says."""
    declared = stream_seconds(stream)
    if declared is not None:
        return declared
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    end = 0.0
    try:
        for packet in container.demux(stream):
            if packet.pts is not None and packet.time_base is not None:
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    except av.FFmpegError:
        pass  # a truncated file: keep what was readable
    return end


def check_declared(path: Path, container, max_seconds: float | None) -> None:
    """Refuse, before decoding anything, a file any of whose streams declares too long."""
    if max_seconds is None:
        return
    for what, seconds in declared_seconds(container).items():
        if over_limit(seconds, max_seconds):
            raise MediaError(
                f"{path.name}: {what} lasts {seconds:.1f} s, longer than the limit of "
                f"{max_seconds:g} s; trim it (e.g. `ffmpeg -i in.mp4 -t {max_seconds:g} "
                "-c copy out.mp4`, which cuts every stream) or raise max_seconds"
            )
