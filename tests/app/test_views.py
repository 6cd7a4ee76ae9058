"""app.views: what each tab shows (overlay videos, the audio heard, maps on shared scales,
plots, summaries), drawn from stored runs without the model."""

from __future__ import annotations

import dataclasses

import av
import numpy as np
import pytest
import soundfile
from demo_runs import run
from fake_selm import handmade_prediction

from app import views
from app.actions import AudioRequest
from selm.inference.predictor import Predictor
from selm.render.maps import map_scales


def test_show_run_writes_video_audio_maps_and_plot(fake_predictor, media_dir, tmp_path, kit):
    pred = run(fake_predictor, media_dir / "tone.mp4")
    view = views.show_run(pred, threshold=0.5, frame=1, level=0, workdir=tmp_path)
    with av.open(str(view.video)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (kit.width, kit.height)
        assert container.streams.audio
        assert sum(1 for _ in container.decode(stream)) == 24  # 3 s at 8 fps
    wave, rate = soundfile.read(view.audio)
    assert rate == 16000 and len(wave) == 3 * 16000
    np.testing.assert_allclose(wave, pred.waveform, atol=1 / 32767)
    captions = [c for _, c in view.maps]
    assert len(view.maps) == 8 and captions[0].startswith("frame, second 1")
    assert view.legend.shape[1] == 360
    assert sum("CLEVER layer" in c for c in captions) == 3
    assert any("DAM" in c for c in captions) and sum("BCSM" in c for c in captions) == 2
    expected = kit.reference_masks(0.5).mean()
    np.testing.assert_allclose(view.plot.data[0].y, expected, atol=0.02)
    assert view.num_frames == 3 and "heard with **its own audio**" in view.summary
    muted = views.show_run(
        run(fake_predictor, media_dir / "tone.mp4", AudioRequest("mute")),
        threshold=0.5,
        frame=0,
        level=0,
        workdir=tmp_path,
    )
    assert "**silence (muted)**" in muted.summary and "mute audio" not in muted.summary
    # what the reader noticed about the file reaches the visitor
    pred.notes = ["only 1.7 s decoded, the file declares 5.0 s"]
    noted = views.show_run(pred, threshold=0.5, frame=0, level=0, workdir=tmp_path)
    assert "**Note:** only 1.7 s decoded, the file declares 5.0 s" in noted.summary


def test_show_run_reports_every_stage(fake_predictor, media_dir, tmp_path):
    seen = []
    pred = run(fake_predictor, media_dir / "tone.mp4")
    views.show_run(
        pred,
        threshold=0.5,
        frame=0,
        level=0,
        workdir=tmp_path,
        progress=lambda f, m: seen.append((f, m)),
    )
    assert [m for _, m in seen] == [
        "writing the overlay video",
        "writing the audio the model heard",
        "drawing the maps",
        "done",
    ]
    assert [f for f, _ in seen] == sorted(f for f, _ in seen) and seen[-1][0] == 1.0


def test_compared_rows_line_up_when_one_model_lacks_a_map(media_dir, tmp_path, kit):
    from selm.build import build_selm

    full = run(Predictor(kit.FakeSelM()), media_dir / "tone.mp4")
    bare = run(
        Predictor(build_selm("selm_tiny", input_size=64, bcsm=False)), media_dir / "tone.mp4"
    )
    scales = map_scales([full, bare])
    tiles, columns = views.condition_rows({"A": full, "B": bare}, 0, 0, 0.5, scales)
    assert columns == 7 and len(tiles) == 14
    assert tiles[12][1] == "B: no BCSM before in this model" and (tiles[12][0] == 255).all()
    assert tiles[5][1].startswith("A: BCSM before")


def test_a_model_without_bcsm_shows_no_bcsm_maps(media_dir, tmp_path):
    from selm.build import build_selm

    model = build_selm("selm_tiny", input_size=64, bcsm=False)
    pred = run(Predictor(model), media_dir / "tone.mp4")
    view = views.show_run(pred, threshold=0.5, frame=0, level=0, workdir=tmp_path)
    captions = [c for _, c in view.maps]
    assert not any("BCSM" in c for c in captions) and any("DAM" in c for c in captions)


def test_redraw_uses_the_stored_prediction_not_the_model(fake_predictor, media_dir, tmp_path, kit):
    pred = run(fake_predictor, media_dir / "tone.mp4")
    calls = fake_predictor.model.calls
    low = views.show_run(pred, threshold=0.5, frame=0, level=0, workdir=tmp_path)
    high = views.show_run(pred, threshold=0.95, frame=0, level=0, workdir=tmp_path)
    assert fake_predictor.model.calls == calls
    np.testing.assert_allclose(low.plot.data[0].y, kit.reference_masks(0.5).mean(), atol=0.02)
    np.testing.assert_allclose(high.plot.data[0].y, kit.reference_masks(0.95).mean(), atol=0.02)


def test_mask_iou_by_hand():
    a = np.zeros((3, 2, 2), bool)
    b = np.zeros((3, 2, 2), bool)
    a[0, 0] = True  # 2 pixels
    b[0, :, 0] = True  # 2 pixels, 1 shared -> 1 / 3
    a[1, 0, 0] = b[1, 0, 0] = True  # identical -> 1; frame 2 both empty -> 1
    np.testing.assert_allclose(views.mask_iou(a, b), [1 / 3, 1.0, 1.0])


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_a_run_shows_the_recorded_overlay_audio_and_maps(threshold, tmp_path):
    """selm-hard on a bundled example: the files and maps the Result tab shows, byte for byte as
    recorded (tests/golden_outputs.py): at 0.5 the overlay the run wrote in its pass, at 0.3
    the stored run drawn again."""
    from golden_outputs import CHECKPOINT, EXAMPLES, expected, sha256

    want = expected(f"demo hard_ms3_test_00015.mp4 {threshold}")
    made = tmp_path / "pass.mp4" if threshold == 0.5 else None  # a redraw at 0.3
    video = str(EXAMPLES / "hard_ms3_test_00015.mp4")
    pred = run(Predictor.from_pretrained(CHECKPOINT), video, overlay=made, threshold=0.5)
    view = views.show_run(
        pred, threshold=threshold, frame=0, level=0, workdir=tmp_path, overlay=made
    )
    got = {
        "overlay": sha256(view.video.read_bytes()),
        "audio": sha256(view.audio.read_bytes()),
        "maps": sha256(b"".join(np.ascontiguousarray(m).tobytes() for m, _ in view.maps)),
        "legend": sha256(view.legend.tobytes()),
    }
    assert got == want


def test_a_stored_run_is_drawn_again_at_its_display_size(tmp_path, kit):
    source = kit.write_clip(tmp_path / "clip.mp4", seconds=3.0, fps=8)
    pred = handmade_prediction(source, size=(kit.width // 2, kit.height // 2))  # display size
    out = views.draw_overlay(pred, tmp_path / "overlay.mp4", threshold=0.5)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (kit.width // 2, kit.height // 2)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert container.streams.audio
    assert len(frames) == 24
    # left half is masked (red tint over dark grey / white), right half keeps the source colours
    left, right = frames[12][8:24, 4:20].astype(int), frames[12][8:24, 30:44].astype(int)
    assert (left[..., 0] - left[..., 1]).mean() > 40
    assert abs(right[..., 0] - right[..., 1]).mean() < 10
    pred = dataclasses.replace(pred, probs=pred.probs * 0)  # nothing segmented
    out = views.draw_overlay(pred, tmp_path / "plain.mp4", threshold=0.5)
    with av.open(str(out)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    assert abs(first[..., 0] - first[..., 1]).mean() < 10
