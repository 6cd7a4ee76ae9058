"""The demo's components bound to its event functions (`app.events`), with `functools.partial`
for what the app holds (the pool, the settings, the store, the components whose block cache
receives the files); gradio passes the rest from each event's inputs.

Model runs share one queue (`concurrency_id="model"`, `settings.concurrency` at a time);
checkpoint downloads another; showing and hiding inputs skips the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import gradio as gr

from app import events, outputs
from app.settings import DemoSettings
from app.state import PredictorPool
from app.tabs import CompareTab, IllusionTab, Inputs, ResultTab


@dataclass
class Layout:
    """Everything `app.ui.build_demo` laid out, by name."""

    inputs: Inputs
    tabs: gr.Tabs
    result: ResultTab
    illusion: IllusionTab
    compare: CompareTab
    run_state: gr.State
    illusion_state: gr.State
    compare_state: gr.State

    def run_outputs(self) -> list:
        r = self.result
        return [r.video, r.heard, r.maps, r.legend, r.second, r.plot, r.summary, self.run_state]

    def illusion_outputs(self) -> list:
        i = self.illusion
        return [
            *i.videos, i.maps, i.legend, i.second, i.table, i.plot, i.summary, self.illusion_state
        ]  # fmt: skip

    def compare_outputs(self) -> list:
        c = self.compare
        return [
            c.video_a, c.video_b, c.maps, c.legend, c.second, c.plot, c.summary, c.eval_a,
            c.eval_b, self.compare_state,
        ]  # fmt: skip


PRIVATE = dict(queue=False, api_visibility="private")  # UI-only events: no queue, no API


def bind(layout: Layout, settings: DemoSettings, pool: PredictorPool, known: dict) -> None:
    """Every event of the demo; `known`: {checkpoint label: CheckpointInfo}."""
    _bind_pickers(layout, settings, pool, known)
    views = _bind_runs(layout, settings, pool)
    _bind_redraws(layout, settings, views)


def _bind_pickers(layout: Layout, settings: DemoSettings, pool: PredictorPool, known) -> None:
    inputs, compare = layout.inputs, layout.compare
    inputs.audio_kind.change(
        events.show_audio_inputs,
        inputs.audio_kind,
        [inputs.audio_upload, inputs.audio_example],
        **PRIVATE,
    )
    inputs.model.change(
        partial(events.describe_model, known), inputs.model, inputs.model_info, **PRIVATE
    )
    pick = partial(events.on_pick, pool, settings.checkpoints)
    # the authors' models: downloaded and converted on first pick, with progress
    inputs.model.change(
        pick, inputs.model, inputs.model_status, api_name="load_checkpoint", concurrency_id="load"
    )
    compare.other.change(
        pick,
        compare.other,
        compare.other_status,
        api_name="load_compare_checkpoint",
        concurrency_id="load",
    )
    for button, tab in ((inputs.run, "result"), (inputs.illusion, "illusion")):  # show where
        button.click(events.select_tab(tab), None, layout.tabs, **PRIVATE)


def _bind_runs(layout: Layout, settings: DemoSettings, pool: PredictorPool) -> tuple:
    """The three model runs -> their output functions (for the redraws)."""
    inputs, illusion, compare, store = (
        layout.inputs,
        layout.illusion,
        layout.compare,
        settings.store,
    )
    gpu = settings.gpu or (lambda fn: fn)
    model_kw = dict(concurrency_id="model", concurrency_limit=settings.concurrency)
    run_view = partial(outputs.run_outputs, store, layout.result.video, layout.result.heard)
    illusion_view = partial(outputs.illusion_outputs, store, illusion.videos)
    compare_view = partial(outputs.compare_outputs, store, compare.video_a, compare.video_b)
    common = [inputs.video, *inputs.audio, inputs.model, inputs.model_typed, inputs.threshold]
    inputs.run.click(
        gpu(partial(events.on_run, pool, settings, run_view)),
        [*common, layout.result.level, layout.run_state],
        layout.run_outputs(),
        api_name="run",
        **model_kw,
    )
    inputs.illusion.click(
        gpu(partial(events.on_illusion, pool, settings, illusion_view)),
        [inputs.video, inputs.model, inputs.model_typed, inputs.threshold, illusion.negatives]
        + [illusion.example, illusion.upload, illusion.level, layout.illusion_state],
        layout.illusion_outputs(),
        api_name="probe_illusion",
        **model_kw,
    )
    compare.button.click(
        gpu(partial(events.on_compare, pool, settings, compare_view)),
        [*common[:-1], compare.other, compare.other_typed, inputs.threshold]
        + [compare.level, layout.compare_state],
        layout.compare_outputs(),
        api_name="compare",
        **model_kw,
    )
    return run_view, illusion_view, compare_view


def _bind_redraws(layout: Layout, settings: DemoSettings, views: tuple) -> None:
    """A new threshold redraws every tab; a new second or level redraws its maps; neither runs
    the model (the session's results wait in the store)."""
    store, threshold = settings.store, layout.inputs.threshold
    tabs = [  # (outputs function, outputs, state, tab, redraw's name, maps' name, maps function)
        (views[0], layout.run_outputs(), layout.run_state, layout.result)
        + ("redraw", "maps", outputs.run_maps),
        (views[1], layout.illusion_outputs(), layout.illusion_state, layout.illusion)
        + ("redraw_illusion", "illusion_maps", outputs.illusion_maps_of),
        (views[2], layout.compare_outputs(), layout.compare_state, layout.compare)
        + ("redraw_compare", "compare_maps", outputs.compare_maps_of),
    ]
    for view, outs, state, tab, redraw_name, _, _ in tabs:
        threshold.release(
            partial(events.redraw, settings, view, len(outs)),
            [state, threshold, tab.second, tab.level],
            outs,
            api_name=redraw_name,
        )
    for _, _, state, tab, _, maps_name, maps_of in tabs:
        for trigger in (tab.second.release, tab.level.change):
            trigger(
                partial(events.on_maps, store, maps_of),
                [state, threshold, tab.second, tab.level],
                [tab.maps, tab.legend],
                api_name=maps_name,
            )
