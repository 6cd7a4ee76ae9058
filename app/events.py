"""The demo's event functions: what each button, slider and picker does. Plain functions, bound
to their components with `functools.partial` in `app.ui.build_demo`, so tests call them directly
without a Blocks app."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr

from app import handlers, official
from app.examples import CheckpointInfo, checkpoint_info
from app.rendering import gallery
from app.state import PredictorPool, ResultStore
from app.validation import DemoError, scrub_paths
from selm.files import DiskFullError
from selm.render.maps import frame_maps, map_legend, map_scales
from selm.weights.release import OFFICIAL_PREFIX
from selm.weights.state_dict import CheckpointError

if TYPE_CHECKING:
    from app.ui import DemoSettings

log = logging.getLogger("selm.demo")


PROGRESS = gr.Progress()  # the marker gradio looks for; each request gets its own tracker


@contextmanager
def request_dir(root: Path | None = None) -> Iterator[Path]:
    """A fresh temporary folder for one request (under `root` when given), removed when the
    request ends."""
    if root is not None:
        Path(root).mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="selm-demo-", dir=root))
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


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


def _gradio_progress(progress: gr.Progress) -> handlers.Progress:
    return lambda fraction, message: progress(min(max(fraction, 0.0), 1.0), desc=message)


def _span(progress, start: float, span: float):
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


def audio_request(kind, upload, example, settings: DemoSettings) -> handlers.AudioRequest:
    return handlers.AudioRequest(
        kind=kind, upload=upload, example=example_path(example, settings) if example else None
    )


def example_path(name: str | None, settings: DemoSettings) -> str:
    """An example's file on the server from its name (a visitor names examples, never paths)."""
    for ex in settings.examples:
        if name in (ex.name, str(ex.path)):
            return str(ex.path)
    raise DemoError(f"There is no example {Path(str(name)).name!r}; pick one of the list.")


def show_audio_inputs(kind):
    """Show the upload box or the example picker when the audio source needs it."""
    return gr.Audio(visible=kind == "upload"), gr.Dropdown(visible=kind == "example")


def describe_model(known: dict[str, CheckpointInfo], picked):
    return model_card(known.get(picked))


def _slider(num_frames: int, value: int = 0) -> gr.Slider:
    last = max(num_frames - 1, 1)
    return gr.Slider(
        0,
        last,
        value=min(max(int(value), 0), num_frames - 1),
        step=1,
        interactive=num_frames > 1,
        label="Second",
    )


def _run_kw(settings: DemoSettings) -> dict:
    return dict(limits=settings.limits, max_side=settings.max_side)


