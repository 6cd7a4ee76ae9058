"""What each tab shows of the demo's results: overlay videos, the audio heard, the maps of one
second on shared colour scales, plots, tables and a summary (`RunView`, `IllusionView`,
`CompareView`). Plain functions without gradio; files are written into `workdir`, a per-request
folder the caller removes afterwards. An overlay video a run already wrote (at the same
threshold) is used as it is; otherwise the stored prediction is drawn again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from app.actions import heard_as, overlay_paths
from app.rendering import area_plot, area_table, compare_plot, segmented_fraction
from selm.media.audio import write_wav
from selm.render.maps import frame_maps, map_legend, map_scales
from selm.render.overlay import write_overlay_video
from selm.runtime import Progress


def _stage(progress: Progress | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(fraction, message)


def draw_overlay(pred, path: Path, threshold: float) -> Path:
    """The overlay video of a stored (display-size) prediction, drawn again at `threshold`: its
    source decoded at the size of its frames."""
    height, width = pred.frames.shape[1:3]
    return write_overlay_video(pred, path, threshold, size=(width, height))


def _overlays(preds: dict, threshold: float, workdir: Path, progress, made) -> dict[str, Path]:
    """One overlay video per prediction: the one its run wrote (`made`: {label: path}), else
    drawn now into `workdir`; each stage reported."""
    if made is not None:
        return {label: made[label] for label in preds}
    videos = {}
    paths = overlay_paths(preds, workdir)
    for i, (label, pred) in enumerate(preds.items()):
        _stage(
            progress, i / len(preds), f"writing the overlay video {i + 1}/{len(preds)} ({label})"
        )
        videos[label] = draw_overlay(pred, paths[label], threshold)
    _stage(progress, 1.0, "overlay videos written")
    return videos


@dataclass
class RunView:
    """The Result tab: overlay video, the audio heard (wav), the row of maps, their legend, the
    area plot."""

    video: Path
    audio: Path
    maps: list[tuple[np.ndarray, str]]
    legend: np.ndarray
    plot: go.Figure
    summary: str
    num_frames: int


def show_run(
    pred,
    *,
    threshold: float,
    frame: int,
    level: int,
    workdir: Path,
    note: str = "",
    overlay: Path | None = None,
    progress: Progress | None = None,
) -> RunView:
    """The Result tab for a prediction; `overlay`: its overlay video at `threshold`, written by
    its run (else it is drawn now into `workdir`)."""
    area = segmented_fraction(pred.iter_masks(threshold))
    _stage(progress, 0.0, "writing the overlay video")
    video = overlay or draw_overlay(pred, Path(workdir) / "overlay.mp4", threshold)
    _stage(progress, 0.8, "writing the audio the model heard")
    audio = write_wav(Path(workdir) / "audio_heard.wav", pred.waveform)
    _stage(progress, 0.9, "drawing the maps")
    scales = map_scales([pred])
    summary = (
        f"**{len(area)} s** of video, heard with **{heard_as(pred.audio_label)}**: "
        f"{100 * area.mean():.1f}% of the frame segmented on average "
        f"(most at second {int(area.argmax())}: {100 * area.max():.1f}%)."
    )
    # what the reader said about the file (e.g. less video decoded than the container declares)
    parts = [
        summary,
        *(f"**Note:** {n}" for n in pred.notes),
        *([note] if note else []),
    ]
    view = RunView(
        video=video,
        audio=audio,
        maps=frame_maps(pred, frame, level, threshold, scales),
        legend=map_legend([pred], level, scales),
        plot=area_plot(
            pred.times,
            {f"heard: {pred.audio_label}": area},
            title="Segmented area per second",
        ),
        summary="\n\n".join(parts),
        num_frames=len(area),
    )
    _stage(progress, 1.0, "done")
    return view


def _kind(caption: str) -> str:
    """Which map a caption names ("mask", "CLEVER layer 2", "DAM stage 1", "BCSM after")."""
    if caption.startswith("mask"):
        return "mask"
    if caption.startswith("BCSM"):
        return " ".join(caption.split()[:2]).rstrip(",")
    return caption.split(",")[0]


def condition_rows(
    preds: dict, index: int, level: int, threshold: float, scales
) -> tuple[list[tuple[np.ndarray, str]], int]:
    """The maps of second `index` for each condition (or checkpoint), one grid row each:
    mask, CLEVER layers, DAM, BCSM, all on the shared `scales`, every caption starting with
    the condition's name -> (tiles row by row, tiles per row). A map one of them lacks (a
    model without BCSM next to one with it) is a blank tile that says so, so the columns
    line up."""
    rows = {
        label: {
            _kind(c): (image, c)
            for image, c in frame_maps(pred, index, level, threshold, scales)[1:]
        }
        for label, pred in preds.items()
    }
    kinds = list(dict.fromkeys(kind for row in rows.values() for kind in row))
    tiles = []
    for label, row in rows.items():
        shape = next(iter(row.values()))[0].shape
        for kind in kinds:
            if kind in row:
                image, caption = row[kind]
                tiles.append((image, f"{label}: {caption}"))
            else:
                tiles.append((np.full(shape, 255, np.uint8), f"{label}: no {kind} in this model"))
    return tiles, len(kinds)


@dataclass
class IllusionView:
    """The illusion probe: an overlay video per condition, the maps of one second for each
    condition on shared scales, the per-second area table and plot, the scores."""

    videos: dict[str, Path]
    maps: list[tuple[np.ndarray, str]]  # row by row, `columns` tiles per condition
    columns: int
    legend: np.ndarray
    table: tuple[list[str], list[list]]
    plot: go.Figure
    summary: str
    scores: dict[str, np.ndarray]  # per negative condition: (T,) fraction segmented
    num_frames: int


def show_illusion(
    preds: dict,
    *,
    threshold: float,
    workdir: Path,
    second: int = 0,
    level: int = 0,
    overlays: dict[str, Path] | None = None,
    progress: Progress | None = None,
) -> IllusionView:
    """`preds` as `probe_illusion` returns them: the original first, then the negatives."""
    areas = {label: segmented_fraction(p.iter_masks(threshold)) for label, p in preds.items()}
    original = next(iter(preds))
    scores = {label: a for label, a in areas.items() if label != original}
    lines = [
        f"With its own audio the model segments **{100 * areas[original].mean():.1f}%** of "
        "the frame. With audio that should make nothing sound (a model that listens "
        "segments nothing), it segments:"
    ]
    for label, score in scores.items():
        worst = int(score.argmax())
        heard = preds[label].audio_label
        named = "" if heard in ("mute", "noise") else f" ({heard_as(heard)})"
        lines.append(
            f"- **{label}**{named}: illusion score "
            f"**{score.mean():.3f}** (mean fraction of the frame; highest {score[worst]:.3f} "
            f"at second {worst})"
        )
    scales = map_scales(preds.values())
    first = next(iter(preds.values()))
    maps, columns = condition_rows(preds, second, level, threshold, scales)
    view = IllusionView(
        videos=_overlays(preds, threshold, workdir, progress, overlays),
        maps=maps,
        columns=columns,
        legend=map_legend(list(preds.values()), level, scales),
        table=area_table(first.times, areas),
        plot=area_plot(first.times, areas, title="Segmented area per second, per audio"),
        summary="\n".join(lines),
        scores=scores,
        num_frames=len(first.frames),
    )
    return view


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T, H, W) masks -> (T,) IoU of their segmented (!= 0) pixels; 1 where both are empty."""
    a = (np.asarray(a) != 0).reshape(len(a), -1)
    b = (np.asarray(b) != 0).reshape(len(b), -1)
    union = (a | b).sum(1)
    return np.where(union > 0, (a & b).sum(1) / np.maximum(union, 1), 1.0)


