"""Frames as the model sees them, for training and inference alike: resized to the input size
(bilinear, antialiased) and normalised with ImageNet's statistics (the backbones' pretraining)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, H, W) float -> (N, 3, size, size), bilinear with antialiasing (a no-op at size)."""
    if frames.shape[-2:] == (size, size):
        return frames
    return F.interpolate(
        frames, size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )


def normalize(frames: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> ImageNet-normalised, on the frames' device and dtype."""
    mean = torch.tensor(IMAGENET_MEAN, device=frames.device, dtype=frames.dtype)
    std = torch.tensor(IMAGENET_STD, device=frames.device, dtype=frames.dtype)
    return (frames - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def model_input(frames_uint8: torch.Tensor, size: int) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, 3, size, size) float, resized and normalised."""
    x = frames_uint8.permute(0, 3, 1, 2).float() / 255.0
    return normalize(resize_frames(x, size))
