"""What the demo shows of a prediction besides videos: the gallery of captioned maps (the maps
themselves are drawn by selm.render.maps), area plots and tables, display sizes. Images are
(H, W, 3) uint8 RGB.
"""

from __future__ import annotations

import textwrap

import cv2
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from selm.media.video import fit_side

LEVEL_NAMES = (
    "stage 1 (stride 4)",
    "stage 2 (stride 8)",
    "stage 3 (stride 16)",
    "stage 4 (stride 32)",
)
MAPS_LABEL = "Maps of one second (colour scales below)"


def segmented_fraction(masks) -> np.ndarray:
    """(T, H, W) bool or class ids, or T (H, W) masks one by one (`Prediction.iter_masks`)
    -> (T,) float64: the fraction of pixels segmented (!= 0)."""
    return np.array([np.count_nonzero(m) / np.size(m) for m in masks], np.float64)


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
