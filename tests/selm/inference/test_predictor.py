"""selm.inference.predictor: windows padded and stitched, the audio choices, clip input,
user errors, the checkpoint loader, a real selm_tiny."""

import json
import sys
import types

import numpy as np
import pytest
import torch
from fake_selm import FPS, SECONDS, FakeSelM, H, W, assert_object_segmented

from selm import predict as predict_cli
from selm.inference.predictor import Prediction, Predictor
from selm.media.audio import write_wav
from selm.media.container import MediaError
from selm.media.video import frame_times, read_video


def test_windows_padding_and_stitching(video):
    model = FakeSelM()
    seen = []
    pred = Predictor(model).predict(video, progress=lambda f, m: seen.append((f, m)))
    assert [c[2].tolist() for c in model.calls] == [[[True] * 5], [[True, True] + [False] * 3]]
    frames, audio, _ = model.calls[1]
    assert frames.shape == (1, 5, 3, 32, 32) and audio.shape == (1, 5, 1, 96, 64)
    for t in (2, 3, 4):  # padded at the end by repeating the last real frame
        torch.testing.assert_close(frames[0, t], frames[0, 1])
    assert [f for f, _ in seen] == [0.25, 0.5, 0.75, 1.0]  # decode, model per window
    assert [m.split(":")[0] for _, m in seen] == ["decode", "model"] * 2
    assert "window 2/2" in seen[-1][1]
    assert isinstance(pred, Prediction)
    np.testing.assert_allclose(pred.times, frame_times(SECONDS))
    assert pred.frames.shape == (SECONDS, H, W, 3)
    assert pred.probs.shape == (SECONDS, 1, 32, 32) and pred.probs.dtype == np.float32  # grid
    assert pred.masks().shape == (SECONDS, H, W)
    assert pred.fps == FPS and pred.duration == pytest.approx(SECONDS)
    assert pred.source == str(video) and pred.audio_label == "original"
    # every second lands in its own slot: the DAM map holds that frame's mean brightness
    for level, side in zip(pred.dam_maps, (8, 4, 2, 1)):
        assert level.shape == (SECONDS, side, side) and level.dtype == np.float32
        np.testing.assert_allclose(level[:, 0, 0], pred.frames.mean((1, 2, 3)) / 255, atol=0.01)
    assert [h.shape for h in pred.hit_maps] == [(SECONDS, 2, s, s) for s in (4, 8, 16)]
    assert pred.bcsm[0]["gate_video"] is None
    assert pred.bcsm[3]["norm_after"].shape == (SECONDS, 1, 1)
    np.testing.assert_allclose(pred.bcsm[2]["norm_after"], 2 * pred.dam_maps[2], rtol=1e-6)
    for mask in pred.masks():
        assert_object_segmented(mask)


def test_audio_choices_change_the_result(video, tmp_path):
    predictor = Predictor(FakeSelM())
    mute = predictor.predict(video, audio="mute")
    assert mute.audio_label == "mute" and not mute.masks().any()
    np.testing.assert_array_equal(mute.waveform, np.zeros(SECONDS * 16000, np.float32))
    noise = predictor.predict(video, audio="noise")
    assert noise.audio_label == "noise" and noise.waveform.std() == pytest.approx(0.1, rel=0.05)
    np.testing.assert_array_equal(noise.waveform, predictor.predict(video, audio="noise").waveform)
    for mask in noise.masks():
        assert_object_segmented(mask)
    # sound only in [0, 2.5) and [5, 5.9) s: each window's audio example i covers
    # [0.96 i, 0.96 i + 0.96) of that window, so seconds 0, 1, 2 and 5 hear it, 3, 4, 6 do not
    t = np.arange(SECONDS * 16000) / 16000
    wave = np.where((t < 2.5) | ((t >= 5) & (t < 5.9)), 0.3 * np.sin(2 * np.pi * 500 * t), 0)
    heard = predictor.predict(video, audio=wave.astype(np.float32))
    assert heard.audio_label == "waveform"
    assert [bool(m.any()) for m in heard.masks()] == [True, True, True, False, False, True, False]
    short = write_wav(tmp_path / "beep.wav", 0.3 * np.sin(2 * np.pi * 500 * t[:14400]), 16000)
    from_file = predictor.predict(video, audio=short)  # 0.9 s of sound, zero-padded to 7 s
    assert from_file.audio_label == "beep.wav" and len(from_file.waveform) == SECONDS * 16000
    assert [bool(m.any()) for m in from_file.masks()] == [True] + [False] * 6


