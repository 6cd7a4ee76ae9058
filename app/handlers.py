"""The demo's actions as plain functions: run, probe an illusion, compare two checkpoints, redraw.

Nothing here imports gradio; `app.ui` wires these to components and tests call them directly.
Running returns a `Prediction` reduced to the display size (what a session keeps, so a new
threshold redraws without the model); showing writes the overlay videos and the audio that was
heard into `workdir`, a per-request folder the caller removes afterwards.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import plotly.graph_objects as go

from app.rendering import area_plot, display_size, frame_maps, segmented_fraction, write_overlay
from app.validation import DemoError, Limits, VideoInfo, check_audio_file, probe_video
from selm.audio_source import AudioSource
from selm.media import MediaError, write_wav

Progress = Callable[[float, str], object]

# what the user picks in the UI -> what the predictor gets (see AudioRequest)
AUDIO_SOURCES = {
    "the clip's own audio": "original",
    "muted": "mute",
    "white noise": "noise",
    "an uploaded audio file": "upload",
    "another example's audio": "example",
}


@dataclass(frozen=True)
class AudioRequest:
    """The audio the model should hear: `kind` is a value of AUDIO_SOURCES; `upload` is the
    uploaded file (kind "upload"), `example` the example clip whose track is used ("example")."""

    kind: str = "original"
    upload: str | None = None
    example: str | None = None


def audio_for_model(request: AudioRequest, video: VideoInfo) -> AudioSource:
    """-> what the predictor should hear (an uploaded or example file is always a file,
    whatever its name)."""
    if request.kind == "original":
        if not video.has_audio:
            raise DemoError(
                f"{video.path.name!r} has no audio track, so there is no clip audio to hear. "
                "Choose 'muted', 'white noise', an uploaded audio file or another example's audio."
            )
        return AudioSource.original()
    if request.kind == "mute":
        return AudioSource.mute()
    if request.kind == "noise":
        return AudioSource.noise()
    if request.kind == "upload":
        return AudioSource.file(check_audio_file(request.upload))
    if request.kind == "example":
        if not request.example:
            raise DemoError("Pick the example whose audio the model should hear.")
        return AudioSource.file(check_audio_file(request.example))
    raise DemoError(f"Unknown audio source {request.kind!r}; pick one of the listed sources.")


def display_copy(pred, max_side: int):
    """The prediction with frames resized so the longer side is <= max_side (probabilities
    and maps stay at the model's own grids; masks are drawn at the frames' size)."""
    count, height, width = pred.frames.shape[:3]
    w, h = display_size(width, height, max_side)
    if (w, h) == (width, height):
        return pred
    frames = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in pred.frames])
    return dataclasses.replace(pred, frames=frames)


DEFAULT_THRESHOLD = 0.5  # the UI's initial mask threshold: the overlay of the first pass


def pending_overlay() -> Path:
    """A fresh temporary mp4 path for the overlay a run writes; `write_overlay` moves it into
    the request's folder (or it is removed with its prediction)."""
    handle, name = tempfile.mkstemp(prefix="selm-overlay-", suffix=".mp4")
    os.close(handle)
    return Path(name)


def _remove_file(path: Path) -> None:
    Path(path).unlink(missing_ok=True)


def _part(progress: Progress | None, start: float, span: float, what: str) -> Progress | None:
    """Progress of one of several runs, mapped into [start, start + span] of the whole."""
    if progress is None:
        return None
    return lambda fraction, message: progress(start + span * fraction, f"{what}: {message}")


def run_model(
    predictor,
    video: str | os.PathLike | None,
    audio: AudioRequest,
    *,
    limits: Limits,
    max_side: int,
    progress: Progress | None = None,
):
    """Check the inputs, run the predictor in windows, keep a display-size copy."""
    info = probe_video(video, limits)
    audio_arg = audio_for_model(audio, info)
    overlay = pending_overlay()  # drawn at the default threshold in the same pass
    try:
        pred = predictor.predict(
            str(info.path),
            audio=audio_arg,
            progress=progress,
            max_seconds=limits.max_seconds,
            overlay=overlay,
            threshold=DEFAULT_THRESHOLD,
            max_side=max_side,
        )
    except MediaError as err:
        overlay.unlink(missing_ok=True)
        raise DemoError(str(err)) from err
    except BaseException:
        overlay.unlink(missing_ok=True)
        raise
    weakref.finalize(pred, _remove_file, overlay)  # when the overlay is never shown
    return display_copy(pred, max_side)


def probe_illusion(
    predictor, video, *, limits: Limits, max_side: int, progress: Progress | None = None
):
    """The same clip twice: with its own audio, then muted -> (pred_audio, pred_muted)."""
    info = probe_video(video, limits)
    if not info.has_audio:
        raise DemoError(
            f"{info.path.name!r} has no audio track, so there is nothing to compare with silence. "
            "Use Run with an uploaded audio file or another example's audio instead."
        )
    runs = []
    for step, kind in enumerate(("original", "mute")):
        runs.append(
            run_model(
                predictor,
                video,
                AudioRequest(kind),
                limits=limits,
                max_side=max_side,
                progress=_part(progress, step / 2, 0.5, kind),
            )
        )
    return runs[0], runs[1]


