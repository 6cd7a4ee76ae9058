"""Masks drawn on frames: `overlay` for one frame, `MaskPainter` to draw one mask on many frames
of its size, `paint_frames` for the frames of several seconds. numpy + OpenCV only; images
are (H, W, 3) uint8 RGB, sizes (W, H)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from fractions import Fraction

import cv2
import numpy as np

from selm.render.palette import label_palette

MASK_COLOR = (255, 64, 64)  # binary masks


def _labels_and_palette(mask: np.ndarray, colors: Sequence | None) -> tuple[np.ndarray, np.ndarray]:
    """A bool or integer-label mask -> (labels (H, W) int64, palette (L, 3) float64)."""
    if mask.dtype == bool:
        palette = np.array([(0, 0, 0), colors[0] if colors is not None else MASK_COLOR])
        return mask.astype(np.int64), palette.astype(np.float64)
    if np.issubdtype(mask.dtype, np.integer):
        labels = mask.astype(np.int64)
        palette = np.asarray(colors if colors is not None else label_palette(), dtype=np.float64)
        if labels.min(initial=0) < 0 or labels.max(initial=0) >= len(palette):
            raise ValueError(f"mask labels must lie in [0, {len(palette) - 1}]")
        return labels, palette
    raise ValueError(f"mask must be bool or integer labels, got {mask.dtype}: threshold it")


class MaskPainter:
    """One mask's overlay, worked out once and drawn on any number of frames of its size.

    The contours, the blend of every label's colour (a 256-entry lookup table per channel,
    holding exactly `rint((1 - alpha) * v + alpha * colour)`) and the outline pixels are found
    here; `paint` then costs a table lookup and two masked copies per label, in uint8, so the
    frames of one second share the work of its mask (see `overlay` for the look).
    """

    def __init__(self, mask: np.ndarray, alpha: float = 0.5, colors: Sequence | None = None):
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
        labels, palette = _labels_and_palette(mask, colors)
        self.shape = mask.shape
        thickness = max(1, round(max(mask.shape) / 300))
        values = np.arange(256, dtype=np.float64)[:, None]  # (256, 1)
        self.layers = []  # (box, table (1, 256, 3), blend mask, outline mask, colour image)
        present = np.flatnonzero(np.bincount(labels.ravel(), minlength=len(palette)))
        for label in present[present > 0]:
            region = labels == label
            color = np.asarray(palette[label], dtype=np.float64)
            table = np.clip(np.rint((1 - alpha) * values + alpha * color), 0, 255)
            outline = np.zeros(region.shape, np.uint8)
            contours, _ = cv2.findContours(
                region.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE
            )
            cv2.drawContours(outline, contours, -1, 1, 2 * thickness - 1)
            edge = (outline > 0) & region  # the inner half of the stroke only
            rows, cols = np.flatnonzero(region.any(1)), np.flatnonzero(region.any(0))
            box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            solid = np.empty((*region[box].shape, 3), np.uint8)
            solid[:] = np.clip(np.rint(color), 0, 255).astype(np.uint8)
            self.layers.append(
                (
                    box,
                    table.astype(np.uint8)[None],
                    (region & ~edge)[box].astype(np.uint8),
                    edge[box].astype(np.uint8),
                    solid,
                )
            )

    def paint(self, frame: np.ndarray, *, inplace: bool = False) -> np.ndarray:
        """(H, W, 3) uint8 frame -> the frame with the mask drawn (on `frame` itself if inplace)."""
        if frame.shape != (*self.shape, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"frame must be {(*self.shape, 3)} uint8 for this mask, got {frame.shape} "
                f"{frame.dtype}"
            )
        out = frame if inplace else frame.copy()
        for box, table, inner, edge, solid in self.layers:  # regions are disjoint
            view = out[box]
            cv2.copyTo(cv2.LUT(view, table), inner, view)
            cv2.copyTo(solid, edge, view)
        return out


def overlay(
    frame: np.ndarray, mask: np.ndarray, alpha: float = 0.5, colors: Sequence | None = None
) -> np.ndarray:
    """Blend a mask onto a frame and outline it -> (H, W, 3) uint8.

    mask (H, W): bool (binary: one colour, `colors[0]` or MASK_COLOR) or integer labels
    (label l gets `colors[l]`, default `label_palette()`; 0 stays transparent). The outline is
    drawn on the mask's own border pixels, so pixels outside the mask never change. For many
    frames with one mask, build a `MaskPainter` once.
    """
    frame = np.asarray(frame)
    mask = np.asarray(mask)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    if mask.shape != frame.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match the frame {frame.shape[:2]}")
    return MaskPainter(mask, alpha, colors).paint(frame)


def resize_image(
    image: np.ndarray, size: tuple[int, int] | None, nearest: bool = False
) -> np.ndarray:
    if size is None or tuple(size) == (image.shape[1], image.shape[0]):
        return image
    flag = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.resize(image, (int(size[0]), int(size[1])), interpolation=flag)


def paint_frames(
    frames: Sequence[tuple[float | Fraction, np.ndarray]],
    masks: np.ndarray,
    first_second: int = 0,
    alpha: float = 0.5,
) -> Iterator[tuple[float | Fraction, np.ndarray]]:
    """Draw on each (time, (H, W, 3) uint8) frame the mask of the second it falls in:
    masks[k] (H, W) is second first_second + k; times before or after the masks take the
    first or last one. The masks' work (contours, colour tables) is done once per second;
    frames are drawn one at a time, as they are asked for (a generator: one copy alive)."""
    painters: dict[int, MaskPainter] = {}
    last = len(masks) - 1
    for time, frame in frames:
        index = min(max(math.floor(time) - first_second, 0), last)
        if index not in painters:
            painters[index] = MaskPainter(masks[index], alpha)
        yield time, painters[index].paint(frame)
