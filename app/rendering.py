"""What the demo shows of a prediction: the per-frame row of maps, area plots, overlay videos.

Built on `selm.render` (overlay, colormaps, token maps, the media writer); this module only
chooses what goes side by side and at which size. Images are (H, W, 3) uint8 RGB.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import plotly.graph_objects as go

from selm.render import colorize, hit_map_image, overlay, write_overlay_video

LEVEL_NAMES = (
    "stage 1 (stride 4)",
    "stage 2 (stride 8)",
    "stage 3 (stride 16)",
    "stage 4 (stride 32)",
)
MAPS_LABEL = (
    "One second: frame, mask, CLEVER's token of each pixel per decoder layer (coarse to "
    "fine), DAM's attention over pixels, BCSM's channel norm before / after selection"
)


def segmented_fraction(masks: np.ndarray) -> np.ndarray:
    """(T, H, W) bool or class ids -> (T,) float64: the fraction of pixels segmented (!= 0)."""
    masks = np.asarray(masks)
    return (masks != 0).reshape(len(masks), -1).mean(axis=1, dtype=np.float64)


def mask_caption(pred, threshold: float) -> str:
    if pred.num_classes == 1:
        return f"mask (p > {threshold:.2f})"
    return f"mask (argmax of {pred.num_classes} classes)"


def frame_maps(pred, index: int, level: int, threshold: float) -> list[tuple[np.ndarray, str]]:
    """The row of second `index`: frame, mask, CLEVER token maps (coarse to fine), then DAM
    attention and BCSM channel norms (before / after selection) at feature `level` (0..3).

    Every image is at the frame's size; a map the model does not make (DAM for fusions
    without V2A attention, BCSM for models without it) is left out of the row.
    """
    count = len(pred.frames)
    index = min(max(int(index), 0), count - 1)
    frame = pred.frames[index]
    size = (frame.shape[1], frame.shape[0])
    t = float(pred.times[index])
    mask = pred.masks(threshold)[index]
    row = [
        (frame, f"frame, second {index} ({t:.2f} s)"),
        (overlay(frame, mask), mask_caption(pred, threshold)),
    ]
    for layer, hits in enumerate(pred.hit_maps):
        h, w = hits.shape[2:]
        row.append((hit_map_image(hits[index], size), f"CLEVER layer {layer + 1} ({h}x{w})"))
    dam = pred.dam_maps[level] if pred.dam_maps is not None else None
    if dam is not None:
        row.append((colorize(dam[index], size), f"DAM attention, stage {level + 1}"))
    if pred.bcsm is not None:
        maps = pred.bcsm[level]
        for key, when in (("norm_before", "before"), ("norm_after", "after")):
            if maps.get(key) is not None:
                row.append((colorize(maps[key][index], size), f"BCSM {when}, stage {level + 1}"))
    return row


def area_plot(
    times: np.ndarray,
    series: dict[str, np.ndarray],
    *,
    title: str,
    y_title: str = "fraction of the frame segmented",
) -> go.Figure:
    """One line per entry of `series` ((T,) values in [0, 1]) over the seconds `times`."""
    fig = go.Figure()
    for name, values in series.items():
        fig.add_trace(
            go.Scatter(
                x=np.floor(times).astype(int),
                y=np.asarray(values, float),
                mode="lines+markers",
                name=name,
            )
        )
    fig.update_layout(
        title=title,
        xaxis_title="second",
        yaxis_title=y_title,
        yaxis_range=[0, 1],
        xaxis_dtick=1,
        height=320,
        margin=dict(l=50, r=20, t=50, b=40),
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def display_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(W, H) scaled so the longer side is at most `max_side` (never enlarged)."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def write_overlay(pred, out_path: str | os.PathLike, threshold: float = 0.5) -> Path:
    """The source video at its own frame times, at the size of `pred.frames`, with the mask of
    the second each frame falls in and the audio the model heard -> H.264 + AAC mp4.

    The overlay the run drew in its one pass (`pred.overlay`, at `pred.overlay_threshold`) is
    moved here when it fits; otherwise (another threshold, already moved)
    `selm.render.write_overlay_video` draws it again at the display size.
    """
    height, width = pred.frames.shape[1:3]
    made = getattr(pred, "overlay", None)
    if made is not None and pred.overlay_threshold == threshold and Path(made).is_file():
        with av.open(str(made)) as container:
            stream = container.streams.video[0]
            fits = (stream.width - width, stream.height - height) in (
                (0, 0),
                (width % 2, height % 2),
            )
        if fits:
            os.replace(made, out_path)
            pred.overlay = None
            return Path(out_path)
    return write_overlay_video(pred, out_path, threshold, size=(width, height))