def _checkpoint(settings: DemoSettings, picked, typed) -> str:
    return handlers.choose_checkpoint(
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


def run_outputs(
    store,
    overlay_video,
    heard,
    result,
    threshold_value,
    second_value,
    level_value,
    workdir,
    *,
    key=None,
    note="",
    overlay=None,
    progress=None,
):
    """The Result tab's outputs for a (display-size) prediction; its files go to the caches
    of the `overlay_video` and `heard` components; the prediction goes to `store`. `overlay`:
    the overlay video its run wrote at this threshold (else it is drawn again)."""
    pred = result
    view = handlers.show_run(
        pred,
        threshold=threshold_value,
        frame=int(second_value),
        level=int(level_value),
        workdir=workdir,
        note=note,
        overlay=overlay,
        progress=progress,
    )
    return (
        overlay_video.move_resource_to_block_cache(view.video),
        heard.move_resource_to_block_cache(view.audio),
        gallery(view.maps),
        view.legend,
        _slider(view.num_frames, second_value),
        view.plot,
        view.summary,
        store.put(pred, key),
    )


def on_run(
    pool: PredictorPool,
    settings: DemoSettings,
    outputs: Callable,
    video_path,
    kind,
    upload,
    example,
    picked,
    typed,
    threshold_value,
    level_value,
    key=None,
    progress=PROGRESS,
):
    with user_errors(), request_dir(settings.cache_dir) as workdir:
        report = _gradio_progress(progress)
        report(0.0, "reading the video")
        spec = _checkpoint(settings, picked, typed)
        predictor = pool.get(spec)
        overlay = workdir / "overlay.mp4"
        pred = handlers.run_model(
            predictor,
            video_path,
            audio_request(kind, upload, example, settings),
            progress=_span(report, 0.02, 0.58),
            overlay=overlay,
            threshold=threshold_value,
            **_run_kw(settings),
        )
        return outputs(
            pred,
            threshold_value,
            0,
            level_value,
            workdir,
            key=key,
            note=model_note(settings, spec, video_path),
            overlay=overlay,
            progress=_span(report, 0.6, 0.4),
        )


def illusion_outputs(
    store,
    videos,
    result,
    threshold_value,
    second_value,
    level_value,
    workdir,
    *,
    key=None,
    overlays=None,
    progress=None,
):
    view = handlers.show_illusion(
        result,
        threshold=threshold_value,
        workdir=workdir,
        second=int(second_value),
        level=int(level_value),
        overlays=overlays,
        progress=progress,
    )
    shown = list(view.videos.items())
    updates = []
    for i, component in enumerate(videos):
        if i < len(shown):
            label, path = shown[i]
            updates.append(
                gr.Video(
                    value=component.move_resource_to_block_cache(path),
                    label=_condition_label(label, result[label].audio_label),
                    visible=True,
                )
            )
        else:
            updates.append(gr.Video(value=None, visible=False))
    headers, rows = view.table
    return (
        *updates,
        gr.Gallery(value=gallery(view.maps), columns=view.columns),
        view.legend,
        _slider(view.num_frames, second_value),
        gr.Dataframe(value=rows, headers=headers),
        view.plot,
        view.summary,
        store.put(result, key),
    )


def _condition_label(label: str, audio_label: str) -> str:
    """A condition's video label: its name, and the file heard where it names one."""
    if audio_label in ("original", "mute", "noise"):
        return label
    return f"{label}: {audio_label}"


def negative_requests(
    settings: DemoSettings, video_path, negatives, probe_example, probe_upload
) -> list[tuple[str, handlers.AudioRequest]]:
    """The ticked negatives as (label, request) pairs; another clip's audio is never the
    clip's own (another example is taken when the picked one is this clip)."""
    requests = []
    for label in negatives or []:
        kind = handlers.NEGATIVES.get(label)
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
            requests.append((label, handlers.AudioRequest("example", example=path)))
        elif kind == "upload":
            requests.append((label, handlers.AudioRequest("upload", upload=probe_upload)))
        else:
            requests.append((label, handlers.AudioRequest(kind)))
    return requests


def on_illusion(
    pool: PredictorPool,
    settings: DemoSettings,
    outputs: Callable,
    video_path,
    picked,
    typed,
    threshold_value,
    negatives=("silent", "white noise"),
    probe_example=None,
    probe_upload=None,
    level_value=0,
    key=None,
    progress=PROGRESS,
):
    with user_errors(), request_dir(settings.cache_dir) as workdir:
        report = _gradio_progress(progress)
        report(0.0, "reading the video")
        predictor = pool.get(_checkpoint(settings, picked, typed))
        requests = negative_requests(settings, video_path, negatives, probe_example, probe_upload)
        if not requests:
            raise DemoError("Tick at least one negative audio to probe (silent, white noise...).")
        labels = ["original", *(label for label, _ in requests)]
        overlays = handlers.overlay_paths(labels, workdir)
        preds = handlers.probe_illusion(
            predictor,
            video_path,
            requests,
            progress=_span(report, 0.02, 0.58),
            overlays=overlays,
            threshold=threshold_value,
            **_run_kw(settings),
        )
        return outputs(
            preds,
            threshold_value,
            0,
            level_value,
            workdir,
            key=key,
            overlays=overlays,
            progress=_span(report, 0.6, 0.4),
        )


def compare_outputs(
    store,
    video_a,
    video_b,
    result,
    threshold_value,
    second_value,
    level_value,
    workdir,
    *,
    key=None,
    overlays=None,
    progress=None,
):
    pred_a, pred_b, names, cards = result
    view = handlers.show_compare(
        pred_a,
        pred_b,
        names,
        threshold=threshold_value,
        workdir=workdir,
        second=int(second_value),
        level=int(level_value),
        overlays=overlays,
        progress=progress,
    )
    return (
        gr.Video(value=video_a.move_resource_to_block_cache(view.video_a), label=names[0]),
        gr.Video(value=video_b.move_resource_to_block_cache(view.video_b), label=names[1]),
        gr.Gallery(value=gallery(view.maps), columns=view.columns),
        view.legend,
        _slider(view.num_frames, second_value),
        view.plot,
        view.summary,
        cards[0],
        cards[1],
        store.put(result, key),
    )


def on_compare(
    pool: PredictorPool,
    settings: DemoSettings,
    outputs: Callable,
    video_path,
    kind,
    upload,
    example,
    picked,
    typed,
    other_picked,
    other_typed_value,
    threshold_value,
    level_value=0,
    key=None,
    progress=PROGRESS,
):
    with user_errors(), request_dir(settings.cache_dir) as workdir:
        report = _gradio_progress(progress)
        report(0.0, "reading the video")
        specs = (
            _checkpoint(settings, picked, typed),
            _checkpoint(settings, other_picked, other_typed_value),
        )
        names = tuple(_label(spec, settings.checkpoints) for spec in specs)
        if names[0] == names[1]:
            names = (f"{names[0]} (run 1)", f"{names[1]} (run 2)")
        cards = tuple(model_card(checkpoint_info(spec, name)) for spec, name in zip(specs, names))
        predictors = [(name, pool.get(spec)) for name, spec in zip(names, specs)]
        overlays = handlers.overlay_paths(names, workdir)
        pred_a, pred_b = handlers.compare_checkpoints(
            predictors,
            video_path,
            audio_request(kind, upload, example, settings),
            progress=_span(report, 0.02, 0.58),
            overlays=overlays,
            threshold=threshold_value,
            **_run_kw(settings),
        )
        return outputs(
            (pred_a, pred_b, names, cards),
            threshold_value,
            0,
            level_value,
            workdir,
            key=key,
            overlays=overlays,
            progress=_span(report, 0.6, 0.4),
        )


def redraw(store: ResultStore, outputs: Callable, count: int, key, threshold_value, *extra):
    """Redraw a tab from the session's stored result at a new threshold (no model run), at the
    second and level shown; `count` outputs are left as they are when nothing is stored (never
    run, or dropped from the bounded store)."""
    result = store.get(key)
    if result is None:
        return (gr.skip(),) * count
    with user_errors(), request_dir() as workdir:
        return outputs(result, threshold_value, *extra, workdir, key=key)


def run_maps(result, threshold_value, second_value, level_value):
    view_maps = frame_maps(result, int(second_value), int(level_value), threshold_value)
    return gallery(view_maps), map_legend([result], int(level_value))


def illusion_maps_of(result, threshold_value, second_value, level_value):
    scales = map_scales(result.values())
    tiles, columns = handlers.condition_rows(
        result, int(second_value), int(level_value), threshold_value, scales
    )
    legend = map_legend(list(result.values()), int(level_value), scales)
    return gr.Gallery(value=gallery(tiles), columns=columns), legend


def compare_maps_of(result, threshold_value, second_value, level_value):
    pred_a, pred_b, names, _ = result
    preds = {names[0]: pred_a, names[1]: pred_b}
    scales = map_scales(preds.values())
    tiles, columns = handlers.condition_rows(
        preds, int(second_value), int(level_value), threshold_value, scales
    )
    legend = map_legend([pred_a, pred_b], int(level_value), scales)
    return gr.Gallery(value=gallery(tiles), columns=columns), legend


def on_maps(store: ResultStore, draw: Callable, key, threshold_value, second_value, level_value):
    """The maps of another second or level, from the stored result (no model run)."""
    result = store.get(key)
    if result is None:
        return gr.skip(), gr.skip()
    with user_errors():
        return draw(result, threshold_value, second_value, level_value)


def on_pick(pool, checkpoints: dict[str, str], picked, progress=PROGRESS):
    """The authors' models: downloaded and converted on first pick, with progress; the status
    line names no server path."""
    with user_errors():
        spec = checkpoints.get(picked, picked)
        return scrub_paths(official.prepare_checkpoint(spec, pool, _gradio_progress(progress)))


def _select_tab(tab: str) -> Callable[[], gr.Tabs]:
    return lambda: gr.Tabs(selected=tab)


def _label(spec: str, checkpoints: dict[str, str]) -> str:
    for label, known in checkpoints.items():
        if known == spec:
            return label
    return Path(spec).name if not spec.startswith(OFFICIAL_PREFIX) else spec
