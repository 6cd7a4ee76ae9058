"""The SelM Gradio demo: `handlers` (plain functions), `rendering` (what is shown), `ui` (layout).

`python app.py` at the repository root parses flags, loads the model and launches `ui.build_demo`.
"""
