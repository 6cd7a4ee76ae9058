"""`Predictor`: the one boundary between media files / numpy arrays and SelM's tensors.

A video of n seconds is run in windows of T = cfg.num_frames seconds, as the model was
trained: each window's audio is cut from its own seconds and turned into T log-mel examples,
so audio example i of a window covers [i * 0.96, i * 0.96 + 0.96) s of that window, as in
AVSBench's clips. The last, short window is padded at the end (last frame repeated, audio
padded per `cfg.audio_padding`) with frame_mask False, so padding never changes real frames.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch

from selm.inference.audio_source import NAMED, AudioSource
from selm.inference.prediction import STAGES, Prediction, probs_to_masks
from selm.media.audio import checked_waveform, read_audio, read_audio_track, white_noise
from selm.media.container import (
    PARTIAL_SECOND_MIN,
    MediaError,
    MediaWarning,
    declared_seconds,
    over_limit,
)
from selm.media.video import (
    DEFAULT_MAX_PIXELS,
    Clip,
    FrameSampler,
    VideoStream,
    displayed_size,
    fit_side,
    frame_times,
    frame_to_rgb,
)
from selm.runtime import release_freed_memory
from selm.transforms.frames import model_input
from selm.transforms.log_mel import SAMPLE_RATE, log_mel_examples
from selm.weights.state_dict import CheckpointError

NOISE_SEED = 0  # audio="noise" is the same noise on every call
NOISE_STD = 0.1  # white noise at -20 dBFS RMS: clearly audible, never clipped
AUDIO_CHOICES = NAMED  # the plain strings `audio` may be (see selm.inference.audio_source)

Progress = Callable[[float, str], object]


def _fit(wave: np.ndarray, num_samples: int) -> np.ndarray:
    """Cut or zero-pad (S,) to num_samples."""
    wave = wave[:num_samples]
    return np.pad(wave, (0, num_samples - len(wave))).astype(np.float32, copy=False)


def _no_track(name: str) -> MediaError:
    return MediaError(
        f"{name} has no audio track, so there is no original audio; "
        "choose audio='mute' or 'noise', or give an audio file"
    )


class _Heard:
    """The audio the model hears, for a video whose length is known only once decoded:
    `samples(k)` are the first k samples of what `final(duration)` returns (the choice cut or
    zero-padded to the video), so windows can run before the end is reached. A file (or the
    video's own track, `track`) is decoded only as far as `bound` seconds, and further only if
    the video turns out longer."""

    def __init__(self, source: AudioSource, *, track: Path | None = None, bound=None) -> None:
        self.source, self.track, self.bound = source, track, bound
        self.wave: np.ndarray | None = None
        if source.kind == "file" and not source.path.is_file():
            raise MediaError(
                f"audio={str(source.path)!r}: no such file; expected one of {AUDIO_CHOICES}, "
                "a path to an audio file, or an (S,) waveform at 16 kHz"
            )
        if source.kind == "waveform":
            self.wave = np.asarray(source.samples, np.float32)
        elif source.kind in ("original", "file"):
            self._read(bound)

    def _read(self, seconds: float | None) -> None:
        if self.source.kind == "original":
            track = read_audio_track(self.track, seconds)
            name = f"the audio track of {Path(self.track).name}"
            self.wave = None if track is None else checked_waveform(track, name)
        else:
            self.wave = read_audio(self.source.path, seconds)
        self.bound = seconds

    @property
    def label(self) -> str:
        return self.source.label

    def samples(self, count: int) -> np.ndarray:
        """The first `count` samples, (count,) float32."""
        kind = self.source.kind
        if kind == "mute":
            return np.zeros(count, np.float32)
        if kind == "noise":  # a longer draw of the same seed starts with the same samples
            if self.wave is None or len(self.wave) < count:
                longer = max(count, 2 * (0 if self.wave is None else len(self.wave)))
                self.wave = white_noise(longer, NOISE_SEED, std=NOISE_STD)
            return self.wave[:count]
        if self.bound is not None and count > self.bound * SAMPLE_RATE:
            self._read(count / SAMPLE_RATE)
        return _fit(self.wave, count)

    def final(self, duration: float) -> np.ndarray:
        return self.samples(round(duration * SAMPLE_RATE))


def resolve_audio(clip: Clip, audio) -> tuple[np.ndarray, str]:
    """The `audio` choice for a clip -> ((S,) float32 16 kHz cut / zero-padded to the video's
    duration, label). `audio` is an `AudioSource` or what `AudioSource.parse` takes:
    "original", "mute" (zeros), "noise" (white noise, fixed seed), a path to an audio (or
    video) file (a `Path` is always a file, any other str too), or an (S,) 16 kHz waveform.
    A file is decoded only as far as the clip lasts."""
    source = AudioSource.parse(audio)
    if source.kind == "original":
        if clip.waveform is None:
            raise _no_track(Path(clip.source).name)
        name = f"the audio track of {Path(clip.source).name}"
        heard = _Heard(AudioSource.waveform(checked_waveform(clip.waveform, name)))
        return heard.final(clip.duration), source.label
    heard = _Heard(source, bound=clip.duration)
    return heard.final(clip.duration), heard.label


def _numpy(x: torch.Tensor | None, count: int) -> np.ndarray | None:
    """(1, T, ...) -> (count, ...) float32 numpy, or None."""
    return None if x is None else x[0, :count].float().cpu().numpy()


def _window_result(out, count: int) -> dict:
    """One window's SelMOutput -> its `count` real frames as numpy (probs at the model's grid)."""
    logits = out.logits[0, :count].float()  # (count, N, out, out)
    p = torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, 1)
    return {
        "probs": p.cpu().numpy(),
        "hit_maps": [_numpy(h, count) for h in out.hit_maps],
        "dam_maps": None if out.dam_maps is None else [_numpy(d, count) for d in out.dam_maps],
        "bcsm": None
        if out.bcsm is None
        else [{k: _numpy(v, count) for k, v in level.items()} for level in out.bcsm],
    }


def _finite_output(logits: torch.Tensor, start: int, count: int) -> None:
    """CheckpointError when a window's (real frames') logits hold NaN or infinite values: the
    masks would be silently empty (NaN > threshold is False)."""
    if not bool(torch.isfinite(logits[:, :count]).all()):
        raise CheckpointError(
            f"the model's output for seconds {start}-{start + count - 1} holds NaN or infinite "
            "values: the checkpoint is broken (corrupted or wrongly converted weights) or "
            "overflows on this device; load a good checkpoint (or run on the CPU in float32)"
        )


def _concat(parts: list):
    """Join per-window results (arrays, or lists / dicts of them, or None) along time."""
    first = parts[0]
    if first is None:
        return None
    if isinstance(first, np.ndarray):
        return np.concatenate(parts)
    if isinstance(first, dict):
        return {key: _concat([part[key] for part in parts]) for key in first}
    return [_concat([part[i] for part in parts]) for i in range(len(first))]


def check_inputs(video: str | os.PathLike, audio="original", max_seconds=None) -> None:
    """Raise the MediaError `predict` would for this video and audio choice without decoding
    anything (the file opens, no stream declares more than max_seconds, the audio exists)."""
    source = AudioSource.parse(audio)
    with VideoStream(video, max_seconds) as stream:
        if source.kind == "original" and not stream.has_audio:
            raise _no_track(stream.path.name)
    if source.kind == "file" and not source.path.is_file():
        _Heard(source, bound=0)  # raises the missing-file message


class _Frames:
    """The sampled frames of a run, in one preallocated (grown when needed) array."""

    def __init__(self, capacity: int) -> None:
        self.array: np.ndarray | None = None
        self.count, self.capacity = 0, max(1, capacity)

    def extend(self, frames: list[np.ndarray]) -> None:
        for frame in frames:
            if self.array is None:
                self.array = np.empty((self.capacity, *frame.shape), np.uint8)
            elif self.count == len(self.array):
                self.array = np.concatenate([self.array, np.empty_like(self.array)])
            self.array[self.count] = frame
            self.count += 1

    def result(self) -> np.ndarray:
        return self.array[: self.count]


class _Clock:
    """Seconds spent per stage (STAGES), and the progress callback's messages."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
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


