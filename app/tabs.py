"""The demo's layout, piece by piece: the input column and the three result tabs (Result,
Illusion probe, Compare checkpoints). Each function builds its components inside the current
Blocks context and returns them by name; `app.wiring` binds them to `app.events`."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from app.actions import AUDIO_SOURCES, NEGATIVES
from app.rendering import LEVEL_NAMES, MAPS_LABEL

MAX_CONDITIONS = 1 + len(NEGATIVES)  # videos in the illusion tab


@dataclass
class Inputs:
    """The input column: the clip, what the model hears, the checkpoint, the threshold."""

    video: gr.Video
    audio_kind: gr.Radio
    audio_upload: gr.Audio
    audio_example: gr.Dropdown
    model: gr.Dropdown
    model_info: gr.Markdown
    model_status: gr.Markdown
    model_typed: gr.Textbox
    threshold: gr.Slider
    run: gr.Button
    illusion: gr.Button

    @property
    def audio(self) -> list:
        return [self.audio_kind, self.audio_upload, self.audio_example]


def input_column(examples, model_choices, model_card: str, typed_label: str) -> Inputs:
    """`examples`: the Example clips; `model_choices`: (label, value) pairs, the default first."""
    video = gr.Video(
        label="Video (its audio track is used)", sources=["upload"], elem_id="video-input"
    )
    if examples:
        gr.Examples(
            examples=[[str(ex.path)] for ex in examples],
            inputs=[video],
            example_labels=[ex.label for ex in examples],
            label="AVS-Synth examples (category = the shape drawn)",
            cache_examples=False,
        )
    example_choices = [(ex.label, ex.name) for ex in examples]
    audio_kind = gr.Radio(
        list(AUDIO_SOURCES.items()), value="original", label="What the model hears"
    )
    audio_upload = gr.Audio(label="Audio file", type="filepath", sources=["upload"], visible=False)
    audio_example = gr.Dropdown(
        example_choices,
        label="Example whose audio is used",
        value=example_choices[0][1] if example_choices else None,
        visible=False,
    )
    model = gr.Dropdown(
        model_choices, value=model_choices[0][1], label="Checkpoint", elem_id="model"
    )
    model_info = gr.Markdown(model_card, elem_id="model-info")
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
        run = gr.Button("Run", variant="primary", elem_id="run-button")
        illusion = gr.Button("Probe illusion", elem_id="illusion-button")
    return Inputs(
        video, audio_kind, audio_upload, audio_example, model, model_info, model_status,
        model_typed, threshold, run, illusion,
    )  # fmt: skip


@dataclass
class ResultTab:
    summary: gr.Markdown
    video: gr.Video
    heard: gr.Audio
    second: gr.Slider
    level: gr.Dropdown
    maps: gr.Gallery
    legend: gr.Image
    plot: gr.Plot


def result_tab() -> ResultTab:
    summary = gr.Markdown(elem_id="run-summary")
    with gr.Row():
        video = gr.Video(
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
    plot = gr.Plot(label="Segmented area per second", elem_id="area-plot")
    return ResultTab(summary, video, heard, second, level, maps, legend, plot)


@dataclass
class IllusionTab:
    negatives: gr.CheckboxGroup
    example: gr.Dropdown
    upload: gr.Audio
    summary: gr.Markdown
    table: gr.Dataframe
    plot: gr.Plot
    second: gr.Slider
    level: gr.Dropdown
    maps: gr.Gallery
    legend: gr.Image
    videos: list[gr.Video]


def illusion_tab(examples) -> IllusionTab:
    example_choices = [(ex.label, ex.name) for ex in examples]
    with gr.Row():
        negatives = gr.CheckboxGroup(
            list(NEGATIVES),
            value=["silent", "white noise", "another clip's audio"],
            label="Negative audio to try (each is a run of the model)",
            elem_id="negatives",
        )
        example = gr.Dropdown(
            example_choices,
            label="Another clip's audio: which clip",
            value=example_choices[-1][1] if example_choices else None,
        )
        upload = gr.Audio(label="An uploaded sound", type="filepath", sources=["upload"])
    summary = gr.Markdown(elem_id="illusion-summary")
    table = gr.Dataframe(
        label="Segmented area per second and audio (% of the frame)",
        interactive=False,
        elem_id="illusion-table",
    )
    plot = gr.Plot(label="Segmented area per second, per audio")
    second, level = _second_and_level("illusion")
    maps = _gallery("illusion-maps", columns=7)
    legend = _legend("illusion-legend")
    with gr.Row():
        videos = [
            gr.Video(interactive=False, visible=False, elem_id=f"illusion-video-{i}", min_width=160)
            for i in range(MAX_CONDITIONS)
        ]
    return IllusionTab(
        negatives, example, upload, summary, table, plot, second, level, maps, legend, videos
    )


@dataclass
class CompareTab:
    other: gr.Dropdown
    other_typed: gr.Textbox
    other_status: gr.Markdown
    button: gr.Button
    summary: gr.Markdown
    eval_a: gr.Markdown
    eval_b: gr.Markdown
    video_a: gr.Video
    video_b: gr.Video
    second: gr.Slider
    level: gr.Dropdown
    maps: gr.Gallery
    legend: gr.Image
    plot: gr.Plot


def compare_tab(model_choices, default: str, typed_label: str) -> CompareTab:
    with gr.Row():
        other = gr.Dropdown(model_choices, label="Compare with", value=default)
        other_typed = gr.Textbox(label=typed_label)
    other_status = gr.Markdown(elem_id="compare-checkpoint-status")
    button = gr.Button("Compare on this clip and audio")
    summary = gr.Markdown(elem_id="compare-summary")
    with gr.Row():
        eval_a = gr.Markdown(elem_id="compare-eval-a")
        eval_b = gr.Markdown(elem_id="compare-eval-b")
    with gr.Row():
        video_a = gr.Video(interactive=False, elem_id="compare-video-a")
        video_b = gr.Video(interactive=False, elem_id="compare-video-b")
    second, level = _second_and_level("compare")
    maps = _gallery("compare-maps", columns=7)
    legend = _legend("compare-legend")
    plot = gr.Plot(label="Segmented area and agreement per second", elem_id="compare-plot")
    return CompareTab(
        other, other_typed, other_status, button, summary, eval_a, eval_b, video_a, video_b,
        second, level, maps, legend, plot,
    )  # fmt: skip


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