def test_semantic_masks_are_class_ids(video):
    pred = Predictor(FakeSelM(num_classes=3)).predict(video, max_seconds=10)
    assert pred.probs.shape == (SECONDS, 3, 32, 32)  # the model's grid
    np.testing.assert_allclose(pred.probs.sum(1), 1.0, atol=1e-5)
    masks = pred.masks()
    assert masks.dtype == np.int64 and set(np.unique(masks)) == {0, 2}
    for mask in masks:
        assert_object_segmented(mask == 2)


def test_clip_input_and_user_errors(video, silent_video):
    predictor = Predictor(FakeSelM())
    clip = read_video(video)
    assert predictor.predict(clip).masks().shape == (SECONDS, H, W)
    with pytest.raises(MediaError, match="longer than the limit of 5 s"):
        predictor.predict(clip, max_seconds=5)
    with pytest.raises(MediaError, match="has no audio track.*'mute'"):
        predictor.predict(silent_video)
    assert not predictor.predict(silent_video, audio="mute").masks().any()
    with pytest.raises(MediaError, match="expected one of"):
        predictor.predict(video, audio="loud")
    with pytest.raises(MediaError, match=r"\(S,\) array"):
        predictor.predict(video, audio=np.zeros((2, 16000)))


def test_from_pretrained_uses_the_checkpoint_loader(monkeypatch):
    calls = []
    fake = types.ModuleType("selm.weights.resolve")
    fake.load_pretrained = lambda path, map_location="cpu": (
        calls.append((path, map_location)) or FakeSelM()
    )
    monkeypatch.setitem(sys.modules, "selm.weights.resolve", fake)
    predictor = Predictor.from_pretrained("ckpt/dir", device="cpu")
    assert calls == [("ckpt/dir", "cpu")] and isinstance(predictor.model, FakeSelM)
    assert not predictor.model.training


def test_real_selm_tiny_and_the_cli_on_its_checkpoint(silent_video, tmp_path):
    from selm.build import build_selm
    from selm.weights.checkpoint import save_pretrained

    model = build_selm("selm_tiny", input_size=64)
    pred = Predictor(model).predict(silent_video, audio="noise")  # 3 s: one padded window
    assert pred.probs.shape == (3, 1, 64, 64)  # the model's output grid
    assert np.isfinite(pred.probs).all() and (pred.probs >= 0).all() and (pred.probs <= 1).all()
    assert [h.shape for h in pred.hit_maps] == [(3, 2, s, s) for s in (4, 8, 16)]
    assert len(pred.bcsm) == 4 and pred.bcsm[0]["norm_before"].shape == (3, 16, 16)
    assert pred.dam_maps[0].shape == (3, 16, 16)
    # the same weights through save_pretrained -> the CLI's from_pretrained give the same areas
    checkpoint = save_pretrained(model, tmp_path / "ckpt")
    summary = tmp_path / "s.json"
    args = [str(silent_video), "--checkpoint", str(checkpoint), "--noise", "--threshold", "0.5"]
    assert predict_cli.main(args + ["--out", str(tmp_path / "o.mp4"), "--json", str(summary)]) == 0
    areas = [s["area"] for s in json.loads(summary.read_text())["seconds"]]
    np.testing.assert_allclose(areas, pred.masks(0.5).mean((1, 2)), atol=1e-6)
