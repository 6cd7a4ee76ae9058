"""The demo's layout and its wiring to `app.handlers`.

`build_demo(settings, pool)` only builds components: it loads no model and opens no connection.
Each event runs in its own temporary folder, hands the files it made to gradio's cache (which
`delete_cache` ages out) and removes the folder, whatever happens; user errors become messages
in the UI.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import gradio as gr

from app import handlers, official
from app.examples import Example
from app.rendering import LEVEL_NAMES, MAPS_LABEL
from app.state import PredictorPool
from app.validation import DemoError, Limits

log = logging.getLogger("selm.demo")
STATE_SECONDS = 3600  # a session's predictions are dropped an hour after its last run
CACHE_AGE = (1800, 3600)  # every 30 min, delete output files older than an hour
PROGRESS = gr.Progress()  # the marker gradio looks for; each request gets its own tracker

INTRO = """\
# SelM: which object is making the sound?
SelM segments the objects that **sound** in each second of a video. Upload a video or pick an
AVS-Synth example, choose what the model hears, and see the masks, the maps inside the model
(CLEVER's token assignment, DAM's attention, BCSM's channel norms) and the segmented area.
*Probe illusion* runs the clip with and without sound: a model that listens segments nothing
when the clip is muted.
"""


@dataclass(frozen=True)
class DemoSettings:
    """checkpoints: {label: dir or Hub repo id}, the default first; max_side: longest side, in
    pixels, of what is shown; concurrency: model runs at a time."""

    checkpoints: dict[str, str]
    examples: list[Example] = field(default_factory=list)
    limits: Limits = Limits()
    max_side: int = 480
    concurrency: int = 1
    gpu: Callable[[Callable], Callable] | None = None  # e.g. spaces.GPU on Hugging Face ZeroGPU


@contextmanager
def request_dir() -> Iterator[Path]:
    """A fresh temporary folder for one request, removed when the request ends."""
    workdir = Path(tempfile.mkdtemp(prefix="selm-demo-"))
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """DemoError -> its message in the UI; anything else -> a short message and a log entry."""
    try:
        yield
    except DemoError as err:
        raise gr.Error(str(err), print_exception=False) from err
    except gr.Error:
        raise
    except Exception as err:  # a bug must not take the app down: say so and keep serving
        log.exception("demo request failed")
        raise gr.Error(
            f"Something went wrong inside the demo ({type(err).__name__}: {err}). "
            "Try another clip; if it persists, please report it."
        ) from err


def _gradio_progress(progress: gr.Progress) -> handlers.Progress:
    return lambda fraction, message: progress(fraction, desc=message)


def build_demo(settings: DemoSettings, pool: PredictorPool) -> gr.Blocks:
    """The Blocks app; `pool` gives predictors by checkpoint spec (loaded on first use)."""
    gpu = settings.gpu or (lambda fn: fn)
    model_choices = [(label, spec) for label, spec in settings.checkpoints.items()]
    default_spec = model_choices[0][1]
    example_choices = [(ex.label, str(ex.path)) for ex in settings.examples]

    with gr.Blocks(title="SelM demo", delete_cache=CACHE_AGE, analytics_enabled=False) as demo:
        run_state = gr.State(None, time_to_live=STATE_SECONDS)
        illusion_state = gr.State(None, time_to_live=STATE_SECONDS)
        compare_state = gr.State(None, time_to_live=STATE_SECONDS)
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                video = gr.Video(
                    label="Video (its audio track is used)",
                    sources=["upload"],
                    elem_id="video-input",
                )
                if settings.examples:
                    gr.Examples(
                        examples=[[str(ex.path)] for ex in settings.examples],
                        inputs=[video],
                        example_labels=[ex.label for ex in settings.examples],
                        label="AVS-Synth examples",
                        cache_examples=False,
                    )
                audio_kind = gr.Radio(
                    list(handlers.AUDIO_SOURCES.items()),
                    value="original",
                    label="What the model hears",
                )
                audio_upload = gr.Audio(
                    label="Audio file", type="filepath", sources=["upload"], visible=False
                )
                audio_example = gr.Dropdown(
                    example_choices,
                    label="Example whose audio is used",
                    value=example_choices[0][1] if example_choices else None,
                    visible=False,
                )
                model = gr.Dropdown(model_choices, value=default_spec, label="Checkpoint")
                model_status = gr.Markdown(elem_id="checkpoint-status")
                model_typed = gr.Textbox(
                    label="...or a checkpoint directory / HF repo id",
                    placeholder="e.g. ./runs/my-model or user/selm-repo",
                )
                threshold = gr.Slider(
                    0.05,
                    0.95,
                    value=0.5,
                    step=0.05,
                    label="Mask threshold",
                    info="Redraws the masks without running the model again (binary models).",
                )
                with gr.Row():
                    run_btn = gr.Button("Run", variant="primary", elem_id="run-button")
                    illusion_btn = gr.Button("Probe illusion", elem_id="illusion-button")
            with gr.Column(scale=2):
                with gr.Tabs() as tabs:
                    with gr.Tab("Result", id="result"):
                        summary = gr.Markdown()
                        with gr.Row():
                            overlay_video = gr.Video(
                                label="Masks over the video, with the audio used",
                                interactive=False,
                                elem_id="overlay-video",
                            )
                            heard = gr.Audio(
                                label="Audio the model heard",
                                type="filepath",
                                interactive=False,
                                elem_id="audio-heard",
                            )
                        with gr.Row():
                            second = gr.Slider(0, 4, value=0, step=1, label="Second")
                            level = gr.Dropdown(
                                list(zip(LEVEL_NAMES, range(4))),
                                value=0,
                                label="Feature level (DAM, BCSM)",
                            )
                        maps = gr.Gallery(
                            label=MAPS_LABEL,
                            columns=4,
                            height="auto",
                            object_fit="contain",
                            elem_id="maps",
                        )
                        area = gr.Plot(label="Segmented area per second", elem_id="area-plot")
                    with gr.Tab("Illusion probe", id="illusion"):
                        illusion_summary = gr.Markdown()
                        with gr.Row():
                            video_audio = gr.Video(label="With its audio", interactive=False)
                            video_muted = gr.Video(
                                label="Muted: what is segmented without sound", interactive=False
                            )
                        illusion_plot = gr.Plot(label="Illusion score per second")
                    with gr.Tab("Compare checkpoints", id="compare"):
                        with gr.Row():
                            other = gr.Dropdown(
                                model_choices, label="Compare with", value=model_choices[-1][1]
                            )
                            other_typed = gr.Textbox(
                                label="...or a checkpoint directory / HF repo id"
                            )
                        compare_btn = gr.Button("Compare on this clip and audio")
                        compare_summary = gr.Markdown()
                        with gr.Row():
                            video_a = gr.Video(label="Checkpoint (left)", interactive=False)
                            video_b = gr.Video(label="Compared with (right)", interactive=False)
                        compare_plot = gr.Plot(label="Segmented area per second")

        run_view = partial(run_outputs, overlay_video, heard)
        illusion_view = partial(illusion_outputs, video_audio, video_muted)
        compare_view = partial(compare_outputs, video_a, video_b)

        model.change(
            partial(on_pick, pool),
            model,
            model_status,
            api_name="load_checkpoint",
            concurrency_id="load",
        )

        run_outs = [overlay_video, heard, maps, second, area, summary, run_state]
        illusion_outs = [video_audio, video_muted, illusion_plot, illusion_summary, illusion_state]
        compare_outs = [video_a, video_b, compare_plot, compare_summary, compare_state]
        model_kw = dict(concurrency_id="model", concurrency_limit=settings.concurrency)
        audio_inputs = [audio_kind, audio_upload, audio_example]

        audio_kind.change(
            show_audio_inputs,
            audio_kind,
            [audio_upload, audio_example],
            queue=False,
            api_visibility="private",
        )
        for button, tab in ((run_btn, "result"), (illusion_btn, "illusion")):  # show where
            button.click(_select_tab(tab), None, tabs, queue=False, api_visibility="private")
        run_btn.click(
            gpu(partial(on_run, pool, settings, run_view)),
            [video, *audio_inputs, model, model_typed, threshold, level],
            run_outs,
            api_name="run",
            **model_kw,
        )
        illusion_btn.click(
            gpu(partial(on_illusion, pool, settings, illusion_view)),
            [video, model, model_typed, threshold],
            illusion_outs,
            api_name="probe_illusion",
            **model_kw,
        )
        compare_btn.click(
            gpu(partial(on_compare, pool, settings, compare_view)),
            [video, *audio_inputs, model, model_typed, other, other_typed, threshold],
            compare_outs,
            api_name="compare",
            **model_kw,
        )
        threshold.release(
            partial(redraw, run_view, 7), [run_state, threshold, level], run_outs, api_name="redraw"
        )
        threshold.release(
            partial(redraw, illusion_view, 5),
            [illusion_state, threshold],
            illusion_outs,
            api_name="redraw_illusion",
        )
        threshold.release(
            partial(redraw, compare_view, 5),
            [compare_state, threshold],
            compare_outs,
            api_name="redraw_compare",
        )
        for trigger in (second.release, level.change):
            trigger(on_maps, [run_state, threshold, second, level], maps, api_name="maps")
    demo.queue(default_concurrency_limit=settings.concurrency)
    return demo


# The event functions. build_demo binds their leading arguments (the pool, the settings, the
# components whose block cache receives the files) with functools.partial; gradio passes the
# rest from the event's inputs.


def audio_request(kind, upload, example) -> handlers.AudioRequest:
    return handlers.AudioRequest(kind=kind, upload=upload, example=example)


def show_audio_inputs(kind):
    """Show the upload box or the example picker when the audio source needs it."""
    return gr.Audio(visible=kind == "upload"), gr.Dropdown(visible=kind == "example")


def run_outputs(overlay_video, heard, pred, threshold_value, level_value, workdir):
    """The Result tab's outputs for a (display-size) prediction; its files go to the caches
    of the `overlay_video` and `heard` components."""
    view = handlers.show_run(
        pred, threshold=threshold_value, frame=0, level=level_value, workdir=workdir
    )
    return (
        overlay_video.move_resource_to_block_cache(view.video),
        heard.move_resource_to_block_cache(view.audio),
        view.maps,
        gr.Slider(
            0,
            max(view.num_frames - 1, 1),
            value=0,
            step=1,
            interactive=view.num_frames > 1,
            label="Second",
        ),
        view.plot,
        view.summary,
        pred,
    )


def _run_kw(settings: DemoSettings) -> dict:
    return dict(limits=settings.limits, max_side=settings.max_side)


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
    progress=PROGRESS,
):
    with user_errors(), request_dir() as workdir:
        predictor = pool.get(handlers.choose_checkpoint(picked, typed))
        pred = handlers.run_model(
            predictor,
            video_path,
            audio_request(kind, upload, example),
            progress=_gradio_progress(progress),
            **_run_kw(settings),
        )
        return outputs(pred, threshold_value, level_value, workdir)


def illusion_outputs(video_audio, video_muted, preds, threshold_value, workdir):
    view = handlers.show_illusion(*preds, threshold=threshold_value, workdir=workdir)
    return (
        video_audio.move_resource_to_block_cache(view.video_audio),
        video_muted.move_resource_to_block_cache(view.video_muted),
        view.plot,
        view.summary,
        preds,
    )


def on_illusion(
    pool: PredictorPool,
    settings: DemoSettings,
    outputs: Callable,
    video_path,
    picked,
    typed,
    threshold_value,
    progress=PROGRESS,
):
    with user_errors(), request_dir() as workdir:
        predictor = pool.get(handlers.choose_checkpoint(picked, typed))
        preds = handlers.probe_illusion(
            predictor, video_path, progress=_gradio_progress(progress), **_run_kw(settings)
        )
        return outputs(preds, threshold_value, workdir)


def compare_outputs(video_a, video_b, result, threshold_value, workdir):
    pred_a, pred_b, names = result
    view = handlers.show_compare(pred_a, pred_b, names, threshold=threshold_value, workdir=workdir)
    return (
        video_a.move_resource_to_block_cache(view.video_a),
        video_b.move_resource_to_block_cache(view.video_b),
        view.plot,
        view.summary,
        result,
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
    progress=PROGRESS,
):
    with user_errors(), request_dir() as workdir:
        specs = (
            handlers.choose_checkpoint(picked, typed),
            handlers.choose_checkpoint(other_picked, other_typed_value),
        )
        names = tuple(_label(spec, settings.checkpoints) for spec in specs)
        if names[0] == names[1]:
            names = (f"{names[0]} (left)", f"{names[1]} (right)")
        predictors = [(name, pool.get(spec)) for name, spec in zip(names, specs)]
        pred_a, pred_b = handlers.compare_checkpoints(
            predictors,
            video_path,
            audio_request(kind, upload, example),
            progress=_gradio_progress(progress),
            **_run_kw(settings),
        )
        return outputs((pred_a, pred_b, names), threshold_value, workdir)


def redraw(outputs: Callable, count: int, result, threshold_value, *extra):
    """Redraw a tab from the session's stored result at a new threshold (no model run);
    `count` outputs are left as they are when there is nothing stored yet."""
    if result is None:
        return (gr.skip(),) * count
    with user_errors(), request_dir() as workdir:
        return outputs(result, threshold_value, *extra, workdir)


def on_maps(pred, threshold_value, second_value, level_value):
    if pred is None:
        return gr.skip()
    with user_errors():
        return handlers.frame_maps(pred, int(second_value), int(level_value), threshold_value)


def on_pick(pool, spec, progress=PROGRESS):
    """The authors' models: downloaded and converted on first pick, with progress."""
    with user_errors():
        return official.prepare_checkpoint(spec, pool, _gradio_progress(progress))


def _select_tab(tab: str) -> Callable[[], gr.Tabs]:
    return lambda: gr.Tabs(selected=tab)


def _label(spec: str, checkpoints: dict[str, str]) -> str:
    for label, known in checkpoints.items():
        if known == spec:
            return label
    return spec