@dataclass
class CompareView:
    video_a: Path
    video_b: Path
    names: tuple[str, str]
    maps: list[tuple[np.ndarray, str]]  # row by row, `columns` tiles per checkpoint
    columns: int
    legend: np.ndarray
    plot: go.Figure
    summary: str
    num_frames: int


def show_compare(
    pred_a,
    pred_b,
    names: tuple[str, str],
    *,
    threshold: float,
    workdir: Path,
    second: int = 0,
    level: int = 0,
    overlays: dict[str, Path] | None = None,
    progress: Progress | None = None,
) -> CompareView:
    masks_a, masks_b = pred_a.masks(threshold), pred_b.masks(threshold)
    area_a, area_b = segmented_fraction(masks_a), segmented_fraction(masks_b)
    iou = mask_iou(masks_a, masks_b)
    summary = (
        f"Both hear **{heard_as(pred_a.audio_label)}**. **{names[0]}** segments "
        f"{100 * area_a.mean():.1f}% of the frame on average, **{names[1]}** "
        f"{100 * area_b.mean():.1f}%; their masks agree with a mean IoU of {iou.mean():.3f}."
    )
    preds = {names[0]: pred_a, names[1]: pred_b}
    scales = map_scales(preds.values())
    videos = _overlays(preds, threshold, workdir, progress, overlays)
    maps, columns = condition_rows(preds, second, level, threshold, scales)
    return CompareView(
        video_a=videos[names[0]],
        video_b=videos[names[1]],
        names=names,
        maps=maps,
        columns=columns,
        legend=map_legend([pred_a, pred_b], level, scales),
        plot=compare_plot(
            pred_a.times,
            {names[0]: area_a, names[1]: area_b},
            iou,
            title="Two checkpoints: segmented area (top), agreement (bottom)",
        ),
        summary=summary,
        num_frames=len(area_a),
    )
