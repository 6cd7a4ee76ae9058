"""SelM's training losses (docs/model.md, section 'Losses').

Binary (S4, MS3; N = 1): BCE-with-logits (+ V-Net Dice on the sigmoid) on the frames that have
ground truth, as `cfg.loss` selects ("bce", "bce+dice", "bce+dice+aux").
Semantic (AVSS; N > 1): cross-entropy over the N classes on the frames that have ground truth;
`cfg.loss` only decides whether the auxiliary term is added.
Auxiliary ("...+aux"): for CLEVER layer i = 1..3 (coarse to fine), weight `cfg.aux_weights[i]`
times the Dice between the last token's hit map (nearest-upsampled to the ground truth) and the
binary ground truth (for AVSS: label > 0).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from selm.config import SelMConfig

DICE_EPS = 0.002


def dice_loss(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """V-Net Dice, per frame then averaged: mean_f 1 - 2 sum(p g) / (sum p^2 + sum g^2 + 0.002).

    probs, target: (F, ...) with F >= 1 frames; every axis after the first is summed over.
    """
    if probs.shape != target.shape or probs.shape[0] == 0:
        raise ValueError(
            f"dice_loss needs probs and target of one shape with >= 1 frame, got "
            f"{tuple(probs.shape)} and {tuple(target.shape)}"
        )
    p, g = probs.flatten(1), target.flatten(1).to(probs.dtype)
    dice = 2 * (p * g).sum(1) / (p.square().sum(1) + g.square().sum(1) + DICE_EPS)
    return (1 - dice).mean()


def selm_loss(
    output: Any, target: torch.Tensor, has_gt: torch.Tensor | None, cfg: SelMConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of one batch.

    output: has `.logits` (B, T, N, h, w) and `.hit_maps` 3 x (B, T, K, h_i, w_i) (a `SelMOutput`).
    target: (B, T, H, W): {0, 1} floats for N = 1, class ids in [0, N) for N > 1; logits are
      resized bilinearly to H x W when they differ.
    has_gt: (B, T) bool, True where the frame has ground truth (S4 train: frame 1 only; AVSS: the
      temporal flags), or None for all frames. Frames without it contribute nothing.
    Returns the scalar loss and its parts as floats for logging.
    """
    logits = output.logits
    if logits.dim() != 5:
        raise ValueError(f"output.logits must be (B, T, N, H, W), got {tuple(logits.shape)}")
    b, t, n = logits.shape[:3]
    if target.dim() != 4 or target.shape[:2] != (b, t):
        raise ValueError(
            f"target must be (B, T, H, W) with (B, T) = {(b, t)}, got {tuple(target.shape)}"
        )
    if has_gt is None:
        has_gt = torch.ones(b, t, dtype=torch.bool, device=logits.device)
    if has_gt.shape != (b, t):
        raise ValueError(f"has_gt must be (B, T) = {(b, t)}, got {tuple(has_gt.shape)}")
    has_gt = has_gt.bool()
    if not bool(has_gt.any()):  # nothing to learn from: a zero that keeps the graph
        return logits.sum() * 0.0, {"loss": 0.0}

    size = target.shape[-2:]
    x = logits[has_gt]  # (F, N, h, w): the frames with ground truth
    if x.shape[-2:] != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
    gt = target[has_gt]  # (F, H, W)
    parts: dict[str, torch.Tensor] = {}
    if n == 1:
        gt = gt.to(x.dtype)
        parts["bce"] = F.binary_cross_entropy_with_logits(x[:, 0], gt)
        if "dice" in cfg.loss:
            parts["dice"] = dice_loss(x[:, 0].sigmoid(), gt)
        foreground = gt
    else:
        gt = gt.long()
        if bool((gt < 0).any() or (gt >= n).any()):
            raise ValueError(f"target holds class ids outside [0, {n}); check the label palette")
        parts["ce"] = F.cross_entropy(x, gt)
        foreground = (gt > 0).to(x.dtype)
    if cfg.loss.endswith("+aux"):
        parts["aux"] = aux_loss(output.hit_maps, foreground, has_gt, cfg.aux_weights)
    loss = sum(parts.values())
    logged = {name: float(value.detach()) for name, value in parts.items()}
    logged["loss"] = float(loss.detach())
    return loss, logged


def aux_loss(
    hit_maps: list[torch.Tensor],
    foreground: torch.Tensor,
    has_gt: torch.Tensor,
    weights: tuple[float, ...],
) -> torch.Tensor:
    """sum_i weights[i] * Dice(hit_i[:, :, -1] nearest-upsampled, foreground).

    hit_maps: 3 x (B, T, K, h_i, w_i); foreground (F, H, W) for the F frames where has_gt (B, T).
    """
    if len(hit_maps) != len(weights):
        raise ValueError(f"{len(hit_maps)} hit maps but {len(weights)} aux_weights")
    total = foreground.new_zeros(())
    for weight, hit in zip(weights, hit_maps):
        last = hit[:, :, -1][has_gt][:, None]  # (F, 1, h, w): the last token's pixels
        last = F.interpolate(last.to(foreground.dtype), size=foreground.shape[-2:], mode="nearest")
        total = total + weight * dice_loss(last[:, 0], foreground)
    return total
