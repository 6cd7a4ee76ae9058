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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from selm.audio import SAMPLE_RATE, to_mono_16k
from selm.state_dict import atomic_path

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

    @property
    def has_audio(self) -> bool:
        return self.waveform is not None

    @property
    def num_seconds(self) -> int:
        return len(self.times)


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    return path


@contextmanager
def _open(path: Path) -> Iterator[av.container.InputContainer]:
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        raise MediaError(
            f"{path.name} is not a readable media file ({err}); give a video such as mp4, webm, "
            "mov, avi or mkv, or an audio file such as wav, mp3, flac, m4a or ogg"
        ) from err
    try:
        yield container
    finally:
        container.close()


def _too_long(path: Path, seconds: float, max_seconds: float) -> MediaError:
    return MediaError(
        f"{path.name} lasts {seconds:.1f} s, longer than the limit of {max_seconds:g} s; "
        f"trim it (e.g. `ffmpeg -i in.mp4 -t {max_seconds:g} out.mp4`) or raise max_seconds"
    )


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    """(H, W, 3) uint8 RGB as displayed: the container's rotation applied."""
    image = frame.to_ndarray(format="rgb24")
    quarter_turns = round(getattr(frame, "rotation", 0) / 90) % 4  # counter-clockwise
    return np.ascontiguousarray(np.rot90(image, quarter_turns)) if quarter_turns else image


def _fps(stream: av.video.stream.VideoStream) -> Fraction | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else None


def _frame_start(frame: av.VideoFrame, index: int, fps: Fraction | None) -> Fraction | None:
    """Presentation time in seconds (exact), or None when neither pts nor a rate is known."""
    if frame.pts is not None and frame.time_base is not None:
        return frame.pts * Fraction(frame.time_base)
    return index / fps if fps else None


class _FrameSampler:
    """Picks, in one pass, the last frame shown at or before each instant i + 14/16 s.

    Only the current frame is held (as a decoded PyAV frame) and only picked frames are
    converted to RGB arrays.
    """

    def __init__(self, fps: Fraction | None, max_seconds: float | None, path: Path) -> None:
        self.fps, self.max_seconds, self.path = fps, max_seconds, path
        self.picks: list[np.ndarray] = []
        self.count = 0
        self.origin: Fraction | None = None
        self.last: av.VideoFrame | None = None
        self.last_time = Fraction(0)
        self.last_rgb: np.ndarray | None = None
        self.gap = Fraction(0)  # last inter-frame interval, a fallback for the frame duration

    def _pick_last(self) -> None:
        if self.last_rgb is None:
            self.last_rgb = _rgb(self.last)
        self.picks.append(self.last_rgb)

    def push(self, frame: av.VideoFrame) -> None:
        start = _frame_start(frame, self.count, self.fps)
        if start is None:
            start = self.last_time + self.gap if self.count else Fraction(0)
        if self.origin is None:
            self.origin = start
        time = start - self.origin
        if self.count and time <= self.last_time:
            return  # a duplicate or out-of-order timestamp: keep the first frame shown
        if over_limit(time, self.max_seconds):
            raise _too_long(self.path, float(time), self.max_seconds)
        while self.last is not None and time > len(self.picks) + FRAME_OFFSET:
            self._pick_last()
        if self.count:
            self.gap = time - self.last_time
        self.last, self.last_time, self.last_rgb = frame, time, None
        self.count += 1

    def finish(self) -> tuple[np.ndarray, float]:
        """-> frames (n, H, W, 3) uint8, duration in seconds."""
        if self.last is None:
            raise MediaError(
                f"{self.path.name} has a video stream but no decodable frame; re-encode it "
                "(e.g. `ffmpeg -i in -c:v libx264 out.mp4`) or give another file"
            )
        length = Fraction(self.last.duration or 0) * Fraction(self.last.time_base or 0)
        if length <= 0:
            length = 1 / self.fps if self.fps else self.gap
        duration = float(self.last_time + length)
        if over_limit(duration, self.max_seconds):
            raise _too_long(self.path, duration, self.max_seconds)
        num_seconds = max(1, math.ceil(duration - PARTIAL_SECOND_MIN))
        while len(self.picks) < num_seconds:
            self._pick_last()
        return np.stack(self.picks), duration


