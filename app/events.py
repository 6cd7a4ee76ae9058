"""The demo's event functions: what each button, slider and picker does. Plain functions, bound
to their components with `functools.partial` in `app.wiring`, so tests call them directly
without a Blocks app. Each model run happens in its own request folder (`app.requests`) and its
results go to the tab's outputs (`app.outputs`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import gradio as gr

from app import actions, official
from app.examples import CheckpointInfo, checkpoint_info
from app.requests import (
    audio_request,
    checkpoint_label,
    checkpoint_spec,
    gradio_progress,
    model_card,
    model_note,
    negative_requests,
    run_options,
    span,
    user_errors,
)
from app.settings import DemoSettings
from app.state import PredictorPool, ResultStore
from app.validation import DemoError, checked_threshold, scrub_paths

log = logging.getLogger("selm.demo")


PROGRESS = gr.Progress()  # the marker gradio looks for; each request gets its own tracker


def show_audio_inputs(kind):
    """Show the upload box or the example picker when the audio source needs it."""
    return gr.Audio(visible=kind == "upload"), gr.Dropdown(visible=kind == "example")


def describe_model(known: dict[str, CheckpointInfo], picked):
    return model_card(known.get(picked))


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
    with user_errors(), settings.requests.folder(settings.cache_dir) as workdir:
        threshold_value = checked_threshold(threshold_value)
        report = settings.requests.watch(gradio_progress(progress))
        report(0.0, "reading the video")
        spec = checkpoint_spec(settings, picked, typed)
        predictor = pool.get(spec)
        overlay = workdir / "overlay.mp4"
        pred = actions.run_model(
            predictor,
            video_path,
            audio_request(kind, upload, example, settings),
            progress=span(report, 0.02, 0.58),
            overlay=overlay,
            threshold=threshold_value,
            **run_options(settings),
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
            progress=span(report, 0.6, 0.4),
        )


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
    with user_errors(), settings.requests.folder(settings.cache_dir) as workdir:
        threshold_value = checked_threshold(threshold_value)
        report = settings.requests.watch(gradio_progress(progress))
        report(0.0, "reading the video")
        predictor = pool.get(checkpoint_spec(settings, picked, typed))
        requests = negative_requests(settings, video_path, negatives, probe_example, probe_upload)
        if not requests:
            raise DemoError("Tick at least one negative audio to probe (silent, white noise...).")
        labels = ["original", *(label for label, _ in requests)]
        overlays = actions.overlay_paths(labels, workdir)
        preds = actions.probe_illusion(
            predictor,
            video_path,
            requests,
            progress=span(report, 0.02, 0.58),
            overlays=overlays,
            threshold=threshold_value,
            **run_options(settings),
        )
        return outputs(
            preds,
            threshold_value,
            0,
            level_value,
            workdir,
            key=key,
            overlays=overlays,
            progress=span(report, 0.6, 0.4),
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
    with user_errors(), settings.requests.folder(settings.cache_dir) as workdir:
        threshold_value = checked_threshold(threshold_value)
        report = settings.requests.watch(gradio_progress(progress))
        report(0.0, "reading the video")
        specs = (
            checkpoint_spec(settings, picked, typed),
            checkpoint_spec(settings, other_picked, other_typed_value),
        )
        names = tuple(checkpoint_label(spec, settings.checkpoints) for spec in specs)
        if names[0] == names[1]:
            names = (f"{names[0]} (run 1)", f"{names[1]} (run 2)")
        cards = tuple(model_card(checkpoint_info(spec, name)) for spec, name in zip(specs, names))
        predictors = [(name, pool.get(spec)) for name, spec in zip(names, specs)]
        overlays = actions.overlay_paths(names, workdir)
        pred_a, pred_b = actions.compare_checkpoints(
            predictors,
            video_path,
            audio_request(kind, upload, example, settings),
            progress=span(report, 0.02, 0.58),
            overlays=overlays,
            threshold=threshold_value,
            **run_options(settings),
        )
        return outputs(
            (pred_a, pred_b, names, cards),
            threshold_value,
            0,
            level_value,
            workdir,
            key=key,
            overlays=overlays,
            progress=span(report, 0.6, 0.4),
        )


def redraw(settings: DemoSettings, outputs: Callable, count: int, key, threshold_value, *extra):
    """Redraw a tab from the session's stored result at a new threshold (no model run), at the
    second and level shown, in a request folder under the cache folder; `count` outputs are
    left as they are when nothing is stored (never run, or dropped from the bounded store)."""
    result = settings.store.get(key)
    if result is None:
        return (gr.skip(),) * count
    with user_errors(), settings.requests.folder(settings.cache_dir) as workdir:
        threshold_value = checked_threshold(threshold_value)
        return outputs(result, threshold_value, *extra, workdir, key=key)


def on_maps(store: ResultStore, draw: Callable, key, threshold_value, second_value, level_value):
    """The maps of another second or level, from the stored result (no model run)."""
    result = store.get(key)
    if result is None:
        return gr.skip(), gr.skip()
    with user_errors():
        return draw(result, checked_threshold(threshold_value), second_value, level_value)


def on_pick(pool, checkpoints: dict[str, str], picked, progress=PROGRESS):
    """The authors' models: downloaded and converted on first pick, with progress; the status
    line names no server path."""
    with user_errors():
        spec = checkpoints.get(picked, picked)
        return scrub_paths(official.prepare_checkpoint(spec, pool, gradio_progress(progress)))


def select_tab(tab: str) -> Callable[[], gr.Tabs]:
    return lambda: gr.Tabs(selected=tab)
