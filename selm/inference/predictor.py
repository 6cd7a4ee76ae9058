"""`Predictor`: the one boundary between media files / numpy arrays and SelM's tensors.

`Predictor.windows(video)` yields each window's result as it is computed (selm.inference.windows:
T = cfg.num_frames seconds at a time, one pass over a file, memory bounded per window);
`Predictor.predict(video)` collects them into one `Prediction`. Drawing is left to consumers of
the windows (selm.render.overlay.OverlayVideo writes the overlay video in the same pass).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator

import numpy as np
import torch

from selm.inference.audio_source import AudioSource, HeardAudio, no_track
from selm.inference.options import (
    check_device,
    check_max_pixels,
    check_max_seconds,
    check_side,
    check_size,
    check_video_path,
)
from selm.inference.prediction import Prediction
from selm.inference.windows import Clock, Window, clip_windows, file_windows
from selm.media.container import MediaError, over_limit
from selm.media.video import DEFAULT_MAX_PIXELS, Clip, VideoStream
from selm.runtime import Progress
from selm.transforms.frames import model_input
from selm.transforms.log_mel import log_mel_examples
from selm.weights.state_dict import CheckpointError


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


def check_inputs(video: str | os.PathLike, audio="original", max_seconds=None) -> None:
    """Raise the MediaError `predict` would for this video and audio choice without decoding
    anything (the file opens, no stream declares more than max_seconds, the audio exists)."""
    source = AudioSource.parse(audio)
    max_seconds = check_max_seconds(max_seconds)
    with VideoStream(check_video_path(video), max_seconds) as stream:
        if source.kind == "original" and not stream.has_audio:
            raise no_track(stream.path.name)
    if source.kind == "file" and not source.path.is_file():
        HeardAudio(source, bound=0)  # raises the missing-file message


class Predictor:
    """Runs a SelM model (anything with `.config` and SelM's forward contract) on videos."""

    def __init__(self, model: torch.nn.Module, *, device: str | torch.device = "cpu") -> None:
        self.device = check_device(device)
        self.model = model.to(self.device).eval()
        self.config = model.config

    @classmethod
    def from_pretrained(cls, spec: str | os.PathLike, device: str = "cpu") -> Predictor:
        """Load a checkpoint spec: a folder, a Hub repo id, official:NAME or a published .pth
        (selm.weights.resolve)."""
        from selm.weights.resolve import load_pretrained

        check_device(device)  # before the weights load
        return cls(load_pretrained(spec, map_location="cpu"), device=device)

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

    @torch.inference_mode()
    def _window(self, frames: np.ndarray, wave: np.ndarray, start: int, *, clock: Clock) -> dict:
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

    def windows(
        self,
        video: str | os.PathLike | Clip,
        *,
        audio: AudioSource | str | os.PathLike | np.ndarray | torch.Tensor = "original",
        progress: Progress | None = None,
        max_seconds: float | None = None,
        size: tuple[int, int] | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        max_side: int | None = None,
        frames_max_side: int | None = None,
        video_frames: bool = False,
    ) -> Iterator[Window]:
        """Each window's result, as soon as it is computed, for `video` (a path or a `Clip`)
        heard with `audio` (an AudioSource or its plain form, see `resolve_audio`).

        A file is read in one pass (selm.inference.windows). Frames are decoded at size = (W, H)
        (default: the source's as displayed, scaled down to at most `max_pixels` (None: no cap)
        and to a longer side of at most `max_side`). The one sampled frame per second a window
        holds (`frames`, for display) is scaled to a longer side of at most `frames_max_side`
        (None: as decoded). `video_frames`: each window also holds every frame shown in its
        seconds, for a consumer that draws and encodes them and reports its "render" and
        "encode" stages (selm.render.overlay.OverlayVideo). progress(fraction, message) is
        called after every stage of every window. Every option is checked here, before anything
        is decoded (ValueError with what to give instead: selm.inference.options)."""
        max_seconds = check_max_seconds(max_seconds)
        size, max_pixels = check_size(size), check_max_pixels(max_pixels)
        max_side = check_side(max_side, "max_side")
        frames_max_side = check_side(frames_max_side, "frames_max_side")
        self.model.eval()
        stages = ("decode", "model", "render", "encode") if video_frames else ("decode", "model")
        clock = Clock(progress, stages)
        infer = functools.partial(self._window, clock=clock)
        window = self.config.num_frames
        if isinstance(video, Clip):
            if over_limit(video.duration, max_seconds):
                raise MediaError(
                    f"the clip lasts {video.duration:.1f} s, longer than the limit "
                    f"of {max_seconds:g} s; trim it or raise max_seconds"
                )
            return clip_windows(infer, video, audio, window=window, clock=clock)
        return file_windows(
            infer,
            check_video_path(video),
            audio,
            window=window,
            clock=clock,
            max_seconds=max_seconds,
            size=size,
            caps=(max_pixels, max_side),
            keep_side=frames_max_side,
            video_frames=video_frames,
        )

    def predict(self, video: str | os.PathLike | Clip, **options) -> Prediction:
        """Segment the sounding objects of every second of `video` while the model hears
        `audio`: `windows(video, **options)` collected into one `Prediction`."""
        return Prediction.from_windows(self.windows(video, **options))
