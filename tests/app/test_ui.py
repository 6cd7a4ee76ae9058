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

from app import events, outputs, requests
from app.examples import Example
from app.requests import user_errors
from app.settings import DemoSettings, infos
from app.state import PredictorPool, ResultStore
from app.ui import build_demo
from app.validation import DemoError, Limits
from selm.inference.predictor import Predictor

RUN_ARGS = dict(
    kind="original",
    upload=None,
    example=None,
    picked="fake",
    typed="",
    threshold=0.5,
    level=0,
    key=None,
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
    settings.setdefault("store", ResultStore())
    demo = build_demo(
        DemoSettings(checkpoints={"fake": "fake", "other": "other"}, **settings), pool
    )
    demo.store = settings["store"]  # for the tests: where the sessions' results are kept
    return demo


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
        args["key"],
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
    video, audio, maps, legend, slider, plot, summary, key = run_event(demo, media_dir / "tone.mp4")
    cache = isolated_tmp / "cache"
    assert Path(video).is_file() and Path(video).is_relative_to(cache)
    assert Path(audio).is_file() and Path(audio).is_relative_to(cache)
    assert len(maps) == 8 and slider.maximum == 2 and "its own audio" in summary
    assert all(image.shape[0] > kit.height for image in maps)  # captions drawn above
    assert legend.ndim == 3
    assert list((isolated_tmp / "work").iterdir()) == []  # the request folder is gone
    assert isinstance(key, str) and demo.store.get(key).frames.shape[0] == 3
    again = run_event(demo, media_dir / "tone.mp4", key=key)[-1]
    assert again == key and len(demo.store) == 1  # a session's new run replaces its old one


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
    with pytest.raises(gr.Error, match=match) as err:
        run_event(demo, video)
    assert str(isolated_tmp) not in err.value.message and str(media_dir) not in err.value.message
    assert list((isolated_tmp / "work").iterdir()) == []


def test_a_directory_that_is_not_a_checkpoint(isolated_tmp, media_dir, kit):
    empty = isolated_tmp / "not_a_checkpoint"
    empty.mkdir()
    demo = make_demo(kit, allow_any_checkpoint=True)
    with pytest.raises(gr.Error, match="not a SelM checkpoint directory.*config.json") as err:
        run_event(demo, media_dir / "tone.mp4", typed=str(empty))
    assert str(isolated_tmp) not in err.value.message  # the name only, never the server path
    assert list((isolated_tmp / "work").iterdir()) == []


def test_public_mode_refuses_typed_paths_without_touching_them(isolated_tmp, media_dir, kit):
    def loader(spec):
        raise AssertionError(f"public mode tried to load {spec}")

    demo = make_demo(kit, loader=loader)
    for typed in ("../", str(isolated_tmp), "someone/repo"):
        with pytest.raises(gr.Error, match="only its listed checkpoints") as err:
            run_event(demo, media_dir / "tone.mp4", typed=typed)
        assert str(isolated_tmp) not in err.value.message
    assert run_event(demo, media_dir / "tone.mp4", typed="fake")[-1]  # a listed one loads


def test_threshold_redraws_without_the_model_and_keeps_the_second(isolated_tmp, media_dir, kit):
    predictor = Predictor(kit.FakeSelM())
    demo = make_demo(kit, predictors={"fake": predictor})
    *_, plot, _, key = run_event(demo, media_dir / "tone.mp4")
    calls = predictor.model.calls
    redraw = event(demo, "redraw")
    _, _, maps, _, slider, plot_high, _, _ = redraw(key, 0.95, 2, 0)
    assert predictor.model.calls == calls
    assert slider.value == 2  # moving the threshold keeps the second shown
    assert plot.data[0].y[0] == pytest.approx(kit.reference_masks(0.5).mean(), abs=0.02)
    assert plot_high.data[0].y[0] == pytest.approx(kit.reference_masks(0.95).mean(), abs=0.02)
    assert redraw(None, 0.5, 0, 0) == (gr.skip(),) * 8  # nothing run yet: nothing to redraw
    maps, legend = event(demo, "maps")(key, 0.5, 2, 3)
    assert len(maps) == 8 and legend.ndim == 3
    assert list((isolated_tmp / "work").iterdir()) == []


def test_illusion_and_compare_events(isolated_tmp, media_dir, kit):
    examples = [
        Example("tone.mp4", media_dir / "tone.mp4", "a tone"),
        Example("silent.mp4", media_dir / "silent.mp4", "silence"),
    ]
    demo = make_demo(
        kit,
        predictors={
            "fake": Predictor(kit.FakeSelM()),
            "other": Predictor(kit.FakeSelM(listens=False)),
        },
        examples=examples,
    )
    out = event(demo, "probe_illusion")(
        str(media_dir / "tone.mp4"),
        "fake",
        "",
        0.5,
        ["silent", "white noise", "another clip's audio"],
        "tone.mp4",  # the clip itself: another example's audio is used instead
        None,
        0,
        None,
    )
    videos, (maps, legend, slider, table, plot, summary, key) = out[:5], out[5:]
    assert [v.visible for v in videos] == [True, True, True, True, False]
    assert [v.label.split(":")[0] for v in videos[:4]] == [
        "original",
        "silent",
        "white noise",
        "another clip's audio",
    ]
    assert videos[3].label == "another clip's audio: silent.mp4"
    assert len(table.value["data"]) == 3 and len(table.value["headers"]) == 5
    assert len(maps.value) == 4 * 7 and maps.columns == 7  # a row of 7 maps per condition
    assert legend.ndim == 3 and slider.maximum == 2
    assert "**silent**" in summary and "**0.000**" in summary
    stored = demo.store.get(key)
    assert stored["another clip's audio"].audio_label == "silent.mp4"
    compared = event(demo, "compare")(
        str(media_dir / "tone.mp4"), "mute", None, None, "fake", "", "other", "", 0.5, 0, None
    )
    video_a, video_b, maps, _, _, plot, summary, eval_a, eval_b, key = compared
    assert (video_a.label, video_b.label) == ("fake", "other") and len(maps.value) == 14
    assert demo.store.get(key)[2] == ("fake", "other") and "fake" in summary
    assert max(plot.data[1].y) > 0.2 and max(plot.data[0].y) == 0
    assert "no evaluation recorded" in eval_a and "no evaluation recorded" in eval_b


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
    heard = demo.store.get(results["original"][-1])
    muted = demo.store.get(results["mute"][-1])
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
    with pytest.raises(gr.Error) as caught:
        with user_errors():
            raise DemoError("Could not load '/srv/app/runs/x/model.safetensors': truncated")
    assert caught.value.message == "Could not load 'model.safetensors': truncated"


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


def test_limits_reach_the_actions(isolated_tmp, media_dir, kit):
    demo = make_demo(kit, limits=Limits(max_seconds=5))
    with pytest.raises(gr.Error, match="up to 5 s"):
        run_event(demo, media_dir / "seven_seconds.mp4")


def test_event_functions_are_plain_module_functions(isolated_tmp):
    """redraw / on_maps work without a Blocks: nothing stored -> skip; else a request folder
    under the cache folder that exists during the call and is gone after it."""

    store = ResultStore()
    cache = isolated_tmp / "app-cache" / "requests"
    settings = DemoSettings(checkpoints={}, store=store, cache_dir=cache)
    assert events.redraw(settings, None, 3, None, 0.5) == (gr.skip(),) * 3
    assert events.on_maps(store, outputs.run_maps, None, 0.5, 0, 0) == (gr.skip(), gr.skip())
    seen = []

    def draw(result, threshold, extra, workdir, key):
        seen.append((result, threshold, extra, workdir.is_dir(), key))
        return workdir

    key = store.put("stored")
    workdir = events.redraw(settings, draw, 2, key, 0.25, "level")
    assert seen == [("stored", 0.25, "level", True, key)] and not workdir.exists()
    assert workdir.is_relative_to(cache)  # never the system's temp folder
    assert events.show_audio_inputs("upload")[0].visible is True
    assert events.show_audio_inputs("example")[0].visible is False


def test_a_synthetic_model_on_a_real_upload_says_so(tmp_path):
    import json

    ckpt = tmp_path / "selm-synth"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"config": {"input_size": 96}}))
    examples = [Example("synth_multi.mp4", tmp_path / "synth_multi.mp4", "shapes")]
    settings = DemoSettings(checkpoints={"selm-synth": str(ckpt)}, examples=examples)
    note = requests.model_note(settings, str(ckpt), "/tmp/gradio/abc/my_dog.mp4")
    assert "trained only on AVS-Synth (synthetic shapes) at 96 px" in note
    assert "never seen one" in note and "python -m selm.convert" in note
    assert requests.model_note(settings, str(ckpt), "/tmp/gradio/abc/synth_multi.mp4") == ""
    official = DemoSettings(
        checkpoints={"selm-synth": str(ckpt), "official:s4_r50": "official:s4_r50"},
        examples=examples,
    )
    assert "official:s4_r50" in requests.model_note(official, str(ckpt), "my_dog.mp4")
    assert requests.model_card(infos(settings)["selm-synth"]).endswith("its masks mean nothing.")


