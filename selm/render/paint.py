"""Pictures and videos of a prediction: mask overlays, heat maps, token maps, overlay videos
(encoded by `selm.media.writer`).

numpy + OpenCV + matplotlib colormaps only. Images are (H, W, 3) uint8 RGB; sizes are (W, H).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import matplotlib
import numpy as np

from selm.media.video import VideoStream, frame_to_rgb
from selm.media.writer import open_writer
from selm.render.palette import label_palette
from selm.transforms.log_mel import SAMPLE_RATE

MASK_COLOR = (255, 64, 64)  # binary masks
TOKEN_COLORS = np.array(matplotlib.colormaps["tab10"].colors[:10]) * 255  # (10, 3) CLEVER tokens


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


def _resize(image: np.ndarray, size: tuple[int, int] | None, nearest: bool = False) -> np.ndarray:
    if size is None or tuple(size) == (image.shape[1], image.shape[0]):
        return image
    flag = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.resize(image, (int(size[0]), int(size[1])), interpolation=flag)


def colorize(
    map2d: np.ndarray,
    size: tuple[int, int] | None = None,
    cmap: str = "inferno",
    vmin: float | None = None,
    vmax: float | None = None,
    *,
    smooth: bool = False,
) -> np.ndarray:
    """A 2-D map (h, w) -> (H, W, 3) uint8 through a matplotlib colormap.

    Values are scaled from [vmin, vmax] (default: the map's own range) to [0, 1]; pass one
    shared (vmin, vmax) to compare maps by colour. Resized to size = (W, H) as cells (nearest:
    each of the h x w grid's values is one flat block), or bilinearly with smooth=True. A
    constant map gets the colormap's lowest colour.
    """
    values = np.asarray(map2d, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"colorize expects a 2-D map, got shape {values.shape}")
    finite = values[np.isfinite(values)]
    low = float(vmin if vmin is not None else (finite.min() if finite.size else 0.0))
    high = float(vmax if vmax is not None else (finite.max() if finite.size else 0.0))
    span = high - low
    scaled = (values - low) / span if span > 0 else np.zeros_like(values)
    scaled = np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 1.0).astype(np.float32)
    scaled = _resize(scaled, size, nearest=not smooth)
    return matplotlib.colormaps[cmap](scaled, bytes=True)[..., :3].copy()


def hit_map_image(hit: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """CLEVER token assignment (K, h, w) -> (H, W, 3) uint8, one colour per token (argmax),
    drawn as cells; token k has colour `TOKEN_COLORS[k % 10]` (see `token_legend`)."""
    hit = np.asarray(hit)
    if hit.ndim != 3:
        raise ValueError(f"hit map must be (K, h, w), got shape {hit.shape}")
    colors = np.array([TOKEN_COLORS[k % len(TOKEN_COLORS)] for k in range(hit.shape[0])])
    image = colors[hit.argmax(0)].astype(np.uint8)  # (h, w, 3)
    return _resize(image, size, nearest=True)


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.42) -> None:
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.2e}"


def colorbar(
    vmin: float,
    vmax: float,
    label: str,
    *,
    cmap: str = "inferno",
    width: int = 320,
) -> np.ndarray:
    """A horizontal colour bar from vmin (left) to vmax (right), its ends and middle labelled,
    and `label` (what the colour means, with its units) above -> (H, width, 3) uint8."""
    bar_h, top, height = 14, 20, 52
    image = np.full((height, width, 3), 255, np.uint8)
    margin = 8
    ramp = np.linspace(0.0, 1.0, width - 2 * margin)[None].repeat(bar_h, 0)
    image[top : top + bar_h, margin : width - margin] = matplotlib.colormaps[cmap](
        ramp, bytes=True
    )[..., :3]
    _text(image, label, (margin, 14))
    ticks = ((margin, vmin), ((width - 40) // 2, (vmin + vmax) / 2), (width - margin - 44, vmax))
    for x, value in ticks:
        _text(image, _number(value), (max(x, 0), top + bar_h + 14), 0.38)
    return image


def token_legend(num_tokens: int, *, width: int = 320) -> np.ndarray:
    """Swatches of CLEVER's token colours (as `hit_map_image` draws them) -> uint8 RGB."""
    per_row = max(1, (width - 8) // 76)
    rows = math.ceil(num_tokens / per_row)
    image = np.full((20 + 20 * rows, width, 3), 255, np.uint8)
    _text(image, "CLEVER: the token each pixel is assigned to", (8, 14))
    for k in range(num_tokens):
        x, y = 8 + 76 * (k % per_row), 22 + 20 * (k // per_row)
        image[y : y + 14, x : x + 14] = TOKEN_COLORS[k % len(TOKEN_COLORS)].astype(np.uint8)
        _text(image, f"token {k}", (x + 18, y + 12), 0.38)
    return image


def panel(images: Sequence[np.ndarray], labels: Sequence[str], gap: int = 4) -> np.ndarray:
    """A row of images at the first one's height, each with its label above -> uint8 RGB."""
    if len(images) != len(labels) or not images:
        raise ValueError(f"panel needs one label per image, got {len(images)} and {len(labels)}")
    height = images[0].shape[0]
    strip = 22
    tiles = []
    for image, label in zip(images, labels):
        width = max(1, round(image.shape[1] * height / image.shape[0]))
        tile = np.full((strip + height, width, 3), 255, np.uint8)
        tile[strip:] = _resize(np.asarray(image, np.uint8), (width, height))
        cv2.putText(
            tile, str(label), (3, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA
        )
        tiles.append(tile)
        tiles.append(np.full((strip + height, gap, 3), 255, np.uint8))
    return np.concatenate(tiles[:-1], axis=1)


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


def write_overlay_video(
    pred,
    out_path: str | os.PathLike,
    threshold: float = 0.5,
    *,
    size: tuple[int, int] | None = None,
) -> Path:
    """Draw on a video the mask of the second each frame falls in, and write H.264 (yuv420p)
    + the audio the model heard (AAC) -> path. (`Predictor.predict(..., overlay=path)` writes
    the same video in the pass that predicts; this is for a prediction already made, e.g. at
    another threshold.)

    The source video is decoded again, at its own frame times (a variable frame rate is
    kept); a prediction of an in-memory `Clip` (`pred.in_memory`) has no source to decode, so
    its own sampled frames are drawn, one per second. size = (W, H) of the video
    written, default the frames' size: frames are scaled to it while decoding (area), masks
    are resized to it from the probabilities (bilinear, then thresholded)."""
    width, height = size if size is not None else pred.size
    width, height = int(width), int(height)
    masks = pred.masks(threshold, size=(width, height))  # (T, H, W) bool or class ids
    source = Path(pred.source)
    if getattr(pred, "in_memory", False):  # a clip that is no file: its own frames
        frames = [(float(t), _resize(f, (width, height))) for t, f in zip(pred.times, pred.frames)]
        with open_writer(out_path, size=(width, height), fps=1, sample_rate=SAMPLE_RATE) as out:
            out.write_audio(pred.waveform)
            for second, (_, image) in enumerate(paint_frames(frames, masks)):
                out.write_frame(image, second)
        return Path(out_path)
    with VideoStream(source) as video:
        with open_writer(
            out_path,
            size=(width, height),
            fps=pred.fps,
            sample_rate=SAMPLE_RATE,
            time_base=video.time_base,
        ) as out:
            out.write_audio(pred.waveform)
            second, batch = None, []
            for time, frame in video.frames():
                if math.floor(time) != second and batch:
                    for when, image in paint_frames(batch, masks):
                        out.write_frame(image, when)
                    batch.clear()
                second = math.floor(time)
                batch.append((time, frame_to_rgb(frame, (width, height))))
            for when, image in paint_frames(batch, masks):
                out.write_frame(image, when)
    return Path(out_path)