def compare_checkpoints(
    predictors,
    video,
    audio: AudioRequest,
    *,
    limits: Limits,
    max_side: int,
    progress: Progress | None = None,
):
    """Two predictors on the same clip and audio -> (pred_a, pred_b)."""
    runs = []
    for step, (name, predictor) in enumerate(predictors):
        runs.append(
            run_model(
                predictor,
                video,
                audio,
                limits=limits,
                max_side=max_side,
                progress=_part(progress, step / 2, 0.5, name),
            )
        )
    return runs[0], runs[1]


@dataclass
class RunView:
    """The Result tab: overlay video, the audio heard (wav), the row of maps, the area plot."""

    video: Path
    audio: Path
    maps: list[tuple[np.ndarray, str]]
    plot: go.Figure
    summary: str
    num_frames: int


def show_run(pred, *, threshold: float, frame: int, level: int, workdir: Path) -> RunView:
    area = segmented_fraction(pred.masks(threshold))
    video = write_overlay(pred, Path(workdir) / "overlay.mp4", threshold)
    audio = write_wav(Path(workdir) / "audio_heard.wav", pred.waveform)
    summary = (
        f"**{len(area)} s** of video heard with **{pred.audio_label}** audio: "
        f"{100 * area.mean():.1f}% of the frame segmented on average "
        f"(most at second {int(area.argmax())}: {100 * area.max():.1f}%)."
    )
    return RunView(
        video=video,
        audio=audio,
        maps=frame_maps(pred, frame, level, threshold),
        plot=area_plot(
            pred.times, {f"audio: {pred.audio_label}": area}, title="Segmented area per second"
        ),
        summary=summary,
        num_frames=len(area),
    )


@dataclass
class IllusionView:
    """The illusion probe: overlays with sound and muted, the per-second illusion score."""

    video_audio: Path
    video_muted: Path
    plot: go.Figure
    summary: str
    scores: np.ndarray  # (T,) fraction of pixels segmented with no sound


def show_illusion(pred_audio, pred_muted, *, threshold: float, workdir: Path) -> IllusionView:
    heard = segmented_fraction(pred_audio.masks(threshold))
    scores = segmented_fraction(pred_muted.masks(threshold))
    worst = int(scores.argmax())
    summary = (
        f"**Illusion score {scores.mean():.3f}** (mean over {len(scores)} s of the fraction "
        f"of pixels segmented with no sound; highest {scores[worst]:.3f} at second {worst}). "
        f"With its audio, the model segments {100 * heard.mean():.1f}% of the frame. "
        "A model that listens segments nothing when the clip is muted."
    )
    return IllusionView(
        video_audio=write_overlay(pred_audio, Path(workdir) / "with_audio.mp4", threshold),
        video_muted=write_overlay(pred_muted, Path(workdir) / "muted.mp4", threshold),
        plot=area_plot(
            pred_audio.times,
            {"with its audio": heard, "muted (illusion score)": scores},
            title="Segmented area per second: with sound vs muted",
        ),
        summary=summary,
        scores=scores,
    )


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
    plot: go.Figure
    summary: str


def show_compare(
    pred_a, pred_b, names: tuple[str, str], *, threshold: float, workdir: Path
) -> CompareView:
    masks_a, masks_b = pred_a.masks(threshold), pred_b.masks(threshold)
    area_a, area_b = segmented_fraction(masks_a), segmented_fraction(masks_b)
    iou = mask_iou(masks_a, masks_b)
    summary = (
        f"Audio: **{pred_a.audio_label}**. **{names[0]}** segments {100 * area_a.mean():.1f}% "
        f"of the frame on average, **{names[1]}** {100 * area_b.mean():.1f}%; their masks "
        f"agree with a mean IoU of {iou.mean():.3f}."
    )
    return CompareView(
        video_a=write_overlay(pred_a, Path(workdir) / "model_a.mp4", threshold),
        video_b=write_overlay(pred_b, Path(workdir) / "model_b.mp4", threshold),
        plot=area_plot(
            pred_a.times,
            {names[0]: area_a, names[1]: area_b, "IoU of the two": iou},
            title="Segmented area per second, two checkpoints",
            y_title="fraction",
        ),
        summary=summary,
    )


def choose_checkpoint(picked: str | None, typed: str | None) -> str:
    """The checkpoint to load: the typed directory / Hub repo id when given, else the pick."""
    spec = (typed or "").strip() or (picked or "").strip()
    if not spec:
        raise DemoError(
            "Pick a checkpoint, or type a checkpoint directory or Hugging Face repo id."
        )
    return spec