# --- app.py: one cache folder per instance, start-up errors in one line -----------------------


def test_each_port_has_its_own_cache_folder(monkeypatch, app_main):
    for name in ("SPACE_ID", "PORT", "GRADIO_SERVER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert Path(app_main.parse_args([]).cache_dir).name == "selm-demo-7860"
    assert Path(app_main.parse_args(["--port", "7861"]).cache_dir).name == "selm-demo-7861"
    assert app_main.parse_args(["--cache-dir", "/x/y"]).cache_dir == "/x/y"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--max-seconds", "nan"], "--max-seconds: 'nan': give a number above 0"),
        (["--max-pixels", "0"], "--max-pixels: '0': give a number above 0"),
        (["--session-ttl", "-5"], "--session-ttl: '-5': give a number above 0"),
        (["--concurrency", "two"], "--concurrency: 'two' is not a number"),
        (["--max-side", "4"], "--max-side=4: give a whole number of pixels from 16"),
    ],
)
def test_bad_flags_are_one_line(capsys, app_main, flags, message):
    with pytest.raises(SystemExit) as info:
        app_main.parse_args(flags)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_start_up_errors_are_one_line_and_load_nothing(tmp_path, capsys, monkeypatch, app_main):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))  # main() sets it
    monkeypatch.setattr(Predictor, "from_pretrained", lambda *a, **k: pytest.fail("loaded"))

    def start(*flags) -> str:
        with pytest.raises(SystemExit) as info:
            app_main.main(["--no-warmup", "--no-official", *flags])
        assert info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        return err

    with socket.socket() as busy:  # another server on the port
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        err = start("--port", str(port), "--cache-dir", str(tmp_path / "a"))
    assert f"cannot serve on 127.0.0.1:{port}" in err and "give --port" in err
    assert not (tmp_path / "a").exists()  # refused before the cache folder is touched
    (tmp_path / "file").write_text("mine")
    err = start("--port", str(port), "--cache-dir", str(tmp_path / "file"))
    assert f"--cache-dir {tmp_path / 'file'} is a file, not a folder" in err
    err = start("--port", str(port), "--cache-dir", str(tmp_path / "b"), "--device", "tpu")
    assert "--device 'tpu' is not a torch device" in err