class Predictor:
    """Runs a SelM model (anything with `.config` and SelM's forward contract) on videos."""

    def __init__(self, model: torch.nn.Module, *, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = model.config

    @classmethod
    def from_pretrained(cls, path_or_repo: str | os.PathLike, device: str = "cpu") -> Predictor:
        """Load a checkpoint folder (config.json + model.safetensors) or a Hub repo id."""
        from selm.weights.resolve import load_pretrained

        return cls(load_pretrained(path_or_repo, map_location="cpu"), device=device)

    def _frames(self, frames: np.ndarray) -> torch.Tensor:
        """(n, H, W, 3) uint8 -> (n, 3, S, S) ImageNet-normalised, bilinear (antialiased)."""
        return model_input(torch.from_numpy(frames).to(self.device), self.config.input_size)

    def _audio(self, piece: np.ndarray) -> torch.Tensor:
        """A window's waveform -> (T, 1, 96, 64) log-mel."""
        return log_mel_examples(
            torch.from_numpy(piece),
            num_examples=self.config.num_frames,
            padding=self.config.audio_padding,
        )

    def _window(self, frames: np.ndarray, wave: np.ndarray, clock: _Clock, start: int) -> dict:
        """One window's `count` <= T real frames and its audio -> `_window_result`; the window
        is padded at the end (last frame repeated, frame_mask False); `start`: its first second
        (for the broken-checkpoint message)."""
        window, count = self.config.num_frames, len(frames)
        audio_mel = self._audio(wave).to(self.device)  # (T, 1, 96, 64)
        clock.stage("log-mel")
        x = self._frames(frames)  # (count, 3, S, S)
        pad = window - count
        x = torch.cat([x, x[-1:].expand(pad, -1, -1, -1)]) if pad else x
        mask = torch.arange(window, device=self.device) < count
        out = self.model(x[None], audio_mel[None], mask[None], return_maps=True)
        _finite_output(out.logits, start, count)
        result = _window_result(out, count)
        clock.stage("model")
        return result

    @torch.inference_mode()
    def predict(
        self,
        video: str | os.PathLike | Clip,
        *,
        audio: AudioSource | str | os.PathLike | np.ndarray | torch.Tensor = "original",
        progress: Progress | None = None,
        max_seconds: float | None = None,
        overlay: str | os.PathLike | None = None,
        threshold: float = 0.5,
        size: tuple[int, int] | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        max_side: int | None = None,
        frames_max_side: int | None = None,
    ) -> Prediction:
        """Segment the sounding objects of every second of `video` (a path or a `Clip`) while
        the model hears `audio` (see `resolve_audio`).

        A file is read in one pass, one window of T seconds at a time (decode, log-mel, model,
        and with `overlay` = a path, drawing the masks (p > threshold) on every frame of the
        window and encoding them at their own timestamps, with the audio heard): memory does
        not grow with the video's frames. Frames are decoded at size = (W, H) (default: the
        source's as displayed, scaled down to at most `max_pixels` (None: no cap) and to a
        longer side of at most `max_side`). The one sampled frame per second that the
        prediction keeps (`frames`, for display) is scaled to a longer side of at most
        `frames_max_side` (None: as decoded; `size` stays the decoded one): a long video's
        memory then grows by that thumbnail per second. progress(fraction, message) is called
        after every stage of every window (decode, model, render, encode).
        """
        self.model.eval()
        if isinstance(video, Clip):
            if over_limit(video.duration, max_seconds):
                raise MediaError(
                    f"the clip lasts {video.duration:.1f} s, longer than the limit "
                    f"of {max_seconds:g} s; trim it or raise max_seconds"
                )
            pred = self._predict_clip(video, audio, _Clock(progress))
            if overlay is not None:
                from selm.render.paint import write_overlay_video

                write_overlay_video(pred, overlay, threshold, size=size)
                pred.overlay, pred.overlay_threshold = Path(overlay), threshold
            return pred
        return self._predict_file(
            video,
            audio,
            _Clock(progress),
            max_seconds,
            overlay,
            threshold,
            size,
            (max_pixels, max_side),
            frames_max_side,
        )

    def _predict_clip(self, clip: Clip, audio, clock: _Clock) -> Prediction:
        wave, label = resolve_audio(clip, audio)
        n, window = clip.num_seconds, self.config.num_frames
        num_windows = math.ceil(n / window)
        windows = []
        for index, start in enumerate(range(0, n, window)):
            count = min(window, n - start)
            piece = wave[start * SAMPLE_RATE : (start + count) * SAMPLE_RATE]
            windows.append(self._window(clip.frames[start : start + count], piece, clock, start))
            clock.report(
                (index + 1) / num_windows,
                f"model: window {index + 1}/{num_windows}, seconds {start}-{start + count - 1}",
            )
        return Prediction(
            frames=clip.frames,
            times=clip.times,
            **_concat(windows),
            waveform=wave,
            audio_label=label,
            fps=clip.fps,
            source=clip.source,
            duration=clip.duration,
            notes=list(clip.notes),
            timings=dict(clock.spent),
            in_memory=not Path(clip.source).is_file(),
        )

    def _predict_file(
        self, path, audio, clock: _Clock, max_seconds, overlay, threshold, size, caps, keep_side
    ) -> Prediction:
        from selm.media.writer import open_writer
        from selm.render.paint import paint_frames

        source = AudioSource.parse(audio)
        window = self.config.num_frames
        with contextlib.ExitStack() as stack:
            video = stack.enter_context(VideoStream(path, max_seconds))
            if source.kind == "original" and not video.has_audio:
                raise _no_track(video.path.name)
            declared = [v for v in declared_seconds(video.container).values()]
            expected = max(declared) if declared else max_seconds  # a guess until decoded
            bound = None if expected is None else expected + PARTIAL_SECOND_MIN
            heard = _Heard(source, track=video.path, bound=bound)
            clock.stage("decode")
            est_windows = max(1, math.ceil((expected or window) / window))
            frames = _Frames(math.ceil(expected or window) + 1)
            writer = None
            shape = None  # (W, H) frames are decoded at
            sampler = FrameSampler(lambda frame: frame_to_rgb(frame, shape))
            buffer: list[tuple[Fraction, np.ndarray]] = []  # this window's frames (overlay)
            windows: list[dict] = []
            audio_written = 0

            def run_window(count: int, last: bool, total: int) -> None:
                nonlocal audio_written
                index = len(windows)
                start = index * window
                stages = ("decode", "model", "render", "encode") if writer else ("decode", "model")

                def step(name: str) -> None:
                    part = (stages.index(name) + 1) / len(stages)
                    clock.report((index + part) / total, f"{name}: window {index + 1}/{total}")

                step("decode")
                picks = sampler.picks[start : start + count]
                wave = heard.samples((start + count) * SAMPLE_RATE)[start * SAMPLE_RATE :]
                clock.stage("decode")
                result = self._window(np.stack(picks), wave, clock, start)
                windows.append(result)
                frames.extend(_thumbnails(picks, keep_side))
                sampler.picks[start : start + count] = [None] * count
                release_freed_memory()  # else a long video's heap only grows (selm.runtime)
                step("model")
                if writer is None:
                    return
                if last:
                    stop = round(video.duration * SAMPLE_RATE)
                else:
                    stop = (start + count) * SAMPLE_RATE
                if stop > audio_written:
                    writer.write_audio(heard.samples(stop)[audio_written:])
                    audio_written = stop
                masks = probs_to_masks(result["probs"], (shape[1], shape[0]), threshold)
                clock.stage("render")
                for when, image in paint_frames(buffer, masks, start):  # one frame at a time
                    clock.stage("render")
                    writer.write_frame(image, when)
                    clock.stage("encode")
                buffer.clear()
                step("render")
                step("encode")

            for when, frame in video.frames():
                if shape is None:
                    shape = size if size is not None else displayed_size(frame, *caps)
                    shape = (int(shape[0]), int(shape[1]))
                    if overlay is not None:
                        writer = stack.enter_context(
                            open_writer(
                                overlay,
                                size=shape,
                                fps=video.fps or 30,
                                sample_rate=SAMPLE_RATE,
                                time_base=video.time_base,
                            )
                        )
                rgb = frame_to_rgb(frame, shape) if writer is not None else None
                sampler.push(when, frame, rgb)
                while when >= (len(windows) + 1) * window:
                    run_window(window, False, max(est_windows, len(windows) + 2))
                if writer is not None:
                    buffer.append((when, rgb))
            n = video.num_seconds
            sampler.finish(n)
            total = math.ceil(n / window)
            while len(windows) < total:
                start = len(windows) * window
                run_window(min(window, n - start), len(windows) == total - 1, total)
            notes = [video.truncation()] if video.truncation() else []
            for note in notes:
                warnings.warn(note, MediaWarning, stacklevel=3)
        return Prediction(
            frames=frames.result(),
            times=frame_times(n),
            **_concat(windows),
            waveform=heard.final(video.duration),
            audio_label=heard.label,
            fps=video.mean_fps,
            source=str(video.path),
            duration=video.duration,
            notes=notes,
            overlay=None if overlay is None else Path(overlay),
            overlay_threshold=None if overlay is None else threshold,
            timings=dict(clock.spent),
            frame_size=None if frames.result().shape[1:3] == (shape[1], shape[0]) else shape,
        )


def _thumbnails(frames: list[np.ndarray], max_side: int | None) -> list[np.ndarray]:
    """The frames scaled (area) to a longer side of at most max_side; as they are for None."""
    if not frames:
        return frames
    height, width = frames[0].shape[:2]
    size = fit_side(width, height, max_side)
    if size == (width, height):
        return frames
    return [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
