"""Inference as a stream of windows: the predictor yields each window's result as soon as the
window is decoded and run, and consumers take it from there: an overlay writer that draws and
encodes it (selm.render.overlay), `Prediction.from_windows` that keeps what a prediction holds.

A video of n seconds runs in windows of T = cfg.num_frames seconds, as the model was trained:
each window's audio is cut from its own seconds and turned into T log-mel examples
(docs/model.md, section 'Time sampling'). The last, short window is padded at the end (last
frame repeated, audio padded per `cfg.audio_padding`) with frame_mask False, so padding never
changes real frames.

A file is read in one pass: every stream's and the container's declared duration is checked
against `max_seconds` before anything is decoded; the audio heard is decoded only as far as the
video lasts; frames are scaled while decoding; then one window at a time is decoded, turned
into log-mel and run. Memory holds one window: its sampled frames and, when a consumer asks for
them (`video_frames`), every frame shown in its seconds; what grows with the video is only what
the consumers keep.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from selm.inference.audio_source import AudioSource, HeardAudio, heard_for_clip, no_track
from selm.inference.prediction import STAGES
from selm.media.container import PARTIAL_SECOND_MIN, MediaWarning, declared_seconds
from selm.media.video import (
    Clip,
    FrameSampler,
    VideoStream,
    displayed_size,
    fit_side,
    frame_times,
    frame_to_rgb,
)
from selm.runtime import Progress, release_freed_memory
from selm.transforms.log_mel import SAMPLE_RATE

# infer(frames (n, H, W, 3) uint8, waveform (S,), first second) -> one window's outputs
Infer = Callable[[np.ndarray, np.ndarray, int], dict]


class Clock:
    """Seconds spent per stage (STAGES), shared by the stream and its consumers, and the
    progress callback's reports: `stages` are the stages of one window, in order."""

    def __init__(self, progress: Progress | None, stages: tuple[str, ...]) -> None:
        self.progress, self.stages = progress, stages
        self.spent = dict.fromkeys(STAGES, 0.0)
        self.mark = time.perf_counter()

    def stage(self, name: str) -> None:
        """Everything since the last call counts as `name`."""
        now = time.perf_counter()
        self.spent[name] += now - self.mark
        self.mark = now

    def report(self, fraction: float, message: str) -> None:
        if self.progress is not None:
            self.progress(min(max(fraction, 0.0), 1.0), message)

    def step(self, name: str, index: int, total: int) -> None:
        """Report stage `name` of window `index` (of `total`) done."""
        part = (self.stages.index(name) + 1) / len(self.stages)
        self.report((index + part) / total, f"{name}: window {index + 1}/{total}")


@dataclass(frozen=True)
class Source:
    """The video a stream reads: its path, the (W, H) it is decoded at, its frame rate and time
    base (None for an in-memory clip: there is nothing to decode again)."""

    path: str
    size: tuple[int, int]
    fps: Fraction | float
    time_base: Fraction | None
    in_memory: bool = False


@dataclass(frozen=True)
class Ending:
    """What is known once the whole video is decoded (carried by the last window)."""

    duration: float  # seconds of video
    fps: float  # its mean frame rate
    waveform: np.ndarray  # (S,) float32 16 kHz: all the audio the model heard
    audio_label: str
    notes: list[str] = field(default_factory=list)  # what the file did not hold as declared


@dataclass
class Window:
    """One window of n <= T seconds, as the model saw and predicted it.

    The arrays are a `Prediction`'s for these seconds (see there); `audio` is what the model
    heard from second `start` on, up to the window's end (the video's end for the last one), so
    that an output track made of the windows' pieces is the heard audio; `video` holds every
    frame shown in these seconds, (time in seconds, (H, W, 3) uint8 at `source.size`), when the
    stream was asked for them."""

    index: int
    start: int  # the window's first second
    total: int  # windows in the video (an estimate until its end is decoded)
    times: np.ndarray  # (n,) seconds
    frames: np.ndarray  # (n, H, W, 3) uint8 sampled frames (thumbnails with frames_max_side)
    probs: np.ndarray  # (n, N, h, w) float32
    hit_maps: list[np.ndarray]
    dam_maps: list[np.ndarray | None] | None
    bcsm: list[dict[str, np.ndarray | None]] | None
    audio: np.ndarray  # (S,) float32 16 kHz
    source: Source
    clock: Clock
    video: list[tuple[Fraction | float, np.ndarray]] | None = None
    ending: Ending | None = None  # the last window only

    @property
    def last(self) -> bool:
        return self.ending is not None

    def report(self, stage: str) -> None:
        """Tell the clock (and the progress callback) that `stage` of this window is done."""
        self.clock.step(stage, self.index, self.total)


def _thumbnails(frames: list[np.ndarray], max_side: int | None) -> list[np.ndarray]:
    """The frames scaled (area) to a longer side of at most max_side; as they are for None."""
    if not frames:
        return frames
    height, width = frames[0].shape[:2]
    size = fit_side(width, height, max_side)
    if size == (width, height):
        return frames
    return [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]