def test_a_checkpoint_with_a_damaged_config_is_one_line(tmp_path, capsys, monkeypatch, app_main):
    import json

    from selm.build import build_selm
    from selm.weights.checkpoint import CONFIG_NAME, save_pretrained

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))  # main() sets it
    folder = save_pretrained(build_selm("selm_tiny", input_size=64), tmp_path / "ckpt")
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["config"]["num_classes"] = 10**9
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = ["--checkpoint", str(folder), "--port", str(port), "--no-official"]
    with pytest.raises(SystemExit) as info:
        app_main.main([*argv, "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "the default checkpoint cannot be loaded" in err and "num_classes=1000000000" in err


def test_sigterm_mid_request_leaves_nothing_in_the_cache(tmp_path, app_main):
    """The demo stopped (SIGTERM) while a request writes: the request is stopped and waited
    for before the cache folder is emptied, so nothing is written after it."""
    import os
    import signal
    import time

    from app.state import CacheDir, Requests

    cache, requests = CacheDir(tmp_path / "cache"), Requests()
    root = cache.reset()
    in_flight, stopped = threading.Event(), []

    def request():
        try:
            with requests.folder(root / "requests") as workdir:
                report = requests.watch(lambda fraction, message: None)
                in_flight.set()
                for step in range(1000):  # writes until it is stopped
                    (workdir / f"part_{step}.bin").write_bytes(b"x")
                    report(step / 1000, "writing")
                    time.sleep(0.01)
        except DemoError:
            stopped.append(True)

    class Demo:
        def launch(self, **kwargs):
            threading.Thread(target=request, daemon=True).start()
            assert in_flight.wait(10)
            os.kill(os.getpid(), signal.SIGTERM)  # what `kill` or a Space stopping sends
            time.sleep(30)

        def close(self):
            pass

    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as info:
            app_main.serve(Demo(), app_main.parse_args(["--cache-dir", str(root)]), cache, requests)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert info.value.code == 0 and stopped == [True]
    time.sleep(0.1)
    assert cache.files() == []
