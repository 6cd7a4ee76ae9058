"""`Predictor`: the one boundary between media files / numpy arrays and SelM's tensors.

A video of n seconds is run in windows of T = cfg.num_frames seconds, as the model was
trained: each window's audio is cut from its own seconds and turned into T log-mel examples,
so audio example i of a window covers [i * 0.96, i * 0.96 + 0.96) s of that window, as in
AVSBench's clips. The last, short window is padded at the end (last frame repeated, audio
padded per `cfg.audio_padding`) with frame_mask False, so padding never changes real frames.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from selm.audio import SAMPLE_RATE, log_mel_examples
from selm.audio_source import NAMED, AudioSource, checked_waveform
from selm.frames import model_input
from selm.media import (
    Clip,
    MediaError,
    over_limit,
    read_audio,
    read_video,
    white_noise,
)
from selm.state_dict import CheckpointError

NOISE_SEED = 0  # audio="noise" is the same noise on every call
NOISE_STD = 0.1  # white noise at -20 dBFS RMS: clearly audible, never clipped
AUDIO_CHOICES = NAMED  # the plain strings `audio` may be (see selm.audio_source)

Progress = Callable[[float, str], object]


@dataclass
class Prediction:
    """What SelM saw and predicted for one video, one entry per second (T = seconds)."""

    frames: np.ndarray  # (T, H, W, 3) uint8 sampled frames, source resolution
    times: np.ndarray  # (T,) seconds
    probs: np.ndarray  # (T, N, H, W) float32: sigmoid (N = 1) or softmax (N > 1)
    hit_maps: list[np.ndarray]  # 3 x (T, K, h, w) float32, CLEVER layers coarse to fine
    dam_maps: list[np.ndarray | None] | None  # 4 x (T, h_s, w_s) float32 V2A attention
    bcsm: list[dict[str, np.ndarray | None]] | None  # 4 x {norm_before, norm_after (T, h, w),
    # gate_audio, gate_video (T, D) or None}
    waveform: np.ndarray  # (S,) float32 at 16 kHz: the audio the model heard
    audio_label: str  # "original" | "mute" | "noise" | a file name | "waveform"
    fps: float  # the source video's frame rate
    source: str  # the video file
    duration: float  # seconds of video

    @property
    def num_classes(self) -> int:
        return self.probs.shape[1]

    def masks(self, threshold: float = 0.5) -> np.ndarray:
        """(T, H, W): bool (probs > threshold) for binary models, int64 class ids (argmax over
        the N classes, 0 = background; the threshold is not used) for semantic ones."""
        if self.num_classes == 1:
            return self.probs[:, 0] > threshold
        return self.probs.argmax(1).astype(np.int64)


def _fit(wave: np.ndarray, num_samples: int) -> np.ndarray:
    """Cut or zero-pad (S,) to num_samples."""
    wave = wave[:num_samples]
    return np.pad(wave, (0, num_samples - len(wave))).astype(np.float32, copy=False)


def resolve_audio(clip: Clip, audio) -> tuple[np.ndarray, str]:
    """The `audio` choice for a clip -> ((S,) float32 16 kHz cut / zero-padded to the video's
    duration, label). `audio` is an `AudioSource` or what `AudioSource.parse` takes:
    "original", "mute" (zeros), "noise" (white noise, fixed seed), a path to an audio (or
    video) file (a `Path` is always a file, any other str too), or an (S,) 16 kHz waveform."""
    source = AudioSource.parse(audio)
    num_samples = round(clip.duration * SAMPLE_RATE)
    if source.kind == "mute":
        return np.zeros(num_samples, np.float32), source.label
    if source.kind == "noise":
        return white_noise(num_samples, NOISE_SEED, std=NOISE_STD), source.label
    if source.kind == "original":
        if clip.waveform is None:
            raise MediaError(
                f"{Path(clip.source).name} has no audio track, so there is no original audio; "
                "choose audio='mute' or 'noise', or give an audio file"
            )
        track = checked_waveform(clip.waveform, f"the audio track of {Path(clip.source).name}")
        return _fit(track, num_samples), source.label
    if source.kind == "file":
        if not source.path.is_file():
            raise MediaError(
                f"audio={str(source.path)!r}: no such file; expected one of {AUDIO_CHOICES}, "
                "a path to an audio file, or an (S,) waveform at 16 kHz"
            )
        return _fit(read_audio(source.path), num_samples), source.label
    return _fit(source.samples, num_samples), source.label


def _numpy(x: torch.Tensor | None, count: int) -> np.ndarray | None:
    """(1, T, ...) -> (count, ...) float32 numpy, or None."""
    return None if x is None else x[0, :count].float().cpu().numpy()


def _window_result(out, count: int, size: tuple[int, int]) -> dict:
    """One window's SelMOutput -> its `count` real frames as numpy; probs resized to size (H, W)."""
    logits = out.logits[0, :count].float()  # (count, N, out, out)
    p = torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, 1)
    p = F.interpolate(p, size=size, mode="bilinear", align_corners=False)
    return {
        "probs": p.clamp(0, 1).cpu().numpy(),
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


class Predictor:
    """Runs a SelM model (anything with `.config` and SelM's forward contract) on videos."""

    def __init__(self, model: torch.nn.Module, *, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = model.config

    @classmethod
    def from_pretrained(cls, path_or_repo: str | os.PathLike, device: str = "cpu") -> Predictor:
        """Load a checkpoint folder (config.json + model.safetensors) or a Hub repo id."""
        from selm.checkpoint import load_pretrained

        return cls(load_pretrained(path_or_repo, map_location="cpu"), device=device)

    def _frames(self, frames: np.ndarray) -> torch.Tensor:
        """(n, H, W, 3) uint8 -> (n, 3, S, S) ImageNet-normalised, bilinear (antialiased)."""
        return model_input(torch.from_numpy(frames).to(self.device), self.config.input_size)

    def _audio(self, wave: np.ndarray, start: int, count: int) -> torch.Tensor:
        """Seconds [start, start + count) of the waveform -> (T, 1, 96, 64) log-mel."""
        piece = torch.from_numpy(wave[start * SAMPLE_RATE : (start + count) * SAMPLE_RATE])
        return log_mel_examples(
            piece, num_examples=self.config.num_frames, padding=self.config.audio_padding
        )

    @torch.inference_mode()
    def predict(
        self,
        video: str | os.PathLike | Clip,
        *,
        audio: AudioSource | str | os.PathLike | np.ndarray | torch.Tensor = "original",
        progress: Progress | None = None,
        max_seconds: float | None = None,
    ) -> Prediction:
        """Segment the sounding objects of every second of `video` (a path or a `Clip`) while
        the model hears `audio` (see `resolve_audio`). progress(fraction, message) is called
        after each window."""
        if isinstance(video, Clip):
            clip = video
            if over_limit(clip.duration, max_seconds):
                raise MediaError(
                    f"the clip lasts {clip.duration:.1f} s, longer than the limit "
                    f"of {max_seconds:g} s; trim it or raise max_seconds"
                )
        else:
            clip = read_video(video, max_seconds=max_seconds)
        wave, label = resolve_audio(clip, audio)
        self.model.eval()
        n, window = clip.num_seconds, self.config.num_frames
        num_windows = math.ceil(n / window)
        windows = []
        for index, start in enumerate(range(0, n, window)):
            count = min(window, n - start)
            pad = window - count
            x = self._frames(clip.frames[start : start + count])  # (count, 3, S, S)
            x = torch.cat([x, x[-1:].expand(pad, -1, -1, -1)]) if pad else x
            mask = torch.arange(window, device=self.device) < count
            audio_mel = self._audio(wave, start, count).to(self.device)  # (T, 1, 96, 64)
            out = self.model(x[None], audio_mel[None], mask[None], return_maps=True)
            _finite_output(out.logits, start, count)
            windows.append(_window_result(out, count, (clip.height, clip.width)))
            if progress is not None:
                progress(
                    (index + 1) / num_windows,
                    f"window {index + 1}/{num_windows}: seconds {start}-{start + count - 1}",
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
        )
