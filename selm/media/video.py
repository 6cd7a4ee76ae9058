"""Reading videos (PyAV) at AVSBench's frame sampling, one pass from start to end.

A clip of n seconds gives n frames, frame i being the last frame shown at or before
`i + 14/16` s (`frame_times`). n counts whole and partial seconds: a 2.3 s video gives
3 frames, and the third instant (2.875 s) lies past the end, so it takes the last frame.
A trailing part shorter than `PARTIAL_SECOND_MIN` (frame-rate rounding: 60 frames at
29.97 fps last 2.002 s) does not count. The same constant is the slack of every "too long"
check (selm.media.container.over_limit): a clip within it of the limit has no more seconds
than the limit.

Times are on the file's clock, as a player plays it: time 0 is the earliest start of its video
and audio streams (`clock_origin`), so a video stream that starts 2 s after its audio
(`ffmpeg -itsoffset 2`) has its first frame at 2 s, and its audio track is read on the same
clock (selm.media.audio). Before the first frame a player shows no picture: an instant that
comes before it takes a black frame, and the stream's `clock_notes` say so.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import av
import cv2
import numpy as np

from selm.media.audio import read_audio_track
from selm.media.container import (
    MAX_LEAD,
    PARTIAL_SECOND_MIN,
    MediaError,
    MediaWarning,
    check_declared,
    clock_origin,
    existing,
    not_a_video,
    open_container,
    over_limit,
    still_image,
    stream_seconds,
    stream_start,
    too_long,
)

# frame i is taken at i + 14/16 s: the 15th of 16 sub-samples of second i (AVSBench)
FRAME_OFFSET = Fraction(14, 16)


def frame_times(num_seconds: int) -> np.ndarray:
    """(num_seconds,) instants, in seconds, of the 1-fps frames the model sees."""
    return np.arange(num_seconds, dtype=np.float64) + float(FRAME_OFFSET)


@dataclass
class Clip:
    """A video sampled at `frame_times`, with its audio track.

    frames: (T, H, W, 3) uint8 RGB, T = the number of whole or partial seconds; times: (T,)
    seconds; waveform: (S,) float32 mono 16 kHz, or None when the file has no audio track.
    """

    frames: np.ndarray
    times: np.ndarray
    waveform: np.ndarray | None
    duration: float  # seconds of video
    fps: float
    width: int
    height: int
    source: str
    notes: list[str] = field(default_factory=list)  # what the file did not hold as it declared

    @property
    def has_audio(self) -> bool:
        return self.waveform is not None

    @property
    def num_seconds(self) -> int:
        return len(self.times)


DEFAULT_MAX_PIXELS = 1280 * 720  # frames are decoded at most this large unless asked otherwise
TRUNCATION_SLACK = 0.25  # s: less video than the stream declares by more than this is reported
NOTED_LEAD = 0.1  # s: an audio track starting later than this after time zero is reported


def fit_pixels(width: int, height: int, max_pixels: int | None) -> tuple[int, int]:
    """(W, H) scaled down (aspect kept, never enlarged) so that W * H <= max_pixels."""
    if max_pixels is None or width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


def _rotation(frame: av.VideoFrame) -> int:
    return round(getattr(frame, "rotation", 0) / 90) % 4  # quarter turns, counter-clockwise


# AVColorSpace / AVColorRange values whose conversion to RGB is BT.601 at limited range, which
# swscale applies by default and OpenCV's I420 conversion implements: unspecified, BT470BG and
# SMPTE170M; unspecified and MPEG
_BT601_SPACES = (2, 5, 6)
_LIMITED_RANGES = (0, 1)


def _opencv_converts(frame: av.VideoFrame) -> bool:
    """Whether the frame is 4:2:0 BT.601 limited range with even sides: OpenCV converts it to
    RGB ~3.5x faster than swscale (640 x 360: 0.09 against 0.33 ms), within a few levels of it
    (its chroma is repeated, not interpolated). Other frames go through swscale."""
    return (
        frame.format.name == "yuv420p"
        and frame.width % 2 == 0
        and frame.height % 2 == 0
        and getattr(frame, "colorspace", None) in _BT601_SPACES
        and getattr(frame, "color_range", None) in _LIMITED_RANGES
    )


def frame_to_rgb(frame: av.VideoFrame, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB as displayed (the container's rotation applied); with size = (W, H)
    of the displayed picture, scaled to it while converting (swscale, area)."""
    quarter_turns = _rotation(frame)
    if size is not None:
        width, height = size if quarter_turns % 2 == 0 else size[::-1]
        if (width, height) != (frame.width, frame.height):
            frame = frame.reformat(width, height, "rgb24", interpolation="AREA")
    if _opencv_converts(frame):
        image = cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)
    else:
        image = frame.to_ndarray(format="rgb24")
    return np.ascontiguousarray(np.rot90(image, quarter_turns)) if quarter_turns else image


def _fps(stream: av.video.stream.VideoStream) -> Fraction | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else None


