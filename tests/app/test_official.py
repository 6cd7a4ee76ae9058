"""app.official: the authors' models in the demo's list, fetched on first pick (fake Drive),
and an offline pick that explains itself while the rest of the demo keeps working."""

from __future__ import annotations

import tempfile

import gradio as gr
import pytest

from app.official import official_checkpoints, prepare_checkpoint, with_official
from app.settings import DemoSettings
from app.state import PredictorPool, ResultStore
from app.ui import build_demo
from selm.inference.predictor import Predictor
from selm.weights.pretrained import VGGISH_URL
from selm.weights.release import REGISTRY
from selm.weights.resolve import resolve_checkpoint


@pytest.fixture
def isolated_tmp(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))
    return tmp_path


def make_demo(kit, loader=Predictor.from_pretrained):
    pool = PredictorPool(loader, pinned={"fake": Predictor(kit.FakeSelM())})
    checkpoints = with_official({"fake": "fake"})
    store = ResultStore()
    demo = build_demo(DemoSettings(checkpoints=checkpoints, store=store), pool)
    demo.store = store  # where the sessions' results are kept
    return demo, pool


def event(demo, api_name):
    return next(f.fn for f in demo.fns.values() if f.api_name == api_name)


def run(demo, video, picked):
    """Run the clip; the outputs with the stored Prediction in place of its session key."""
    *outs, key = event(demo, "run")(str(video), "original", None, None, picked, "", 0.5, 0, None)
    return (*outs, demo.store.get(key))


def test_the_six_are_listed_after_ours():
    listed = with_official({"selm-synth": "assets/x", "official:s4_pvt": "official:s4_pvt"})
    assert list(listed)[:2] == ["selm-synth", "authors' SelM-PVTv2, S4"]  # given: relabelled
    assert set(listed.values()) == {"assets/x", *official_checkpoints().values()}
    assert len(listed) == 7 and "authors' SelM-R50, AVSS" in listed


def test_picking_an_official_model_downloads_converts_and_loads_once(
    fake_drive, isolated_tmp, media_dir, kit
):
    """The pool's loader resolves the converted checkpoint (no second download) and stands a
    fake model in for it; the real model runs in the slow test below."""
    loaded = []

    def loader(spec):
        loaded.append(resolve_checkpoint(spec))
        return Predictor(kit.FakeSelM())

    demo, pool = make_demo(kit, loader)
    spec = "official:s4_r50"
    seen = []
    status = prepare_checkpoint(spec, pool, lambda f, m: seen.append((f, m)))
    assert "**authors' SelM-R50, S4** is loaded" in status and spec in pool
    assert fake_drive.calls == [REGISTRY["s4_r50"].drive_id, VGGISH_URL]
    messages = [m for _, m in seen]
    assert any(m.startswith("downloading SelM_S4_R50.pth") for m in messages)
    assert any(m.startswith("downloading vggish-10086976.pth") for m in messages)
    assert any(m.startswith("converting") for m in messages) and seen[-1][0] == 1.0
    assert loaded == [fake_drive.home / "checkpoints" / "official-s4_r50"]
    assert event(demo, "load_checkpoint")(spec) == "**authors' SelM-R50, S4** is loaded."
    assert len(fake_drive.calls) == 2 and len(loaded) == 1  # picked again: nothing fetched
    # the Compare tab's picker prepares its model the same way (status line, progress)
    assert event(demo, "load_compare_checkpoint")(spec) == "**authors' SelM-R50, S4** is loaded."
    *_, summary, pred = run(demo, media_dir / "tone.mp4", spec)
    assert pred.frames.shape[0] == 3 and "its own audio" in summary


@pytest.mark.slow
def test_picking_an_official_model_and_running_it(fake_drive, isolated_tmp, media_dir, kit):
    demo, pool = make_demo(kit)
    status = event(demo, "load_checkpoint")("official:s4_r50")
    assert "**authors' SelM-R50, S4** is loaded" in status
    *_, summary, pred = run(demo, media_dir / "tone.mp4", "official:s4_r50")
    assert pred.probs.shape[:2] == (3, 1) and "its own audio" in summary
    assert pred.hit_maps[0].shape[:2] == (3, 2)  # K = 2 CLEVER tokens


def test_offline_pick_explains_and_the_rest_keeps_working(fake_drive, isolated_tmp, media_dir, kit):
    fake_drive.mode = "offline"
    demo, pool = make_demo(kit)
    status = event(demo, "load_checkpoint")("official:s4_pvt")
    assert status.startswith("**authors' SelM-PVTv2, S4 cannot be loaded here.**")
    assert "drive.google.com cannot be reached" in status
    assert "https://drive.google.com/file/d/1WFcfB5cawzqLSxUJH7yP3xL2JN0ZX27V/view" in status
    assert event(demo, "load_checkpoint")("fake") == ""  # ours: nothing to fetch
    compared = event(demo, "load_compare_checkpoint")("official:s4_pvt")
    assert compared.startswith("**authors' SelM-PVTv2, S4 cannot be loaded here.**")
    *_, pred = run(demo, media_dir / "tone.mp4", "fake")
    assert pred.frames.shape[0] == 3
    with pytest.raises(gr.Error, match="cannot be reached"):
        run(demo, media_dir / "tone.mp4", "official:s4_pvt")
