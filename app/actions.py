"""The demo's actions as plain functions: run the model, probe an illusion, compare two
checkpoints, choose the checkpoint a visitor may load.

Nothing here imports gradio; `app.events` calls these and tests call them directly. A run
returns a `Prediction` reduced to the display size (what a session keeps, so a new threshold
redraws without the model) and, when asked, writes its overlay video in the same pass
(`app.views` shows it).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from app.rendering import display_size
from app.validation import DemoError, Limits, VideoInfo, check_audio_file, probe_video
from selm.inference.audio_source import AudioSource
from selm.inference.prediction import Prediction
from selm.media.container import MediaError
from selm.render.overlay import OverlayVideo
from selm.runtime import Progress
from selm.weights.release import OFFICIAL_PREFIX

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
    return dataclasses.replace(pred, frames=frames, frame_size=None)  # masks at the frames' size


DEFAULT_THRESHOLD = 0.5  # the UI's initial mask threshold


def overlay_paths(labels, workdir: Path) -> dict[str, Path]:
    """Where the overlay video of each run (by label, in order) goes in a request's folder."""
    return {label: Path(workdir) / f"overlay_{i}.mp4" for i, label in enumerate(labels)}


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
    overlay: Path | None = None,
    threshold: float = DEFAULT_THRESHOLD,
):
    """Check the inputs, run the predictor window by window, keep a display-size copy; with
    `overlay`, the overlay video (masks at `threshold`) is written there in the same pass."""
    info = probe_video(video, limits)
    windows = predictor.windows(
        str(info.path),
        audio=audio_for_model(audio, info),
        progress=progress,
        max_seconds=limits.max_seconds,
        max_side=max_side,
        video_frames=overlay is not None,
    )
    try:
        if overlay is None:
            pred = Prediction.from_windows(windows)
        else:
            with OverlayVideo(overlay, threshold=threshold) as writer:
                pred = Prediction.from_windows(windows, writer.add)
    except MediaError as err:
        raise DemoError(str(err)) from err
    return display_copy(pred, max_side)


# the negative audio conditions of the illusion probe: what a model that listens should not
# segment anything for (a sound unrelated to the clip, for another clip's audio and uploads)
NEGATIVES = {
    "silent": "mute",
    "white noise": "noise",
    "another clip's audio": "example",
    "an uploaded sound": "upload",
}


def heard_as(label: str) -> str:
    """A prediction's `audio_label` as words for a sentence."""
    return {
        "original": "its own audio",
        "mute": "silence (muted)",
        "noise": "white noise",
    }.get(label, f"the audio of {label!r}")


def probe_illusion(
    predictor,
    video,
    negatives: list[tuple[str, AudioRequest]] | None = None,
    *,
    limits: Limits,
    max_side: int,
    progress: Progress | None = None,
    overlays: dict[str, Path] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, object]:
    """The clip with its own audio, then with each negative audio ((label, request) pairs;
    default: silent and white noise) -> {label: prediction}, the original first. `overlays`:
    {label: path} of the overlay videos to write in the same passes, at `threshold`."""
    info = probe_video(video, limits)
    if not info.has_audio:
        raise DemoError(
            f"{info.path.name!r} has no audio track, so there is no original to compare the "
            "negative audio with. Use Run with an uploaded audio file or another example's "
            "audio instead."
        )
    if negatives is None:
        negatives = [("silent", AudioRequest("mute")), ("white noise", AudioRequest("noise"))]
    if not negatives:
        raise DemoError("Tick at least one negative audio to probe (silent, white noise, ...).")
    conditions = [("original", AudioRequest("original")), *negatives]
    runs = {}
    for step, (label, request) in enumerate(conditions):
        runs[label] = run_model(
            predictor,
            video,
            request,
            limits=limits,
            max_side=max_side,
            progress=_part(progress, step / len(conditions), 1 / len(conditions), label),
            overlay=(overlays or {}).get(label),
            threshold=threshold,
        )
    return runs


def compare_checkpoints(
    predictors,
    video,
    audio: AudioRequest,
    *,
    limits: Limits,
    max_side: int,
    progress: Progress | None = None,
    overlays: dict[str, Path] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
):
    """Two (name, predictor) pairs on the same clip and audio -> (pred_a, pred_b); `overlays`:
    {name: path} of the overlay videos to write in the same passes, at `threshold`."""
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
                overlay=(overlays or {}).get(name),
                threshold=threshold,
            )
        )
    return runs[0], runs[1]


def choose_checkpoint(
    picked: str | None,
    typed: str | None,
    checkpoints: dict[str, str] | None = None,
    *,
    allow_any: bool = True,
) -> str:
    """The checkpoint to load: the typed one when given, else the pick (a label of
    `checkpoints` or its spec).

    Public mode (allow_any=False) loads only the listed checkpoints and the authors' published
    ones (`official:NAME`): nothing a visitor types reaches the server's disk or the Hub."""
    checkpoints = checkpoints or {}
    typed = (typed or "").strip()
    spec = typed or (picked or "").strip()
    if not spec:
        raise DemoError("Pick a checkpoint, or type the name of one.")
    if spec in checkpoints:
        return checkpoints[spec]
    if spec in checkpoints.values() or spec.startswith(OFFICIAL_PREFIX) or allow_any:
        return spec
    names = ", ".join(checkpoints) or "none"
    raise DemoError(
        f"This demo loads only its listed checkpoints ({names}) and the authors' published "
        f"ones ({OFFICIAL_PREFIX}NAME). To load your own, run the demo on your machine: "
        "`python app.py --allow-any-checkpoint`, or `--checkpoint DIR`."
    )
