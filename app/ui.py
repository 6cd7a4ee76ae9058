"""The demo's layout and its wiring to `app.handlers`.

`build_demo(settings, pool)` only builds components: it loads no model and opens no connection.
Each event runs in its own temporary folder, hands the files it made to gradio's cache (which
`delete_cache` ages out) and removes the folder, whatever happens; user errors become messages
in the UI, with file names only (never a server path). A session's `gr.State` holds only a key
into the bounded `ResultStore`, where its predictions wait for redraws.
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
from app.examples import OFFICIAL_PREFIX, CheckpointInfo, Example, checkpoint_info
from app.rendering import LEVEL_NAMES, MAPS_LABEL, gallery
from app.state import PredictorPool, ResultStore
from app.validation import DemoError, Limits, scrub_paths
from selm.state_dict import CheckpointError, DiskFullError

log = logging.getLogger("selm.demo")
CACHE_AGE = (1800, 3600)  # every 30 min, delete output files older than an hour
PROGRESS = gr.Progress()  # the marker gradio looks for; each request gets its own tracker
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


def infos(settings: DemoSettings) -> dict[str, CheckpointInfo]:
    return {label: checkpoint_info(spec, label) for label, spec in settings.checkpoints.items()}


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


def build_demo(settings: DemoSettings, pool: PredictorPool) -> gr.Blocks:
    """The Blocks app; `pool` gives predictors by checkpoint spec (loaded on first use)."""
    gpu = settings.gpu or (lambda fn: fn)
    known = infos(settings)
    model_choices = [(known[label].label, label) for label in settings.checkpoints]
    # compare with the last of the local checkpoints: the authors' ones download on first use
    local = [
        label for label, s in settings.checkpoints.items() if not s.startswith(OFFICIAL_PREFIX)
    ]
    compare_default = (local or list(settings.checkpoints))[-1]
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
    progress=None,
):
    """The Result tab's outputs for a (display-size) prediction; its files go to the caches
    of the `overlay_video` and `heard` components; the prediction goes to `store`."""
    pred = result
    view = handlers.show_run(
        pred,
        threshold=threshold_value,
        frame=int(second_value),
        level=int(level_value),
        workdir=workdir,
        note=note,
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
        pred = handlers.run_model(
            predictor,
            video_path,
            audio_request(kind, upload, example, settings),
            progress=_span(report, 0.02, 0.58),
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
    progress=None,
):
    view = handlers.show_illusion(
        result,
        threshold=threshold_value,
        workdir=workdir,
        second=int(second_value),
        level=int(level_value),
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
        preds = handlers.probe_illusion(
            predictor,
            video_path,
            requests,
            progress=_span(report, 0.02, 0.58),
            **_run_kw(settings),
        )
        return outputs(
            preds,
            threshold_value,
            0,
            level_value,
            workdir,
            key=key,
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
        pred_a, pred_b = handlers.compare_checkpoints(
            predictors,
            video_path,
            audio_request(kind, upload, example, settings),
            progress=_span(report, 0.02, 0.58),
            **_run_kw(settings),
        )
        return outputs(
            (pred_a, pred_b, names, cards),
            threshold_value,
            0,
            level_value,
            workdir,
            key=key,
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
    view_maps = handlers.frame_maps(result, int(second_value), int(level_value), threshold_value)
    return gallery(view_maps), handlers.map_legend([result], int(level_value))


def illusion_maps_of(result, threshold_value, second_value, level_value):
    scales = handlers.map_scales(result.values())
    tiles, columns = handlers.condition_rows(
        result, int(second_value), int(level_value), threshold_value, scales
    )
    legend = handlers.map_legend(list(result.values()), int(level_value), scales)
    return gr.Gallery(value=gallery(tiles), columns=columns), legend


def compare_maps_of(result, threshold_value, second_value, level_value):
    pred_a, pred_b, names, _ = result
    preds = {names[0]: pred_a, names[1]: pred_b}
    scales = handlers.map_scales(preds.values())
    tiles, columns = handlers.condition_rows(
        preds, int(second_value), int(level_value), threshold_value, scales
    )
    legend = handlers.map_legend([pred_a, pred_b], int(level_value), scales)
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
