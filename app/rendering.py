"""What the demo shows of a prediction: the per-frame row of maps, area plots, overlay videos.

Built on `selm.render.paint` (overlay, colormaps, token maps, the media writer); this module only
chooses what goes side by side and at which size. Images are (H, W, 3) uint8 RGB.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import av
import cv2
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from selm.media.video import fit_side
from selm.render.paint import (
    colorbar,
    colorize,
    hit_map_image,
    overlay,
    token_legend,
    write_overlay_video,
)

LEVEL_NAMES = (
    "stage 1 (stride 4)",
    "stage 2 (stride 8)",
    "stage 3 (stride 16)",
    "stage 4 (stride 32)",
)
MAPS_LABEL = "Maps of one second (colour scales below)"
# what each heat map's colour measures, with its units (the colour bars' labels)
UNITS = {
    "dam": "DAM attention over pixels (softmax weight, sums to 1)",
    "bcsm": "BCSM feature norm, before = after scale (L2, a.u.)",
}


def segmented_fraction(masks) -> np.ndarray:
    """(T, H, W) bool or class ids, or T (H, W) masks one by one (`Prediction.iter_masks`)
    -> (T,) float64: the fraction of pixels segmented (!= 0)."""
    return np.array([np.count_nonzero(m) / np.size(m) for m in masks], np.float64)


def mask_caption(pred, threshold: float) -> str:
    if pred.num_classes == 1:
        return f"mask (p > {threshold:.2f})"
    return f"mask (argmax of {pred.num_classes} classes)"


Scales = dict[tuple[str, int], tuple[float, float]]


def _bcsm_planes(pred, level: int) -> list[np.ndarray]:
    if pred.bcsm is None:
        return []
    maps = pred.bcsm[level]
    return [maps[k] for k in ("norm_before", "norm_after") if maps.get(k) is not None]


def map_scales(preds) -> Scales:
    """One (low, high) per map kind and level over every second of every prediction given
    (several audio conditions, or two checkpoints): {("dam" | "bcsm", level): (low, high)}.

    BCSM's before and after share one scale, so the change selection makes shows as a change
    of colour. A kind no prediction has is absent."""
    scales: Scales = {}
    for level in range(4):
        for kind in ("dam", "bcsm"):
            planes = []
            for pred in preds:
                if kind == "dam" and pred.dam_maps is not None and pred.dam_maps[level] is not None:
                    planes.append(pred.dam_maps[level])
                elif kind == "bcsm":
                    planes.extend(_bcsm_planes(pred, level))
            values = [np.asarray(p, np.float64)[np.isfinite(p)] for p in planes]
            values = [v for v in values if v.size]
            if values:
                scales[(kind, level)] = (
                    float(min(v.min() for v in values)),
                    float(max(v.max() for v in values)),
                )
    return scales


def _grid(plane: np.ndarray) -> str:
    h, w = plane.shape[-2:]
    return f"{h}x{w} grid"


def frame_maps(
    pred, index: int, level: int, threshold: float, scales: Scales | None = None
) -> list[tuple[np.ndarray, str]]:
    """The row of second `index`: frame, mask, CLEVER token maps (coarse to fine), then DAM
    attention and BCSM channel norms (before / after selection) at feature `level` (0..3).

    Every image is at the frame's size, drawn as the model's grid cells; heat maps use
    `scales` (default: `map_scales([pred])`, one scale over the clip's seconds). A map the
    model does not make (DAM for fusions without V2A attention, BCSM for models without it)
    is left out of the row. Captions name each map's grid size."""
    scales = map_scales([pred]) if scales is None else scales
    count = len(pred.frames)
    index = min(max(int(index), 0), count - 1)
    frame = pred.frames[index]
    size = (frame.shape[1], frame.shape[0])
    t = float(pred.times[index])
    mask = pred.mask(index, threshold)
    row = [
        (frame, f"frame, second {index} ({t:.2f} s)"),
        (overlay(frame, mask), mask_caption(pred, threshold)),
    ]
    for layer, hits in enumerate(pred.hit_maps):
        row.append((hit_map_image(hits[index], size), f"CLEVER layer {layer + 1}, {_grid(hits)}"))
    dam = pred.dam_maps[level] if pred.dam_maps is not None else None
    if dam is not None:
        low, high = scales.get(("dam", level), (None, None))
        image = colorize(dam[index], size, vmin=low, vmax=high)
        row.append((image, f"DAM stage {level + 1}, {_grid(dam)}"))
    if pred.bcsm is not None:
        maps = pred.bcsm[level]
        low, high = scales.get(("bcsm", level), (None, None))
        for key, when in (("norm_before", "before"), ("norm_after", "after")):
            if maps.get(key) is not None:
                image = colorize(maps[key][index], size, vmin=low, vmax=high)
                row.append((image, f"BCSM {when}, stage {level + 1}, {_grid(maps[key])}"))
    return row


def map_legend(preds, level: int, scales: Scales | None = None, width: int = 360) -> np.ndarray:
    """The key to the maps shown: CLEVER's token colours and one colour bar (range and units)
    per heat-map kind at `level` -> (H, width, 3) uint8."""
    scales = map_scales(preds) if scales is None else scales
    tokens = max(h.shape[1] for pred in preds for h in pred.hit_maps)
    parts = [token_legend(tokens, width=width)]
    for kind in ("dam", "bcsm"):
        if (kind, level) in scales:
            low, high = scales[(kind, level)]
            parts.append(colorbar(low, high, f"{UNITS[kind]}, stage {level + 1}", width=width))
    return np.concatenate(parts, axis=0)


def labelled(image: np.ndarray, caption: str) -> np.ndarray:
    """The image with its caption in a white strip above it (so no caption covers a map),
    wrapped to the image's width."""
    image = np.asarray(image, np.uint8)
    width = image.shape[1]
    scale = 0.4 if width >= 200 else 0.32
    char = max(1, int(cv2.getTextSize("x", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]))
    lines = textwrap.wrap(caption, max(8, (width - 4) // char)) or [""]
    line_h = int(24 * scale / 0.4)
    strip = np.full((6 + line_h * len(lines), width, 3), 255, np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(
            strip,
            line,
            (2, line_h * (i + 1)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return np.concatenate([strip, image], axis=0)


def gallery(rows: list[tuple[np.ndarray, str]]) -> list[np.ndarray]:
    """(image, caption) pairs -> images with their caption drawn above (the gallery shows no
    caption of its own)."""
    return [labelled(image, caption) for image, caption in rows]


def _seconds_axis(times: np.ndarray) -> dict:
    count = len(times)
    step = 1 if count <= 15 else 5 if count <= 75 else 10
    return dict(xaxis_title="second", xaxis_dtick=step, xaxis_tick0=0)


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
        yaxis_title=y_title,
        yaxis_range=[0, 1],
        height=320,
        margin=dict(l=50, r=20, t=50, b=40),
        legend=dict(orientation="h", y=-0.25),
        **_seconds_axis(times),
    )
    return fig


def compare_plot(
    times: np.ndarray, areas: dict[str, np.ndarray], iou: np.ndarray, *, title: str
) -> go.Figure:
    """Two panels over the seconds: each checkpoint's segmented area (top) and the IoU of
    their masks (bottom), each on its own axis."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12)
    seconds = np.floor(times).astype(int)
    for name, values in areas.items():
        fig.add_trace(
            go.Scatter(x=seconds, y=np.asarray(values, float), mode="lines+markers", name=name),
            row=1,
            col=1,
        )
    fig.add_trace(
        go.Scatter(
            x=seconds, y=np.asarray(iou, float), mode="lines+markers", name="IoU of the two"
        ),
        row=2,
        col=1,
    )
    axis = _seconds_axis(times)
    fig.update_yaxes(title_text="area (fraction)", range=[0, 1], row=1, col=1)
    fig.update_yaxes(title_text="mask IoU", range=[0, 1], row=2, col=1)
    fig.update_xaxes(dtick=axis["xaxis_dtick"], tick0=0)
    fig.update_xaxes(title_text="second", row=2, col=1)
    fig.update_layout(
        title=title,
        height=420,
        margin=dict(l=60, r=20, t=50, b=40),
        legend=dict(orientation="h", y=-0.15),
    )
    return fig


def area_table(times: np.ndarray, areas: dict[str, np.ndarray]) -> tuple[list[str], list[list]]:
    """-> (headers, rows): one row per second, the % of the frame segmented per condition."""
    headers = ["second", *(f"{name} (% segmented)" for name in areas)]
    rows = [
        [int(np.floor(t)), *(round(100 * float(a[i]), 1) for a in areas.values())]
        for i, t in enumerate(times)
    ]
    return headers, rows


def display_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(W, H) scaled so the longer side is at most `max_side` (never enlarged)."""
    return fit_side(width, height, max_side)


def write_overlay(pred, out_path: str | os.PathLike, threshold: float = 0.5) -> Path:
    """The source video at its own frame times, at the size of `pred.frames`, with the mask of
    the second each frame falls in and the audio the model heard -> H.264 + AAC mp4.

    The overlay the run drew in its one pass (`pred.overlay`, at `pred.overlay_threshold`) is
    moved here when it fits; otherwise (another threshold, already moved)
    `selm.render.paint.write_overlay_video` draws it again at the display size.
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
