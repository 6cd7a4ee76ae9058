"""`Prediction`: what SelM saw and predicted for one video, one entry per second, collected from
the predictor's windows (`Prediction.from_windows`), and the masks made from its
probabilities (`probs_to_masks`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from selm.inference.options import check_size, check_threshold

MASK_CHUNK = 16  # seconds of probabilities resized at a time (bounds `masks()`'s memory)
STAGES = ("decode", "log-mel", "model", "render", "encode")  # `Prediction.timings`' keys


def _mask_chunks(
    probs: np.ndarray | torch.Tensor, size: tuple[int, int], threshold: float
) -> Iterator[np.ndarray]:
    """`probs_to_masks` MASK_CHUNK seconds at a time: (t, H, W) arrays, t <= MASK_CHUNK."""
    probs = torch.as_tensor(probs)
    for start in range(0, len(probs), MASK_CHUNK):
        p = probs[start : start + MASK_CHUNK].float()
        if tuple(p.shape[2:]) != tuple(size):
            p = F.interpolate(p, size=tuple(size), mode="bilinear", align_corners=False)
        p = p.clamp(0, 1)
        masks = (p[:, 0] > threshold) if p.shape[1] == 1 else p.argmax(1)
        yield masks.numpy() if masks.dtype == torch.bool else masks.numpy().astype(np.int64)


def probs_to_masks(
    probs: np.ndarray | torch.Tensor, size: tuple[int, int], threshold: float = 0.5
) -> np.ndarray:
    """(T, N, h, w) probabilities -> (T, H, W) masks at size = (H, W), resized bilinearly
    (align_corners=False) first: bool (p > threshold) when N = 1, else int64 argmax. The
    threshold must lie strictly between 0 and 1 (ValueError otherwise, for semantic models too)."""
    threshold = check_threshold(threshold)
    parts = list(_mask_chunks(probs, size, threshold))
    return np.concatenate(parts) if parts else np.zeros((0, *size), dtype=bool)


@dataclass
class Prediction:
    """What SelM saw and predicted for one video, one entry per second (T = seconds).

    Memory per second is small whatever the video's length: the sampled frame (at the size the
    video was decoded at, at most `selm.media.video.DEFAULT_MAX_PIXELS` by default, or a thumbnail:
    `Predictor.predict(frames_max_side=)`) and the model's outputs at its own grids; never the
    video's frames at full frame rate.
    """

    frames: np.ndarray  # (T, H, W, 3) uint8 sampled frames, at the decoded size or smaller
    times: np.ndarray  # (T,) seconds
    probs: np.ndarray  # (T, N, h, w) float32: sigmoid (N = 1) or softmax (N > 1); h, w: the
    # model's output grid (the Predictor's) or any other; `masks()` resizes to the frames
    hit_maps: list[np.ndarray]  # 3 x (T, K, h, w) float32, CLEVER layers coarse to fine
    dam_maps: list[np.ndarray | None] | None  # 4 x (T, h_s, w_s) float32 V2A attention
    bcsm: list[dict[str, np.ndarray | None]] | None  # 4 x {norm_before, norm_after (T, h, w),
    # gate_audio, gate_video (T, D) or None}
    waveform: np.ndarray  # (S,) float32 at 16 kHz: the audio the model heard
    audio_label: str  # "original" | "mute" | "noise" | a file name | "waveform"
    fps: float  # the source video's frame rate (its mean, for a variable rate)
    source: str  # the video file
    duration: float  # seconds of video
    notes: list[str] = field(default_factory=list)  # e.g. less video decoded than declared
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (STAGES)
    in_memory: bool = False  # made from a `Clip` whose `source` is no file (nothing to decode)
    frame_size: tuple[int, int] | None = None  # (W, H) the video was decoded at, when the
    # sampled frames are kept smaller (`Predictor.predict(frames_max_side=)`); None: theirs

    @classmethod
    def from_windows(cls, windows: Iterable, *consumers: Callable[[object], object]) -> Prediction:
        """The prediction of a whole video from the stream of its windows
        (`Predictor.windows`), each window handed to `consumers` first (e.g. an overlay
        writer's `add`). Memory grows by each window's sampled frames and small outputs only."""
        frames, parts, times, last = [], [], [], None  # nothing is sized from what a file
        # declares (a header may claim a 1e9-s video): the windows' frames are joined at the end
        with contextlib.closing(iter(windows)) as stream:  # a failing consumer closes the file
            for window in stream:
                for consume in consumers:
                    consume(window)
                frames.append(np.asarray(window.frames, np.uint8))  # (n, H, W, 3)
                times.append(window.times)
                parts.append(
                    {k: getattr(window, k) for k in ("probs", "hit_maps", "dam_maps", "bcsm")}
                )
                last = (window.ending, window.source, window.clock)
                del window  # its full-rate frames go before the next window is decoded
        if last is None:
            raise ValueError("no window to collect: the stream was empty")
        (ending, source, clock) = last
        kept = frames[0] if len(frames) == 1 else np.concatenate(frames)
        width, height = source.size
        return cls(
            frames=kept,
            times=np.concatenate(times),
            **_concat(parts),
            waveform=ending.waveform,
            audio_label=ending.audio_label,
            fps=ending.fps,
            source=source.path,
            duration=ending.duration,
            notes=list(ending.notes),
            timings=dict(clock.spent),
            in_memory=source.in_memory,
            frame_size=None if kept.shape[1:3] == (height, width) else (width, height),
        )

    @property
    def num_classes(self) -> int:
        return self.probs.shape[1]

    @property
    def size(self) -> tuple[int, int]:
        """(W, H) of the video as decoded: masks and overlays default to it."""
        if self.frame_size is not None:
            return self.frame_size
        return self.frames.shape[2], self.frames.shape[1]

    def _grid(self, size: tuple[int, int] | None) -> tuple[int, int]:
        """(H, W) of the masks for size = (W, H), default the decoded size (ValueError for a
        size that is not two whole numbers of pixels)."""
        width, height = check_size(size) if size is not None else self.size
        return height, width

    def masks(self, threshold: float = 0.5, size: tuple[int, int] | None = None) -> np.ndarray:
        """(T, H, W) at size = (W, H) (default: the frames'): bool (probs > threshold, after a
        bilinear resize) for binary models, int64 class ids (argmax over the N classes,
        0 = background; the threshold is not used) for semantic ones."""
        return probs_to_masks(self.probs, self._grid(size), threshold)

    def mask(self, index: int, threshold: float = 0.5, size: tuple[int, int] | None = None):
        """`masks()[index]`, (H, W), computed for that second alone."""
        return probs_to_masks(self.probs[index : index + 1], self._grid(size), threshold)[0]

    def iter_masks(
        self, threshold: float = 0.5, size: tuple[int, int] | None = None
    ) -> Iterator[np.ndarray]:
        """`masks()` one (H, W) second at a time, MASK_CHUNK seconds resized at once, so that a
        long video's masks are never all in memory (300 s at 640 x 360: 69 MB). The threshold
        and size are checked at the call, before the first mask."""
        chunks = _mask_chunks(self.probs, self._grid(size), check_threshold(threshold))
        return (mask for chunk in chunks for mask in chunk)


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
