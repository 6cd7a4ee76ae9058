"""The demo's layout and its wiring to `app.handlers`.

`build_demo(settings, pool)` only builds components and binds the event functions of
`app.events` to them: it loads no model and opens no connection. Each event runs in its own
temporary folder, hands the files it made to gradio's cache (which `delete_cache` ages out) and
removes the folder, whatever happens; user errors become messages in the UI, with file names
only (never a server path). A session's `gr.State` holds only a key into the bounded
`ResultStore`, where its predictions wait for redraws.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import gradio as gr

from app import handlers
from app.events import (
    _select_tab,
    compare_maps_of,
    compare_outputs,
    describe_model,
    illusion_maps_of,
    illusion_outputs,
    model_card,
    on_compare,
    on_illusion,
    on_maps,
    on_pick,
    on_run,
    redraw,
    run_maps,
    run_outputs,
    show_audio_inputs,
)
from app.examples import CheckpointInfo, Example, checkpoint_info
from app.rendering import LEVEL_NAMES, MAPS_LABEL
from app.state import PredictorPool, ResultStore
from app.validation import Limits
from selm.weights.release import OFFICIAL_PREFIX

log = logging.getLogger("selm.demo")
CACHE_AGE = (1800, 3600)  # every 30 min, delete output files older than an hour
MAX_CONDITIONS = 1 + len(handlers.NEGATIVES)  # videos in the illusion tab

INTRO = """\
# SelM: which object is making the sound?
SelM segments the objects that **sound** in each second of a video. Upload a video or pick an
AVS-Synth example, choose what the model hears, and see the masks, the maps inside the model
(CLEVER's token assignment, DAM's attention, BCSM's channel norms) and the segmented area.
*Probe illusion* runs the clip with its own audio and with audio that should make nothing sound
(silence, noise, another clip's audio, a sound you upload): a model that listens segments
nothing then.
"""


@dataclass(frozen=True)
class DemoSettings:
    """checkpoints: {label: dir, Hub repo id or official:NAME}, the default first; max_side:
    longest side, in pixels, of what is shown; concurrency: model runs at a time;
    allow_any_checkpoint: load any directory or repo a user types (a researcher's own machine),
    else only the listed ones and official:NAME; store: where sessions' results wait for redraws;
    cache_dir: the app's own folder for per-request files (default: the system's temp dir)."""

    checkpoints: dict[str, str]
    examples: list[Example] = field(default_factory=list)
    limits: Limits = Limits()
    max_side: int = 480
    concurrency: int = 1
    gpu: Callable[[Callable], Callable] | None = None  # e.g. spaces.GPU on Hugging Face ZeroGPU
    allow_any_checkpoint: bool = False
    store: ResultStore = field(default_factory=ResultStore)
    cache_dir: Path | None = None


def infos(settings: DemoSettings) -> dict[str, CheckpointInfo]:
    return {label: checkpoint_info(spec, label) for label, spec in settings.checkpoints.items()}


def default_compare(settings: DemoSettings) -> str:
    """The Compare tab's first choice: the checkpoint an example's description compares with
    the default, when listed; else the last local checkpoint (the authors' ones download on
    first use)."""
    local = [
        label for label, s in settings.checkpoints.items() if not s.startswith(OFFICIAL_PREFIX)
    ]
    named = [ex.compare for ex in settings.examples if ex.compare in local[1:]]
    return named[0] if named else (local or list(settings.checkpoints))[-1]


def build_demo(settings: DemoSettings, pool: PredictorPool) -> gr.Blocks:
    """The Blocks app; `pool` gives predictors by checkpoint spec (loaded on first use)."""
    gpu = settings.gpu or (lambda fn: fn)
    known = infos(settings)
    model_choices = [(known[label].label, label) for label in settings.checkpoints]
    compare_default = default_compare(settings)
    default_model = model_choices[0][1]
    example_choices = [(ex.label, ex.name) for ex in settings.examples]
    typed_label = (
        "...or a checkpoint directory / HF repo id"
        if settings.allow_any_checkpoint
        else f"...or one of the authors' published checkpoints ({OFFICIAL_PREFIX}NAME)"
    )

    with gr.Blocks(title="SelM demo", delete_cache=CACHE_AGE, analytics_enabled=False) as demo:
        run_state = gr.State(None)
        illusion_state = gr.State(None)
        compare_state = gr.State(None)
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
                        label="AVS-Synth examples (category = the shape drawn)",
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
                model = gr.Dropdown(
                    model_choices, value=default_model, label="Checkpoint", elem_id="model"
                )
                model_info = gr.Markdown(model_card(known[default_model]), elem_id="model-info")
                model_status = gr.Markdown(elem_id="checkpoint-status")
                model_typed = gr.Textbox(label=typed_label, placeholder="e.g. official:s4_r50")
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
                        summary = gr.Markdown(elem_id="run-summary")
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
                        second, level = _second_and_level("run")
                        maps = _gallery("maps", columns=4)
                        legend = _legend("map-legend")
                        area = gr.Plot(label="Segmented area per second", elem_id="area-plot")
                    with gr.Tab("Illusion probe", id="illusion"):
                        with gr.Row():
                            negatives = gr.CheckboxGroup(
                                list(handlers.NEGATIVES),
                                value=["silent", "white noise", "another clip's audio"],
                                label="Negative audio to try (each is a run of the model)",
                                elem_id="negatives",
                            )
                            probe_example = gr.Dropdown(
                                example_choices,
                                label="Another clip's audio: which clip",
                                value=example_choices[-1][1] if example_choices else None,
                            )
                            probe_upload = gr.Audio(
                                label="An uploaded sound", type="filepath", sources=["upload"]
                            )
                        illusion_summary = gr.Markdown(elem_id="illusion-summary")
                        illusion_table = gr.Dataframe(
                            label="Segmented area per second and audio (% of the frame)",
                            interactive=False,
                            elem_id="illusion-table",
                        )
                        illusion_plot = gr.Plot(label="Segmented area per second, per audio")
                        illusion_second, illusion_level = _second_and_level("illusion")
                        illusion_maps = _gallery("illusion-maps", columns=7)
                        illusion_legend = _legend("illusion-legend")
                        with gr.Row():
                            illusion_videos = [
                                gr.Video(
                                    interactive=False,
                                    visible=False,
                                    elem_id=f"illusion-video-{i}",
                                    min_width=160,
                                )
                                for i in range(MAX_CONDITIONS)
                            ]
                    with gr.Tab("Compare checkpoints", id="compare"):
                        with gr.Row():
                            other = gr.Dropdown(
                                model_choices, label="Compare with", value=compare_default
                            )
                            other_typed = gr.Textbox(label=typed_label)
                        other_status = gr.Markdown(elem_id="compare-checkpoint-status")
                        compare_btn = gr.Button("Compare on this clip and audio")
                        compare_summary = gr.Markdown(elem_id="compare-summary")
                        with gr.Row():
                            eval_a = gr.Markdown(elem_id="compare-eval-a")
                            eval_b = gr.Markdown(elem_id="compare-eval-b")
                        with gr.Row():
                            video_a = gr.Video(interactive=False, elem_id="compare-video-a")
                            video_b = gr.Video(interactive=False, elem_id="compare-video-b")
                        compare_second, compare_level = _second_and_level("compare")
                        compare_maps = _gallery("compare-maps", columns=7)
                        compare_legend = _legend("compare-legend")
                        compare_plot = gr.Plot(
                            label="Segmented area and agreement per second", elem_id="compare-plot"
                        )

        store = settings.store
        run_view = partial(run_outputs, store, overlay_video, heard)
        illusion_view = partial(illusion_outputs, store, illusion_videos)
        compare_view = partial(compare_outputs, store, video_a, video_b)
        run_outs = [overlay_video, heard, maps, legend, second, area, summary, run_state]
        illusion_outs = [
            *illusion_videos,
            illusion_maps,
            illusion_legend,
            illusion_second,
            illusion_table,
            illusion_plot,
            illusion_summary,
            illusion_state,
        ]
        compare_outs = [
            video_a,
            video_b,
            compare_maps,
            compare_legend,
            compare_second,
            compare_plot,
            compare_summary,
            eval_a,
            eval_b,
            compare_state,
        ]
        model_kw = dict(concurrency_id="model", concurrency_limit=settings.concurrency)
        audio_inputs = [audio_kind, audio_upload, audio_example]
        private = dict(queue=False, api_visibility="private")

        audio_kind.change(show_audio_inputs, audio_kind, [audio_upload, audio_example], **private)
        model.change(partial(describe_model, known), model, model_info, **private)
        model.change(  # the authors' models: downloaded and converted on first pick
            partial(on_pick, pool, settings.checkpoints),
            model,
            model_status,
            api_name="load_checkpoint",
            concurrency_id="load",
        )
        other.change(  # the same for the compared model: progress while it downloads
            partial(on_pick, pool, settings.checkpoints),
            other,
            other_status,
            api_name="load_compare_checkpoint",
            concurrency_id="load",
        )
        for button, tab in ((run_btn, "result"), (illusion_btn, "illusion")):  # show where
            button.click(_select_tab(tab), None, tabs, **private)
        run_btn.click(
            gpu(partial(on_run, pool, settings, run_view)),
            [video, *audio_inputs, model, model_typed, threshold, level, run_state],
            run_outs,
            api_name="run",
            **model_kw,
        )
        illusion_btn.click(
            gpu(partial(on_illusion, pool, settings, illusion_view)),
            [
                video,
                model,
                model_typed,
                threshold,
                negatives,
                probe_example,
                probe_upload,
                illusion_level,
                illusion_state,
            ],
            illusion_outs,
            api_name="probe_illusion",
            **model_kw,
        )
        compare_btn.click(
            gpu(partial(on_compare, pool, settings, compare_view)),
            [
                video,
                *audio_inputs,
                model,
                model_typed,
                other,
                other_typed,
                threshold,
                compare_level,
                compare_state,
            ],
            compare_outs,
            api_name="compare",
            **model_kw,
        )
        views = (
            (run_view, run_outs, run_state, second, level, "redraw"),
            (
                illusion_view,
                illusion_outs,
                illusion_state,
                illusion_second,
                illusion_level,
                "redraw_illusion",
            ),
            (
                compare_view,
                compare_outs,
                compare_state,
                compare_second,
                compare_level,
                "redraw_compare",
            ),
        )
        for view, outs, state, sec, lev, name in views:
            threshold.release(
                partial(redraw, store, view, len(outs)),
                [state, threshold, sec, lev],
                outs,
                api_name=name,
            )
        maps_views = (
            (run_state, second, level, [maps, legend], "maps", run_maps),
            (
                illusion_state,
                illusion_second,
                illusion_level,
                [illusion_maps, illusion_legend],
                "illusion_maps",
                illusion_maps_of,
            ),
            (
                compare_state,
                compare_second,
                compare_level,
                [compare_maps, compare_legend],
                "compare_maps",
                compare_maps_of,
            ),
        )
        for state, sec, lev, outs, name, fn in maps_views:
            for trigger in (sec.release, lev.change):
                trigger(
                    partial(on_maps, store, fn),
                    [state, threshold, sec, lev],
                    outs,
                    api_name=name,
                )
    demo.queue(default_concurrency_limit=settings.concurrency)
    return demo


def _second_and_level(prefix: str):
    with gr.Row():
        second = gr.Slider(0, 4, value=0, step=1, label="Second", elem_id=f"{prefix}-second")
        level = gr.Dropdown(
            list(zip(LEVEL_NAMES, range(4))),
            value=0,
            label="Feature level of the DAM and BCSM maps",
            elem_id=f"{prefix}-level",
        )
    return second, level


def _gallery(elem_id: str, columns: int) -> gr.Gallery:
    """A gallery of maps under a heading of its own: the gallery's label would lie over the
    first row's captions."""
    gr.Markdown(f"**{MAPS_LABEL}**", elem_id=f"{elem_id}-heading")
    return gr.Gallery(
        label=MAPS_LABEL,
        show_label=False,
        columns=columns,
        height="auto",
        object_fit="contain",
        allow_preview=True,
        elem_id=elem_id,
    )


def _legend(elem_id: str) -> gr.Image:
    return gr.Image(
        label="Colour scales (shared by every map of a kind)",
        interactive=False,
        elem_id=elem_id,
        buttons=[],
        height=220,
    )


# The event functions. build_demo binds their leading arguments (the pool, the settings, the
# store, the components whose block cache receives the files) with functools.partial; gradio
# passes the rest from the event's inputs.
