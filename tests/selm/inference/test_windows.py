"""selm.inference.windows: the predictor's stream of windows, one pass over a file, memory
bounded per window."""

import weakref

import av
import numpy as np
import pytest
from fake_selm import SECONDS, FakeSelM, H, W, predict_with_overlay

from selm.inference.prediction import Prediction
from selm.inference.predictor import Predictor


def test_windows_are_yielded_one_at_a_time(video):
    """The model runs a window only when the consumer asks for it, and each window carries its
    own seconds: sampled frames, results, and with video_frames every frame shown in them."""
    model = FakeSelM()
    windows = Predictor(model).windows(video, video_frames=True)
    first = next(windows)
    assert len(model.calls) == 1 and (first.index, first.start, first.last) == (0, 0, False)
    assert first.frames.shape == (5, H, W, 3) and first.probs.shape[0] == 5
    assert len(first.audio) == 5 * 16000  # the heard audio of its seconds
    assert first.video and all(0 <= t < 5 for t, _ in first.video)
    assert all(image.shape == (H, W, 3) for _, image in first.video)
    second = next(windows)
    assert len(model.calls) == 2 and second.start == 5 and second.last
    assert all(5 <= t < SECONDS for t, _ in second.video)
    assert second.ending.duration == pytest.approx(SECONDS) and second.ending.notes == []
    assert next(windows, None) is None
    plain = next(Predictor(FakeSelM()).windows(video))
    assert plain.video is None  # no full-rate frames unless asked for


def test_frames_kept_as_thumbnails_leave_masks_and_overlay_at_the_decoded_size(video, tmp_path):
    import cv2

    full = Predictor(FakeSelM()).predict(video)
    small = predict_with_overlay(
        Predictor(FakeSelM()), video, tmp_path / "o.mp4", frames_max_side=16
    )
    assert small.frames.shape == (SECONDS, 12, 16, 3)  # 64 x 48 -> longer side 16
    expected = [cv2.resize(f, (16, 12), interpolation=cv2.INTER_AREA) for f in full.frames]
    np.testing.assert_array_equal(small.frames, np.stack(expected))
    assert small.size == full.size == (W, H) and small.frame_size == (W, H)
    np.testing.assert_array_equal(small.probs, full.probs)  # the model saw the same frames
    np.testing.assert_array_equal(small.masks(), full.masks())
    assert small.masks().shape == (SECONDS, H, W)
    with av.open(str(tmp_path / "o.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (W, H)
    same = Predictor(FakeSelM()).predict(video, frames_max_side=64)  # no larger than asked
    assert same.frame_size is None and same.frames.shape == full.frames.shape


@pytest.mark.parametrize("with_overlay", [False, True])
def test_the_file_pass_gives_freed_memory_back_after_every_window(
    video, tmp_path, monkeypatch, with_overlay
):
    import selm.inference.windows as windows_module

    trims = []
    monkeypatch.setattr(windows_module, "release_freed_memory", lambda: trims.append(1))
    if with_overlay:
        pred = predict_with_overlay(Predictor(FakeSelM()), video, tmp_path / "o.mp4")
    else:
        pred = Predictor(FakeSelM()).predict(video)
    windows = -(-SECONDS // FakeSelM().config.num_frames)
    assert len(pred.times) == SECONDS and len(trims) == windows == 2


def test_a_window_s_frames_are_freed_before_the_next_window_runs(video, monkeypatch):
    """Memory holds one window: when window k + 1 has run, nothing holds window k's frames."""
    import selm.inference.windows as windows_module

    held = []

    def after_each_model_run():  # where the pass hands freed memory back
        assert all(ref() is None for ref in held), "an earlier window's frames are still held"

    def consumer(window):
        held[:] = [weakref.ref(image) for _, image in window.video]

    monkeypatch.setattr(windows_module, "release_freed_memory", after_each_model_run)
    windows = Predictor(FakeSelM()).windows(video, video_frames=True)
    pred = Prediction.from_windows(windows, consumer)
    assert len(pred.times) == SECONDS and held  # two windows ran, the last one's frames kept
