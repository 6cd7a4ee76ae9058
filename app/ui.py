"""The demo's layout: the intro, the input column and the three tabs (`app.tabs`), bound to the
event functions of `app.events` by `app.wiring`.

`build_demo(settings, pool)` only builds components and binds events: it loads no model and
opens no connection. Each event runs in its own
temporary folder, hands the files it made to gradio's cache (which `delete_cache` ages out) and
removes the folder, whatever happens; user errors become messages in the UI, with file names
only (never a server path). A session's `gr.State` holds only a key into the bounded
`ResultStore`, where its predictions wait for redraws.
"""

from __future__ import annotations

import gradio as gr

from app import tabs, wiring
from app.requests import model_card
from app.settings import DemoSettings, default_compare, infos
from app.state import PredictorPool
from selm.weights.release import OFFICIAL_PREFIX

CACHE_AGE = (1800, 3600)  # every 30 min, delete output files older than an hour

INTRO = """\
# SelM: which object is making the sound?
SelM segments the objects that **sound** in each second of a video. Upload a video or pick an
AVS-Synth example, choose what the model hears, and see the masks, the maps inside the model
(CLEVER's token assignment, DAM's attention, BCSM's channel norms) and the segmented area.
*Probe illusion* runs the clip with its own audio and with audio that should make nothing sound
(silence, noise, another clip's audio, a sound you upload): a model that listens segments
nothing then.
"""


def build_demo(settings: DemoSettings, pool: PredictorPool) -> gr.Blocks:
    """The Blocks app; `pool` gives predictors by checkpoint spec (loaded on first use)."""
    known = infos(settings)
    model_choices = [(known[label].label, label) for label in settings.checkpoints]
    typed_label = (
        "...or a checkpoint directory / HF repo id"
        if settings.allow_any_checkpoint
        else f"...or one of the authors' published checkpoints ({OFFICIAL_PREFIX}NAME)"
    )
    with gr.Blocks(title="SelM demo", delete_cache=CACHE_AGE, analytics_enabled=False) as demo:
        states = [gr.State(None) for _ in range(3)]  # per session: a key into settings.store
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                card = model_card(known[model_choices[0][1]])
                inputs = tabs.input_column(settings.examples, model_choices, card, typed_label)
            with gr.Column(scale=2):
                with gr.Tabs() as tab_set:
                    with gr.Tab("Result", id="result"):
                        result = tabs.result_tab()
                    with gr.Tab("Illusion probe", id="illusion"):
                        illusion = tabs.illusion_tab(settings.examples)
                    with gr.Tab("Compare checkpoints", id="compare"):
                        default = default_compare(settings)
                        compare = tabs.compare_tab(model_choices, default, typed_label)
        layout = wiring.Layout(inputs, tab_set, result, illusion, compare, *states)
        wiring.bind(layout, settings, pool, known)
    demo.queue(default_concurrency_limit=settings.concurrency)
    return demo
