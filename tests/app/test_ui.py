"""app.ui and app.py: building loads nothing; events clean up, report errors, keep users apart."""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
import types
from pathlib import Path

import gradio as gr
import pytest

from app.state import PredictorPool
from app.ui import DemoSettings, build_demo, user_errors
from app.validation import DemoError, Limits
from selm.predictor import Predictor

RUN_ARGS = dict(
    kind="original", upload=None, example=None, picked="fake", typed="", threshold=0.5, level=0
)


@pytest.fixture
def isolated_tmp(tmp_path, monkeypatch):
    """Per-request folders go to tmp/work, gradio's cache to tmp/cache."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))
    return tmp_path


def make_demo(kit, predictors=None, loader=None, **settings):
    pool = PredictorPool(
        loader or Predictor.from_pretrained,
        pinned=predictors or {"fake": Predictor(kit.FakeSelM())},
    )
    return build_demo(
        DemoSettings(checkpoints={"fake": "fake", "other": "other"}, **settings), pool
    )


def event(demo, api_name):
    return next(f.fn for f in demo.fns.values() if f.api_name == api_name)


def run_event(demo, video, **overrides):
    args = {**RUN_ARGS, **overrides}
    return event(demo, "run")(
        str(video),
        args["kind"],
        args["upload"],
        args["example"],
        args["picked"],
        args["typed"],
        args["threshold"],
        args["level"],
    )


def test_building_loads_no_model_and_opens_no_connection(monkeypatch, kit):
    def refuse(*args, **kwargs):
        raise AssertionError("building the UI touched the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)

    def loader(spec):
        raise AssertionError(f"building the UI loaded {spec}")

    demo = make_demo(kit, predictors={}, loader=loader)
    names = {f.api_name for f in demo.fns.values()}
    assert {"run", "probe_illusion", "compare", "redraw"} <= names
    model_runs = [
        f for f in demo.fns.values() if f.api_name in ("run", "probe_illusion", "compare")
    ]
    assert all(f.concurrency_id == "model" and f.concurrency_limit == 1 for f in model_runs)


def test_run_event_outputs_and_cleans_its_folder(isolated_tmp, media_dir, kit):
    demo = make_demo(kit)
    video, audio, maps, slider, plot, summary, state = run_event(demo, media_dir / "tone.mp4")
    cache = isolated_tmp / "cache"
    assert Path(video).is_file() and Path(video).is_relative_to(cache)
    assert Path(audio).is_file() and Path(audio).is_relative_to(cache)
    assert len(maps) == 8 and slider.maximum == 2 and "original" in summary
    assert list((isolated_tmp / "work").iterdir()) == []  # the request folder is gone
    assert state.frames.shape[0] == 3


@pytest.mark.parametrize(
    "bad, match",
    [
        ("notes.txt", "not a video the demo can read"),
        ("no_audio.mp4", "no audio track"),
    ],
)
def test_bad_input_is_a_message_and_leaves_nothing(isolated_tmp, media_dir, bad, match, kit):
    if bad == "notes.txt":
        (isolated_tmp / bad).write_text("hello\n" * 50)
        video = isolated_tmp / bad
    else:
        video = media_dir / bad
    demo = make_demo(kit)
    with pytest.raises(gr.Error, match=match):
        run_event(demo, video)
    assert list((isolated_tmp / "work").iterdir()) == []


def test_a_directory_that_is_not_a_checkpoint(isolated_tmp, media_dir, kit):
    empty = isolated_tmp / "not_a_checkpoint"
    empty.mkdir()
    demo = make_demo(kit)
    with pytest.raises(gr.Error, match="not a SelM checkpoint directory.*config.json"):
        run_event(demo, media_dir / "tone.mp4", typed=str(empty))
    assert list((isolated_tmp / "work").iterdir()) == []


def test_threshold_redraws_without_the_model(isolated_tmp, media_dir, kit):
    predictor = Predictor(kit.FakeSelM())
    demo = make_demo(kit, predictors={"fake": predictor})
    *_, plot, _, state = run_event(demo, media_dir / "tone.mp4")
    calls = predictor.model.calls
    redraw = event(demo, "redraw")
    _, _, _, _, plot_high, _, _ = redraw(state, 0.95, 0)
    assert predictor.model.calls == calls
    assert plot.data[0].y[0] == pytest.approx(kit.reference_masks(0.5).mean(), abs=0.02)
    assert plot_high.data[0].y[0] == pytest.approx(kit.reference_masks(0.95).mean(), abs=0.02)
    assert redraw(None, 0.5, 0) == (gr.skip(),) * 7  # nothing run yet: nothing to redraw
    maps = event(demo, "maps")(state, 0.5, 2, 3)
    assert maps[0][1].startswith("frame, second 2")
    assert list((isolated_tmp / "work").iterdir()) == []


def test_illusion_and_compare_events(isolated_tmp, media_dir, kit):
    demo = make_demo(
        kit,
        predictors={
            "fake": Predictor(kit.FakeSelM()),
            "other": Predictor(kit.FakeSelM(listens=False)),
        },
    )
    _, _, plot, summary, _ = event(demo, "probe_illusion")(
        str(media_dir / "tone.mp4"), "fake", "", 0.5
    )
    assert "Illusion score 0.000" in summary
    *_, plot, summary, state = event(demo, "compare")(
        str(media_dir / "tone.mp4"), "mute", None, None, "fake", "", "other", "", 0.5
    )
    assert state[2] == ("fake", "other") and "fake" in summary
    assert max(plot.data[1].y) > 0.2 and max(plot.data[0].y) == 0


def test_concurrent_sessions_do_not_mix(isolated_tmp, media_dir, kit):
    demo = make_demo(kit)
    results = {}

    def session(kind):
        results[kind] = run_event(demo, media_dir / "tone.mp4", kind=kind)

    threads = [threading.Thread(target=session, args=(k,)) for k in ("original", "mute")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    heard, muted = results["original"][-1], results["mute"][-1]
    assert heard.audio_label == "original" and heard.masks().any()
    assert muted.audio_label == "mute" and not muted.masks().any()
    assert results["original"][0] != results["mute"][0]  # different overlay videos


def test_user_errors_become_messages():
    with pytest.raises(gr.Error) as caught:
        with user_errors():
            raise DemoError("clip too long")
    assert caught.value.message == "clip too long"
    with pytest.raises(gr.Error, match=r"Something went wrong.*KeyError"):
        with user_errors():
            raise KeyError("oops")


def test_flags_and_space_binding(monkeypatch, app_main):
    for name in ("SPACE_ID", "GRADIO_SERVER_NAME", "PORT", "GRADIO_SERVER_PORT"):
        monkeypatch.delenv(name, raising=False)
    args = app_main.parse_args([])
    assert (args.host, args.port, args.share, args.max_seconds) == ("127.0.0.1", 7860, False, 60)
    assert args.checkpoint is None and args.examples_dir == "assets/examples"
    monkeypatch.setenv("SPACE_ID", "user/selm")
    monkeypatch.setenv("PORT", "8080")
    assert (app_main.parse_args([]).host, app_main.parse_args([]).port) == ("0.0.0.0", 8080)
    monkeypatch.setenv("GRADIO_SERVER_NAME", "10.0.0.2")
    args = app_main.parse_args(["--checkpoint", "a", "--checkpoint", "b", "--port", "9000"])
    assert (args.host, args.port, args.checkpoint) == ("10.0.0.2", 9000, ["a", "b"])


def test_gpu_decorator_only_with_the_spaces_package(monkeypatch, app_main):
    monkeypatch.setitem(sys.modules, "spaces", None)  # import fails
    assert app_main.gpu_decorator() is None
    fake = types.ModuleType("spaces")
    fake.GPU = lambda duration: ("decorator", duration)
    monkeypatch.setitem(sys.modules, "spaces", fake)
    assert app_main.gpu_decorator() == ("decorator", 120)


def test_limits_reach_the_handlers(isolated_tmp, media_dir, kit):
    demo = make_demo(kit, limits=Limits(max_seconds=5))
    with pytest.raises(gr.Error, match="up to 5 s"):
        run_event(demo, media_dir / "seven_seconds.mp4")


def test_event_functions_are_plain_module_functions(isolated_tmp):
    """redraw / on_maps work without a Blocks: nothing stored -> skip; else a request folder
    that exists during the call and is gone after it."""
    from app import ui

    assert ui.redraw(None, 3, None, 0.5) == (gr.skip(),) * 3
    assert ui.on_maps(None, 0.5, 0, 0) == gr.skip()
    seen = []

    def outputs(result, threshold, extra, workdir):
        seen.append((result, threshold, extra, workdir.is_dir()))
        return workdir

    workdir = ui.redraw(outputs, 2, "stored", 0.25, "level")
    assert seen == [("stored", 0.25, "level", True)] and not workdir.exists()
    assert ui.show_audio_inputs("upload")[0].visible is True
    assert ui.show_audio_inputs("example")[0].visible is False
