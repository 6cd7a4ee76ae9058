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
from pathlib import Path

import av

PARTIAL_SECOND_MIN = 0.05  # s: a shorter trailing part of a second is rounding, not a second


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