class _FilePass:
    """The state of one pass over a file: the sampler of 1-fps frames, the heard audio, and the
    current window's full-rate frames (kept only for a consumer that asked for them)."""

    def __init__(
        self,
        infer: Infer,
        video: VideoStream,
        heard: HeardAudio,
        *,
        clock: Clock,
        window: int,
        size,
        caps,
        keep_side,
        video_frames: bool,
    ) -> None:
        self.infer, self.video, self.heard, self.clock = infer, video, heard, clock
        self.window, self.size, self.caps, self.keep_side = window, size, caps, keep_side
        self.video_frames = video_frames
        self.shape: tuple[int, int] | None = None  # (W, H) frames are decoded at
        self.source: Source | None = None  # known at the first frame
        self.sampler = FrameSampler(lambda frame: frame_to_rgb(frame, self.shape))
        self.buffer: list[tuple[Fraction, np.ndarray]] = []
        self.done = 0  # windows yielded

    def push(self, when: Fraction, frame) -> np.ndarray | None:
        """A decoded frame -> the sampler; returns it as RGB at the decoded size when the
        consumers want every frame (else None: only sampled frames are converted)."""
        if self.shape is None:
            shape = self.size if self.size is not None else displayed_size(frame, *self.caps)
            self.shape = (int(shape[0]), int(shape[1]))
            video = self.video
            self.source = Source(str(video.path), self.shape, video.fps or 30, video.time_base)
        rgb = frame_to_rgb(frame, self.shape) if self.video_frames else None
        self.sampler.push(when, frame, rgb)
        return rgb

    def keep(self, when: Fraction, rgb: np.ndarray | None) -> None:
        """A frame of the window being decoded, for the consumers."""
        if self.video_frames:
            self.buffer.append((when, rgb))

    def next_window(self, count: int, total: int, ending: bool = False) -> Window:
        """Run the next window of `count` seconds; with `ending`, the video is decoded to its end
        and the window is the last."""
        index, start = self.done, self.done * self.window
        self.clock.step("decode", index, total)
        picks = self.sampler.picks[start : start + count]
        wave = self.heard.samples((start + count) * SAMPLE_RATE)[start * SAMPLE_RATE :]
        self.clock.stage("decode")
        outputs = self.infer(np.stack(picks), wave, start)
        frames = np.stack(_thumbnails(picks, self.keep_side))
        self.sampler.picks[start : start + count] = [None] * count
        release_freed_memory()  # else a long video's heap only grows (selm.runtime)
        self.clock.step("model", index, total)
        video, self.buffer = (self.buffer if self.video_frames else None), []
        window = Window(
            index=index,
            start=start,
            total=total,
            times=frame_times(start + count)[start:],
            frames=frames,
            audio=wave,
            source=self.source,
            clock=self.clock,
            video=video,
            **outputs,
        )
        if ending:
            window.audio, window.ending = self._ending(start)
        self.done += 1
        return window

    def _ending(self, start: int) -> tuple[np.ndarray, Ending]:
        video = self.video
        stop = round(video.duration * SAMPLE_RATE)
        audio = self.heard.samples(stop)[start * SAMPLE_RATE :]
        notes = [video.truncation()] if video.truncation() else []
        notes += video.clock_notes(original_audio=self.heard.source.kind == "original")
        notes += self.heard.notes
        for note in notes:
            warnings.warn(note, MediaWarning, stacklevel=4)
        ending = Ending(
            video.duration,
            video.mean_fps,
            self.heard.final(video.duration),
            self.heard.label,
            notes,
        )
        return audio, ending


def file_windows(
    infer: Infer,
    path,
    audio,
    *,
    window: int,
    clock: Clock,
    max_seconds=None,
    size=None,
    caps=(None, None),
    keep_side=None,
    video_frames=False,
) -> Iterator[Window]:
    """The windows of a video file, in one pass (module docstring)."""
    source = AudioSource.parse(audio)
    with VideoStream(path, max_seconds) as video:
        if source.kind == "original" and not video.has_audio:
            raise no_track(video.path.name)
        declared = list(declared_seconds(video.container).values())
        expected = max(declared) if declared else max_seconds  # a guess until decoded
        # audio is decoded that far at first (further, if the video turns out longer); a
        # declared length only bounds what is read, never what is allocated
        bound = (expected if expected is not None else window) + PARTIAL_SECOND_MIN
        heard = HeardAudio(source, track=video.path, bound=bound)
        clock.stage("decode")
        guess = max(1, math.ceil((expected or window) / window))
        run = _FilePass(
            infer,
            video,
            heard,
            clock=clock,
            window=window,
            size=size,
            caps=caps,
            keep_side=keep_side,
            video_frames=video_frames,
        )
        for when, frame in video.frames():
            rgb = run.push(when, frame)
            while when >= (run.done + 1) * window:
                yield run.next_window(window, max(guess, run.done + 2))
            run.keep(when, rgb)  # after the window it ended: it belongs to the next one
        n = video.num_seconds
        run.sampler.finish(n)
        total = math.ceil(n / window)
        while run.done < total:
            count = min(window, n - run.done * window)
            yield run.next_window(count, total, ending=run.done == total - 1)


def clip_windows(infer: Infer, clip: Clip, audio, *, window: int, clock: Clock) -> Iterator[Window]:
    """The windows of an in-memory `Clip` (its frames one a second; no frames to decode)."""
    heard = heard_for_clip(clip, audio)
    wave, label = heard.final(clip.duration), AudioSource.parse(audio).label
    n = clip.num_seconds
    total = math.ceil(n / window)
    source = Source(
        clip.source,
        (clip.width, clip.height),
        clip.fps,
        None,
        in_memory=not Path(clip.source).is_file(),
    )
    for index, start in enumerate(range(0, n, window)):
        count = min(window, n - start)
        piece = wave[start * SAMPLE_RATE : (start + count) * SAMPLE_RATE]
        outputs = infer(clip.frames[start : start + count], piece, start)
        clock.report(
            (index + 1) / total,
            f"model: window {index + 1}/{total}, seconds {start}-{start + count - 1}",
        )
        last = index == total - 1
        yield Window(
            index=index,
            start=start,
            total=total,
            times=clip.times[start : start + count],
            frames=clip.frames[start : start + count],
            audio=piece,
            source=source,
            clock=clock,
            ending=Ending(clip.duration, clip.fps, wave, label, [*clip.notes, *heard.notes])
            if last
            else None,
            **outputs,
        )
