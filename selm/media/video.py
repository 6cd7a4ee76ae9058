"""Reading video and audio files (PyAV); AVSBench's frame sampling; writing media atomically.

A clip of n seconds gives n frames, frame i being the last frame shown at or before
`i + 14/16` s (`frame_times`). n counts whole and partial seconds: a 2.3 s video gives
3 frames, and the third instant (2.875 s) lies past the end, so it takes the last frame.
A trailing part shorter than `PARTIAL_SECOND_MIN` (frame-rate rounding: 60 frames at
29.97 fps last 2.002 s) does not count. Time 0 is the first video frame. The same constant is
the slack of every "too long" check (`over_limit`, here and in the demo): a clip within it of
the limit has no more seconds than the limit.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from selm.files import atomic_path
from selm.transforms.log_mel import SAMPLE_RATE, BlockResampler, to_mono_16k

# frame i is taken at i + 14/16 s: the 15th of 16 sub-samples of second i (AVSBench)
FRAME_OFFSET = Fraction(14, 16)
PARTIAL_SECOND_MIN = 0.05  # s: a shorter trailing part of a second is rounding, not a second


def over_limit(seconds: float, max_seconds: float | None) -> bool:
    """Whether `seconds` of media is longer than the limit, PARTIAL_SECOND_MIN of slack."""
    return max_seconds is not None and seconds > max_seconds + PARTIAL_SECOND_MIN


def frame_times(num_seconds: int) -> np.ndarray:
    """(num_seconds,) instants, in seconds, of the 1-fps frames the model sees."""
    return np.arange(num_seconds, dtype=np.float64) + float(FRAME_OFFSET)


class MediaError(ValueError):
    """A media file the user gave cannot be used; the message says why and what to do."""


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


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path.name!r} is empty (0 bytes); give another file")
    return path


@contextmanager
def _open(path: Path) -> Iterator[av.container.InputContainer]:
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        what = "audio file" if path.suffix.lower() in COMMON_FORMATS["audio file"][1] else "video"
        raise MediaError(unreadable_message(path, err, what)) from err
    try:
        yield container
    finally:
        container.close()


def _too_long(path: Path, seconds: float, max_seconds: float) -> MediaError:
    return MediaError(
        f"{path.name} lasts {seconds:.1f} s, longer than the limit of {max_seconds:g} s; "
        f"trim it (e.g. `ffmpeg -i in.mp4 -t {max_seconds:g} out.mp4`) or raise max_seconds"
    )


DEFAULT_MAX_PIXELS = 1280 * 720  # frames are decoded at most this large unless asked otherwise
AUDIO_MARGIN = 1.0  # s of audio decoded past the seconds needed (resampling needs a little)
TRUNCATION_SLACK = 0.25  # s: less video than the stream declares by more than this is reported


class MediaWarning(UserWarning):
    """A media file was usable but not as it declares itself (e.g. truncated)."""


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


def _stream_seconds(stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    return None


def declared_seconds(container) -> dict[str, float]:
    """What the container and each of its audio / video streams say they last, in seconds."""
    found = {}
    for stream in (*container.streams.video, *container.streams.audio):
        seconds = _stream_seconds(stream)
        if seconds is not None:
            found[f"its {stream.type} stream #{stream.index}"] = seconds
    if container.duration is not None and container.duration > 0:
        found["the container"] = container.duration / av.time_base
    return found


def _check_declared(path: Path, container, max_seconds: float | None) -> None:
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


class VideoStream:
    """An open video file, read once from start to end: `frames()` yields (seconds since the
    first frame, decoded frame) in presentation order, without duplicate or out-of-order
    timestamps, and refuses frames past `max_seconds`; then `duration` is known.

    Every stream's and the container's declared duration is checked against `max_seconds`
    when it opens, before anything is decoded.
    """

    def __init__(self, path: str | os.PathLike, max_seconds: float | None = None) -> None:
        self.path = _existing(path)
        self.max_seconds = max_seconds
        self._context = _open(self.path)
        self.container = self._context.__enter__()
        try:
            if not self.container.streams.video:
                raise MediaError(
                    f"{self.path.name} has no video stream; give a video file (an audio file "
                    "can only be used as the audio of a video)"
                )
            _check_declared(self.path, self.container, max_seconds)
            self.stream = self.container.streams.video[0]
            self.stream.thread_type = "AUTO"
        except BaseException:
            self.close()
            raise
        self.fps = _fps(self.stream)
        self.time_base = Fraction(self.stream.time_base) if self.stream.time_base else None
        self.declared = _stream_seconds(self.stream)  # the video stream's own, or None
        self.has_audio = bool(self.container.streams.audio)
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
        origin, index = None, 0
        try:
            for frame in self.container.decode(self.stream):
                start = _frame_start(frame, index, self.fps)
                index += 1
                if start is None:
                    start = self.last_time + self.gap if self.count else Fraction(0)
                if origin is None:
                    origin = start
                time = start - origin
                if self.count and time <= self.last_time:
                    continue  # a duplicate or out-of-order timestamp: keep the first shown
                if over_limit(time, self.max_seconds):
                    raise _too_long(self.path, float(time), self.max_seconds)
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
            raise _too_long(self.path, self.duration, self.max_seconds)

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
        """`rgb`: the frame already converted, when the caller has it."""
        while self.last is not None and time > len(self.picks) + FRAME_OFFSET:
            self._pick_last()
        self.last, self.last_rgb = frame, rgb

    def finish(self, num_seconds: int) -> None:
        while len(self.picks) < num_seconds:
            self._pick_last()


def _mono(frame: av.AudioFrame) -> np.ndarray:
    """(n,) float32: the channel mean of a planar frame (as `to_mono_16k`, chunk by chunk, so
    only one channel's worth of samples is held)."""
    planes = frame.to_ndarray()  # (C, n)
    return planes[0] if len(planes) == 1 else planes.mean(0, dtype=np.float32)


def _decode_audio(container, stream, stop: float | None) -> np.ndarray | None:
    """Decode `stream` from the start until `stop` seconds -> (S,) float32 mono 16 kHz."""
    resampler = av.AudioResampler(format="fltp")  # sample format only; rate, layout kept
    to_16k: BlockResampler | None = None  # to 16 kHz a block at a time (bounded memory)

    def feed(frames) -> None:
        nonlocal to_16k
        for c in frames:
            if to_16k is None:
                to_16k = BlockResampler(c.sample_rate)
            to_16k.feed(_mono(c))

    origin = None
    try:
        for frame in container.decode(stream):
            if stop is not None and frame.pts is not None and frame.time_base is not None:
                start = frame.pts * frame.time_base
                origin = start if origin is None else origin
                if start - origin > stop:
                    break
            feed(resampler.resample(frame))
        feed(resampler.resample(None))
    except av.FFmpegError as err:
        name = Path(container.name).name
        raise MediaError(
            f"{name} could not be decoded ({err}); re-encode it or give another file"
        ) from err
    if to_16k is None:
        return None
    wave = to_16k.finish()
    return wave if stop is None else wave[: math.ceil(stop * SAMPLE_RATE)]


def read_audio_track(path: str | os.PathLike, seconds: float | None = None) -> np.ndarray | None:
    """The first audio stream of a file -> (S,) float32 mono 16 kHz, or None when it has none.

    With `seconds`, only the first `seconds` (plus AUDIO_MARGIN, cut off again) are decoded,
    however long the track: a 30-min track under a 5-s video costs 5 s of decoding."""
    path = _existing(path)
    with _open(path) as container:
        if not container.streams.audio:
            return None
        stop = None if seconds is None else seconds + AUDIO_MARGIN
        wave = _decode_audio(container, container.streams.audio[0], stop)
    if wave is not None and seconds is not None:
        wave = wave[: round(seconds * SAMPLE_RATE)]
    return wave


def iter_video_frames(
    path: str | os.PathLike, size: tuple[int, int] | None = None
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (seconds since the first frame, (H, W, 3) uint8 RGB as displayed, at size = (W, H)
    when given) for every frame, skipping duplicate or out-of-order timestamps."""
    with VideoStream(path) as video:
        for time, frame in video.frames():
            yield float(time), frame_to_rgb(frame, size)


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
    than `max_seconds`; warns (MediaWarning) when less video decodes than the file declares.
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


def read_audio(path: str | os.PathLike, seconds: float | None = None) -> np.ndarray:
    """An audio file (wav, mp3, flac, m4a, ogg, ...) or a video's audio track ->
    (S,) float32 mono at 16 kHz; with `seconds`, only that much is decoded (see
    `read_audio_track`). soundfile is the fallback for what PyAV cannot read."""
    path = _existing(path)
    try:
        wave = read_audio_track(path, seconds)
        if wave is None:
            raise MediaError(f"{path.name} has no audio stream; give an audio file")
    except MediaError as err:
        wave = _read_with_soundfile(path, err, seconds)
    if wave is None or wave.size == 0:
        raise MediaError(f"{path.name} holds no audio samples; give another audio file")
    from selm.inference.audio_source import checked_waveform  # audio_source imports this module

    return checked_waveform(wave, path.name)


def _read_with_soundfile(path: Path, err: MediaError, seconds: float | None) -> np.ndarray:
    import soundfile

    try:
        with soundfile.SoundFile(str(path)) as sound:
            rate = sound.samplerate
            frames = -1 if seconds is None else math.ceil((seconds + AUDIO_MARGIN) * rate)
            data = sound.read(frames, dtype="float32", always_2d=True)  # (S, C)
    except (RuntimeError, soundfile.LibsndfileError):
        raise err from None
    wave = to_mono_16k(torch.from_numpy(data.T.copy()), rate).numpy()
    return wave if seconds is None else wave[: round(seconds * SAMPLE_RATE)]


def white_noise(num_samples: int, seed: int, std: float = 0.1) -> np.ndarray:
    """(num_samples,) float32 Gaussian white noise, clipped to [-1, 1]; same seed, same noise."""
    noise = np.random.default_rng(seed).normal(0.0, std, size=int(num_samples))
    return np.clip(noise, -1.0, 1.0).astype(np.float32)


def write_wav(path: str | os.PathLike, waveform: np.ndarray, sr: int = SAMPLE_RATE) -> Path:
    """(S,) or (S, C) float waveform in [-1, 1] -> 16-bit PCM WAV, written atomically."""
    import soundfile

    data = np.clip(np.asarray(waveform, dtype=np.float32), -1.0, 1.0)
    with atomic_path(path) as tmp:
        soundfile.write(str(tmp), data, int(sr), subtype="PCM_16", format="WAV")
    return Path(path)