def _frame_start(frame: av.VideoFrame, index: int, fps: Fraction | None) -> Fraction | None:
    """Presentation time in seconds (exact), or None when neither pts nor a rate is known."""
    if frame.pts is not None and frame.time_base is not None:
        return frame.pts * Fraction(frame.time_base)
    return index / fps if fps else None


class VideoStream:
    """An open video file, read once from start to end: `frames()` yields (seconds on the
    file's clock, decoded frame) in presentation order, without duplicate or out-of-order
    timestamps, and refuses frames past `max_seconds`; then `duration` (the end of the video
    on that clock) is known. A still image (a PNG renamed .mp4) is refused.

    Every stream's and the container's declared duration is checked against `max_seconds`
    when it opens, before anything is decoded.
    """

    def __init__(self, path: str | os.PathLike, max_seconds: float | None = None) -> None:
        self.path = existing(path)
        self.max_seconds = max_seconds
        self._context = open_container(self.path)
        self.container = self._context.__enter__()
        try:
            if not self.container.streams.video:
                raise MediaError(
                    f"{self.path.name} has no video stream; give a video file (an audio file "
                    "can only be used as the audio of a video)"
                )
            if (codec := still_image(self.container)) is not None:
                raise not_a_video(self.path, codec)
            check_declared(self.path, self.container, max_seconds)
            self.stream = self.container.streams.video[0]
            self.stream.thread_type = "AUTO"
        except BaseException:
            self.close()
            raise
        self.fps = _fps(self.stream)
        self.time_base = Fraction(self.stream.time_base) if self.stream.time_base else None
        self.declared = stream_seconds(self.stream)  # the video stream's own, or None
        self.has_audio = bool(self.container.streams.audio)
        self.zero = clock_origin(self.container)  # time zero on the streams' timestamps
        audio = self.container.streams.audio[0] if self.has_audio else None
        self.audio_start = None if audio is None else stream_start(audio)  # on the timestamps
        self.first_time: Fraction | None = None  # the first frame's time on the clock
        self.origin: Fraction | None = None  # time zero, once the first frame is decoded
        self.count = 0  # frames yielded
        self.last: av.VideoFrame | None = None
        self.last_time = Fraction(0)
        self.gap = Fraction(0)  # last inter-frame interval, a fallback for the frame duration
        self.duration: float | None = None

    def __enter__(self) -> VideoStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._context.__exit__(None, None, None)

    def frames(self) -> Iterator[tuple[Fraction, av.VideoFrame]]:
        index = 0
        try:
            for frame in self.container.decode(self.stream):
                start = _frame_start(frame, index, self.fps)
                index += 1
                if self.origin is None:
                    self._first(frame, start)
                if start is None:
                    time = self.last_time + self.gap if self.count else Fraction(0)
                else:
                    time = max(start - self.origin, Fraction(0))
                if self.count and time <= self.last_time:
                    continue  # a duplicate or out-of-order timestamp: keep the first shown
                if over_limit(time, self.max_seconds):
                    raise too_long(self.path, float(time), self.max_seconds)
                if self.count:
                    self.gap = time - self.last_time
                self.last, self.last_time = frame, time
                self.count += 1
                yield time, frame
        except av.FFmpegError as err:
            raise MediaError(
                f"{self.path.name} could not be decoded ({err}); re-encode it or give another file"
            ) from err
        self._finish()

    def _first(self, frame: av.VideoFrame, start: Fraction | None) -> None:
        """Time zero from the first frame: the file's (`clock_origin`) when the frame has a
        timestamp on it, else the frame itself."""
        start = Fraction(0) if start is None else start
        on_clock = self.zero is not None and frame.pts is not None
        self.origin = min(self.zero, start) if on_clock else start
        self.first_time = start - self.origin
        if self.first_time > MAX_LEAD:
            raise MediaError(
                f"{self.path.name}: its video starts {float(self.first_time):.0f} s after its "
                "audio; re-encode it with the streams together (e.g. `ffmpeg -i in.mp4 "
                "-c:v libx264 -c:a aac out.mp4`) or give another file"
            )

    @property
    def blank_seconds(self) -> int:
        """Seconds whose instant comes before the first frame (a player shows no picture yet)."""
        if not self.first_time:
            return 0
        return min(max(0, math.ceil(self.first_time - FRAME_OFFSET)), self.num_seconds)

    def clock_notes(self, original_audio: bool) -> list[str]:
        """What the model saw and heard differently from the file's first frame and sample
        because its streams start apart (`original_audio`: the model hears the file's track)."""
        notes = []
        if blank := self.blank_seconds:
            seconds = "second 0" if blank == 1 else f"seconds 0-{blank - 1}"
            notes.append(
                f"{self.path.name}: its video starts {float(self.first_time):.2f} s after its "
                f"audio; a player shows no picture before that, so the model saw a black frame "
                f"at {seconds}"
            )
        if original_audio and self.audio_start is not None and self.origin is not None:
            lead = self.audio_start - self.origin
            if lead > NOTED_LEAD:
                notes.append(
                    f"{self.path.name}: its audio starts {float(lead):.2f} s after its video; "
                    "the model heard silence before that, as a player plays it"
                )
        return notes

    def _finish(self) -> None:
        if self.last is None:
            raise MediaError(
                f"{self.path.name} has a video stream but no decodable frame; re-encode it "
                "(e.g. `ffmpeg -i in -c:v libx264 out.mp4`) or give another file"
            )
        length = Fraction(self.last.duration or 0) * Fraction(self.last.time_base or 0)
        if length <= 0:
            length = 1 / self.fps if self.fps else self.gap
        self.duration = float(self.last_time + length)
        if over_limit(self.duration, self.max_seconds):
            raise too_long(self.path, self.duration, self.max_seconds)

    @property
    def num_seconds(self) -> int:
        """Whole or partial seconds of the video (known once `frames()` has run out)."""
        return max(1, math.ceil(self.duration - PARTIAL_SECOND_MIN))

    @property
    def mean_fps(self) -> float:
        return float(self.fps) if self.fps else self.count / self.duration

    def truncation(self) -> str | None:
        """A message when less video was decoded than the stream declares, else None."""
        if self.declared is None or self.duration >= self.declared - TRUNCATION_SLACK:
            return None
        return (
            f"{self.path.name}: only {self.duration:.2f} s of video could be decoded, but the "
            f"file declares {self.declared:.2f} s (is it truncated, e.g. an incomplete "
            "download?); the result covers the decoded part only"
        )


