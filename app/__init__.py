"""The SelM Gradio demo. `python app.py` at the repository root parses flags, loads the default
model and launches `ui.build_demo`.

    ui        the layout: intro, input column, three tabs (tabs), bound by wiring
    events    what each button, slider and picker does; requests: a request's inputs and
              errors; outputs: what the tabs' components receive
    actions   the model runs (run, illusion probe, compare) as plain functions; views: what
              each tab shows of them; rendering: plots, tables, captions
    state     what is kept between requests (predictors, sessions' results, the cache folder,
              the requests in flight and their folders);
              settings: what the demo is built with; validation: checks on what visitors send
    examples  the example clips and checkpoints on offer; official: the authors' models
"""
