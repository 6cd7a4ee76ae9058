"""What a demo request brings and how it ends: a checkpoint spec, an audio request and the
negatives from the inputs' values (a visitor names examples and checkpoints, never paths);
errors turned into messages that name no server path; gradio's progress mapped onto the stages
of the request; what to say about the model used. Its folder and its place among the requests
in flight: `app.state.Requests`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gradio as gr

from app import actions
from app.examples import CheckpointInfo, checkpoint_info
from app.settings import DemoSettings
from app.validation import DemoError, scrub_paths
from selm.files import DiskFullError
from selm.runtime import Progress
from selm.weights.release import OFFICIAL_PREFIX
from selm.weights.state_dict import CheckpointError

log = logging.getLogger("selm.demo")


@contextmanager
def user_errors() -> Iterator[None]:
    """DemoError -> its message in the UI; anything else -> a short message and a log entry.
    Absolute paths in either become file names."""
    try:
        yield
    except (DemoError, CheckpointError, DiskFullError) as err:  # the visitor's or the server's
        # state, not a bug: say it plainly (a broken checkpoint, no space left)
        raise gr.Error(scrub_paths(str(err)), print_exception=False) from err
    except gr.Error:
        raise
    except Exception as err:  # a bug must not take the app down: say so and keep serving
        log.exception("demo request failed")
        raise gr.Error(
            scrub_paths(
                f"Something went wrong inside the demo ({type(err).__name__}: {err}). "
                "Try another clip; if it persists, please report it."
            )
        ) from err


def gradio_progress(progress: gr.Progress) -> Progress:
    return lambda fraction, message: progress(min(max(fraction, 0.0), 1.0), desc=message)


def span(progress, start: float, span: float):
    """Progress of one stage (a model run, writing the results) inside the whole request."""
    return lambda fraction, message: progress(start + span * fraction, message)


def model_card(info: CheckpointInfo | None) -> str:
    """What the checkpoint picker says about the picked model."""
    if info is None:
        return "A checkpoint you typed: nothing recorded about it here."
    text = info.evaluation_markdown()
    if info.synthetic:
        text += (
            "\n\nTrained on synthetic shapes only: it has never seen a real video, so on a "
            "real clip its masks mean nothing."
        )
    return text


def audio_request(kind, upload, example, settings: DemoSettings) -> actions.AudioRequest:
    return actions.AudioRequest(
        kind=kind, upload=upload, example=example_path(example, settings) if example else None
    )


def example_path(name: str | None, settings: DemoSettings) -> str:
    """An example's file on the server from its name (a visitor names examples, never paths)."""
    for ex in settings.examples:
        if name in (ex.name, str(ex.path)):
            return str(ex.path)
    raise DemoError(f"There is no example {Path(str(name)).name!r}; pick one of the list.")


def run_options(settings: DemoSettings) -> dict:
    return dict(limits=settings.limits, max_side=settings.max_side)


def checkpoint_spec(settings: DemoSettings, picked, typed) -> str:
    return actions.choose_checkpoint(
        picked, typed, settings.checkpoints, allow_any=settings.allow_any_checkpoint
    )


def model_note(settings: DemoSettings, spec: str, video_path) -> str:
    """What to say when a model trained on synthetic shapes meets a video that is not one of
    the examples: it has never seen real video (and where the authors' models are)."""
    info = next(
        (checkpoint_info(s, label) for label, s in settings.checkpoints.items() if s == spec),
        checkpoint_info(spec),
    )
    names = {ex.name for ex in settings.examples}
    if not info.synthetic or Path(str(video_path)).name in names:
        return ""
    official = [label for label, s in settings.checkpoints.items() if s.startswith(OFFICIAL_PREFIX)]
    where = (
        f"pick one of the authors' models ({', '.join(official)})"
        if official
        else "use the authors' published models (see the README: `python -m selm.convert`)"
    )
    return (
        f"**Note:** {info.name} was trained only on {info.trained_on}"
        + (f" at {info.input_size} px" if info.input_size else "")
        + ". If this is a real video, the model has never seen one and its masks mean "
        f"nothing here; {where}."
    )


def negative_requests(
    settings: DemoSettings, video_path, negatives, probe_example, probe_upload
) -> list[tuple[str, actions.AudioRequest]]:
    """The ticked negatives as (label, request) pairs; another clip's audio is never the
    clip's own (another example is taken when the picked one is this clip)."""
    requests = []
    for label in negatives or []:
        kind = actions.NEGATIVES.get(label)
        if kind is None:
            raise DemoError(f"Unknown negative audio {label!r}; tick the listed ones.")
        if kind == "example":
            if not settings.examples:
                raise DemoError("There are no examples to take another clip's audio from.")
            path = example_path(probe_example, settings) if probe_example else None
            own = Path(str(video_path)).name
            if path is None or Path(path).name == own:
                others = [ex for ex in settings.examples if ex.name != own]
                if not others:
                    raise DemoError("There is no other example clip to take the audio from.")
                path = str(others[0].path)
            requests.append((label, actions.AudioRequest("example", example=path)))
        elif kind == "upload":
            requests.append((label, actions.AudioRequest("upload", upload=probe_upload)))
        else:
            requests.append((label, actions.AudioRequest(kind)))
    return requests


def checkpoint_label(spec: str, checkpoints: dict[str, str]) -> str:
    for label, known in checkpoints.items():
        if known == spec:
            return label
    return Path(spec).name if not spec.startswith(OFFICIAL_PREFIX) else spec