class _AudioCollector:
    """Decoded audio frames -> (S,) float32 mono 16 kHz (channel mean, as `to_mono_16k`)."""

    def __init__(self) -> None:
        self.resampler = av.AudioResampler(format="fltp")  # sample format only; rate, layout kept
        self.chunks: list[np.ndarray] = []

    def push(self, frame: av.AudioFrame | None) -> None:
        for converted in self.resampler.resample(frame):
            self.chunks.append(converted.to_ndarray())  # (C, n)

    def finish(self) -> np.ndarray | None:
        self.push(None)
        if not self.chunks:
            return None
        wave = torch.from_numpy(np.concatenate(self.chunks, axis=1))
        return to_mono_16k(wave, self.resampler.rate).numpy()


def _decode(container, streams, sampler=None, audio=None) -> None:
    try:
        for packet in container.demux(*streams):
            for frame in packet.decode():
                if isinstance(frame, av.VideoFrame):
                    sampler.push(frame)
                elif audio is not None:
                    audio.push(frame)
    except av.FFmpegError as err:
        name = Path(container.name).name
        raise MediaError(
            f"{name} could not be decoded ({err}); re-encode it or give another file"
        ) from err


def iter_video_frames(path: str | os.PathLike) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (seconds since the first frame, (H, W, 3) uint8 RGB as displayed) for every frame."""
    path = _existing(path)
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path.name} has no video stream; give a video file")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps, origin = _fps(stream), None
        for index, frame in enumerate(container.decode(stream)):
            start = _frame_start(frame, index, fps) or Fraction(0)
            origin = start if origin is None else origin
            yield float(start - origin), _rgb(frame)


def read_video(path: str | os.PathLike, max_seconds: float | None = None) -> Clip:
    """Decode a video (mp4, webm, mov, avi, mkv, ...) in one pass -> `Clip`.

    Raises MediaError for a file that is not media, has no video stream or no decodable frame,
    or lasts longer than `max_seconds`.
    """
    path = _existing(path)
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(
                f"{path.name} has no video stream; give a video file (an audio file can only be "
                "used as the audio of a video)"
            )
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if max_seconds is not None:
            if stream.duration is not None and stream.time_base is not None:
                declared = float(stream.duration * stream.time_base)
            else:
                declared = (container.duration or 0) / av.time_base
            if over_limit(declared, max_seconds):
                raise _too_long(path, declared, max_seconds)
        fps = _fps(stream)
        sampler = _FrameSampler(fps, max_seconds, path)
        streams = [stream]
        audio = None
        if container.streams.audio:
            streams.append(container.streams.audio[0])
            audio = _AudioCollector()
        _decode(container, streams, sampler, audio)
        frames, duration = sampler.finish()
        waveform = audio.finish() if audio is not None else None
    count = len(frames)
    return Clip(
        frames=frames,
        times=frame_times(count),
        waveform=waveform,
        duration=duration,
        fps=float(fps) if fps else sampler.count / duration,
        width=frames.shape[2],
        height=frames.shape[1],
        source=str(path),
    )


def read_audio(path: str | os.PathLike) -> np.ndarray:
    """An audio file (wav, mp3, flac, m4a, ogg, ...) or a video's audio track ->
    (S,) float32 mono at 16 kHz. soundfile is the fallback for what PyAV cannot read."""
    path = _existing(path)
    try:
        with _open(path) as container:
            if not container.streams.audio:
                raise MediaError(f"{path.name} has no audio stream; give an audio file")
            audio = _AudioCollector()
            _decode(container, [container.streams.audio[0]], audio=audio)
            wave = audio.finish()
    except MediaError as err:
        wave = _read_with_soundfile(path, err)
    if wave is None or wave.size == 0:
        raise MediaError(f"{path.name} holds no audio samples; give another audio file")
    from selm.audio_source import checked_waveform  # audio_source imports this module

    return checked_waveform(wave, path.name)


def _read_with_soundfile(path: Path, err: MediaError) -> np.ndarray:
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # (S, C)
    except (RuntimeError, soundfile.LibsndfileError):
        raise err from None
    return to_mono_16k(torch.from_numpy(data.T.copy()), rate).numpy()


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
