"""One batch of a data loader through a model: its tensors on the device, the forward under
autocast, the logits at the masks' size; and the foreground view of binary or semantic logits.
Training, evaluation and the comparison table share these."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F

_TENSOR_KEYS = ("frames", "audio", "masks", "has_gt", "frame_mask")


def autocast(device: torch.device, amp: str):
    """bf16/fp16 autocast on CUDA; a no-op elsewhere or with amp='off'."""
    if device.type != "cuda" or amp == "off":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch's tensors on `device` (names and categories stay lists of strings)."""
    missing = [k for k in _TENSOR_KEYS if k not in batch]
    if missing:
        raise KeyError(f"a batch lacks {missing}; data sets must give {_TENSOR_KEYS}")
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
        for k, v in batch.items()
    }


@torch.no_grad()
def predict_logits(model, batch: dict[str, Any], device: torch.device, amp: str = "off"):
    """(B, T, N, Hm, Wm) float32 CPU logits at the masks' size (bilinear, align_corners=True);
    for masks of different sizes (a list, see `train.data.collate_clips`) a list of each clip's
    (T, N, Hm, Wm) logits at its masks' size."""
    b = to_device(batch, device)
    with autocast(device, amp):
        logits = model(b["frames"], b["audio"], b["frame_mask"]).logits
    logits = logits.float()
    masks = batch["masks"]
    if isinstance(masks, torch.Tensor):
        return _resized(logits, masks.shape[-2:]).cpu()
    return [_resized(x, m.shape[-2:]).cpu() for x, m in zip(logits, masks)]


def _resized(logits: torch.Tensor, size) -> torch.Tensor:
    """(..., N, h, w) -> (..., N, *size), bilinear with align_corners=True."""
    if logits.shape[-2:] == tuple(size):
        return logits
    flat = logits.reshape(-1, *logits.shape[-3:])
    out = F.interpolate(flat, size=tuple(size), mode="bilinear", align_corners=True)
    return out.reshape(*logits.shape[:-2], *out.shape[-2:])


def binary_view(logits: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., N, H, W) logits and masks -> one foreground logit (..., H, W) and a 0/1 mask."""
    if logits.shape[-3] == 1:
        return logits[..., 0, :, :], (masks > 0).float()
    fg = torch.logsumexp(logits[..., 1:, :, :], dim=-3) - logits[..., 0, :, :]
    return fg, (masks > 0).float()
