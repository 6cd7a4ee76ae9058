"""Train-time augmentation that keeps a clip consistent: one crop box and one flip for all its
frames and masks (masks are cropped in the same relative box and brought back to their own
size), one photometric change for all frames, one gain for all audio examples. Nothing moves
in time, so the seconds in which an object sounds still match its frames."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from selm.transforms.frames import resize_frames
from selm.transforms.log_mel import LOG_OFFSET


@dataclass(frozen=True, kw_only=True)
class ClipParams:
    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  # x0, y0, x1, y1 in [0, 1]
    flip: bool = False
    brightness: float = 1.0
    contrast: float = 1.0
    gain: float = 1.0  # amplitude factor on the waveform


@dataclass(frozen=True, kw_only=True)
class ClipAugment:
    """Random `ClipParams`: a square-ish crop of scale in [min_scale, 1], a horizontal flip
    with probability `flip_p`, brightness/contrast factors in 1 +- their value, a gain within
    +- gain_db."""

    min_scale: float = 0.7
    flip_p: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    gain_db: float = 6.0

    def sample(self, generator: torch.Generator | None = None) -> ClipParams:
        u = torch.rand(8, generator=generator).tolist()
        scale = self.min_scale + (1 - self.min_scale) * u[0]
        bound = min(0.15, -math.log(scale))  # aspect within ~15% of square, box inside
        aspect = math.exp(bound * (2 * u[1] - 1))
        w, h = min(1.0, math.sqrt(scale * aspect)), min(1.0, math.sqrt(scale / aspect))
        x0, y0 = (1 - w) * u[2], (1 - h) * u[3]
        return ClipParams(
            box=(x0, y0, x0 + w, y0 + h),
            flip=u[4] < self.flip_p,
            brightness=1 + self.brightness * (2 * u[5] - 1),
            contrast=1 + self.contrast * (2 * u[6] - 1),
            gain=10 ** (self.gain_db * (2 * u[7] - 1) / 20),
        )


def _pixel_box(box: tuple[float, float, float, float], h: int, w: int) -> tuple[int, ...]:
    x0, y0, x1, y1 = box
    left, top = min(round(x0 * w), w - 1), min(round(y0 * h), h - 1)
    right, bottom = max(round(x1 * w), left + 1), max(round(y1 * h), top + 1)
    return top, bottom, left, right


def nearest_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(..., h, w) of any dtype -> (..., H, W), each output pixel takes the input pixel whose
    area holds its centre, exactly as PIL's `resize(..., NEAREST)` picks it (ties included),
    which is how the release resizes AVSS labels."""
    h, w = x.shape[-2:]
    rows, cols = _nearest_index(h, size[0]), _nearest_index(w, size[1])
    return x[..., rows[:, None], cols[None, :]]


def _nearest_index(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out,) source index per output pixel: the centre (i + 0.5) * n_in / n_out, added up step
    by step in float64 and truncated, as Pillow computes it (a centre on a pixel border, e.g.
    64 -> 224, falls where Pillow's rounding puts it)."""
    scale = n_in / n_out
    steps = np.full(n_out, scale)
    steps[0] = scale / 2
    index = np.add.accumulate(steps).astype(np.int64)  # sequential sums, as Pillow's loop
    return torch.from_numpy(np.minimum(index, n_in - 1))


def frames_geometry(frames: torch.Tensor, params: ClipParams, size: int) -> torch.Tensor:
    """(T, 3, H, W) float -> (T, 3, size, size): crop `params.box`, resize (bilinear,
    antialiased), flip."""
    top, bottom, left, right = _pixel_box(params.box, *frames.shape[-2:])
    x = frames[..., top:bottom, left:right]
    x = resize_frames(x, size)
    return x.flip(-1) if params.flip else x


def masks_geometry(masks: torch.Tensor, params: ClipParams) -> torch.Tensor:
    """(T, Hm, Wm) -> (T, Hm, Wm): the same crop and flip as the frames, at the masks' size."""
    size = tuple(masks.shape[-2:])
    top, bottom, left, right = _pixel_box(params.box, *size)
    x = masks[..., top:bottom, left:right]
    if x.shape[-2:] != size:
        x = nearest_resize(x, size)
    return x.flip(-1) if params.flip else x


def photometric(frames: torch.Tensor, params: ClipParams) -> torch.Tensor:
    """(T, 3, H, W) in [0, 1]: brightness then contrast about each frame's mean grey."""
    if params.brightness == 1.0 and params.contrast == 1.0:
        return frames
    x = frames * params.brightness
    mean = x.mean(dim=(-3, -2, -1), keepdim=True)
    return ((x - mean) * params.contrast + mean).clamp_(0.0, 1.0)


def log_mel_gain(log_mel: torch.Tensor, gain: float, valid: torch.Tensor) -> torch.Tensor:
    """(T, 1, 96, 64) VGGish examples of a waveform -> those of `gain` x the waveform (exact:
    the mel energies are linear in the amplitude). Examples where `valid` (T,) is False (AVSS
    zero padding) are left alone."""
    if gain == 1.0:
        return log_mel
    mel = (log_mel.exp() - LOG_OFFSET).clamp_(min=0.0)
    scaled = torch.log(mel * gain + LOG_OFFSET)
    return torch.where(valid[:, None, None, None], scaled, log_mel)