class FrameSampler:
    """Picks, in one pass, the last frame shown at or before each instant i + 14/16 s.

    Frames are pushed as (time, frame) in increasing time; `rgb(frame)` converts a picked one
    (only picked frames are converted). `picks` holds the RGB arrays picked so far.
    """

    def __init__(self, rgb: Callable[[av.VideoFrame], np.ndarray]) -> None:
        self.rgb = rgb
        self.picks: list[np.ndarray] = []
        self.last: av.VideoFrame | None = None
        self.last_rgb: np.ndarray | None = None

    def _pick_last(self) -> None:
        if self.last_rgb is None:
            self.last_rgb = self.rgb(self.last)
        self.picks.append(self.last_rgb)

    def push(self, time: Fraction, frame: av.VideoFrame, rgb: np.ndarray | None = None) -> None:
        """`rgb`: the frame already converted, when the caller has it. Instants before the
        first frame take a black frame of its size: a player shows no picture yet."""
        if self.last is None and time > len(self.picks) + FRAME_OFFSET:
            rgb = self.rgb(frame) if rgb is None else rgb
            black = np.zeros_like(rgb)
            while time > len(self.picks) + FRAME_OFFSET:
                self.picks.append(black)
        while self.last is not None and time > len(self.picks) + FRAME_OFFSET:
            self._pick_last()
        self.last, self.last_rgb = frame, rgb

    def finish(self, num_seconds: int) -> None:
        while len(self.picks) < num_seconds:
            self._pick_last()


def read_video(
    path: str | os.PathLike,
    max_seconds: float | None = None,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Clip:
    """Decode a video (mp4, webm, mov, avi, mkv, ...) in one pass -> `Clip`.

    Frames larger than `max_pixels` are scaled down while decoding (None: source size). The
    audio track is decoded only as far as the video lasts. Raises MediaError for a file that is
    not media, has no video stream or no decodable frame, or any of whose streams lasts longer
    than `max_seconds`; warns (MediaWarning) when less video decodes than the file declares,
    and when its streams start apart (`VideoStream.clock_notes`).
    """
    with VideoStream(path, max_seconds) as video:
        size = None
        sampler = FrameSampler(lambda frame: frame_to_rgb(frame, size))
        for time, frame in video.frames():
            if size is None:
                size = displayed_size(frame, max_pixels)
            sampler.push(time, frame)
        sampler.finish(video.num_seconds)
        notes = [video.truncation()] if video.truncation() else []
        notes += video.clock_notes(original_audio=video.has_audio)
    for note in notes:
        warnings.warn(note, MediaWarning, stacklevel=2)
    waveform = read_audio_track(video.path, video.duration) if video.has_audio else None
    frames = np.stack(sampler.picks)
    return Clip(
        frames=frames,
        times=frame_times(len(frames)),
        waveform=waveform,
        duration=video.duration,
        fps=video.mean_fps,
        width=frames.shape[2],
        height=frames.shape[1],
        source=str(video.path),
        notes=notes,
    )


def displayed_size(
    frame: av.VideoFrame, max_pixels: int | None, max_side: int | None = None
) -> tuple[int, int]:
    """(W, H) of the displayed picture (rotation applied), scaled down (aspect kept) to at most
    max_pixels and to a longer side of at most max_side."""
    width, height = frame.width, frame.height
    if _rotation(frame) % 2:
        width, height = height, width
    return fit_pixels(*fit_side(width, height, max_side), max_pixels)


def fit_side(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(W, H) scaled down (aspect kept) to a longer side of at most max_side (None: as is)."""
    if max_side is not None and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    return width, height
