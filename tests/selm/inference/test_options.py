"""selm.inference.options: thresholds, limits, sizes, devices and output names are refused in one
line where they come in (Prediction, Predictor, the overlay writers), before anything is decoded
or written, instead of giving empty masks, 1x1 frames or switched-off limits."""

import numpy as np
import pytest
from fake_selm import FakeSelM, handmade_prediction

from selm.inference.predictor import Predictor
from selm.render.overlay import OverlayVideo, write_overlay_video

BAD_THRESHOLDS = [float("nan"), 2.0, -1, 0.0, 1.0, float("inf"), "0.5", True, None]


@pytest.mark.parametrize("bad", BAD_THRESHOLDS, ids=repr)
def test_a_bad_threshold_is_refused_by_every_entry_point(bad, tmp_path):
    pred = handmade_prediction(tmp_path / "absent.mp4")
    calls = {
        "masks": lambda: pred.masks(bad),
        "mask": lambda: pred.mask(0, bad),
        "iter_masks": lambda: pred.iter_masks(bad),  # at the call, not at the first mask
        "OverlayVideo": lambda: OverlayVideo(tmp_path / "o.mp4", threshold=bad),
        "write_overlay_video": lambda: write_overlay_video(pred, tmp_path / "o.mp4", bad),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=r"threshold=.*strictly between 0 and 1") as info:
            call()
        assert "\n" not in str(info.value), name
    assert list(tmp_path.iterdir()) == []
    assert pred.masks(0.5)[:, :, : pred.size[0] // 2].all()  # a good one still works


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(max_seconds=float("nan")), "max_seconds=nan: give a positive number"),
        (dict(max_seconds=-1), "max_seconds=-1"),
        (dict(max_pixels=0), "max_pixels=0: give a whole number of pixels"),
        (dict(max_pixels=-5), "max_pixels=-5"),
        (dict(max_side=0), "max_side=0"),
        (dict(frames_max_side=-1), "frames_max_side=-1"),
        (dict(size=(0, 0)), "size width=0"),
        (dict(size=(64, -48)), "size height=-48"),
        (dict(size=(64.5, 48)), "size width=64.5"),
        (dict(size=64), "size=64: give \\(width, height\\)"),
    ],
)
def test_bad_predictor_options_are_refused_before_decoding(video, options, message):
    predictor = Predictor(FakeSelM())
    for call in (predictor.predict, predictor.windows):
        with pytest.raises(ValueError, match=message):
            call(video, **options)
    assert predictor.model.calls == []


@pytest.mark.parametrize("bad", [None, 42, ""])
def test_no_video_is_one_clear_error(bad):
    with pytest.raises(ValueError, match="give the path of a video file"):
        Predictor(FakeSelM()).predict(bad)


@pytest.mark.parametrize("name", ["x.txt", "overlay", "o.webm"])
def test_an_overlay_must_be_named_as_a_video(name, tmp_path):
    pred = handmade_prediction(tmp_path / "absent.mp4")
    for call in (
        lambda: OverlayVideo(tmp_path / name),
        lambda: write_overlay_video(pred, tmp_path / name),
    ):
        with pytest.raises(ValueError, match=r"give a file name ending in one of \.mp4"):
            call()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("size", [(0, 0), (-64, 48), (64, 0)])
def test_a_bad_size_is_refused_by_masks_and_overlays(size, tmp_path):
    pred = handmade_prediction(tmp_path / "absent.mp4")
    with pytest.raises(ValueError, match="give a whole number of pixels"):
        pred.masks(0.5, size=size)
    with pytest.raises(ValueError, match="give a whole number of pixels"):
        write_overlay_video(pred, tmp_path / "o.mp4", size=size)
    assert list(tmp_path.iterdir()) == []


def test_frames_are_never_decoded_to_nothing(video):
    """The smallest cap accepted still gives frames a model can look at (not 1x1)."""
    pred = Predictor(FakeSelM()).predict(video, max_pixels=32 * 32)
    width, height = pred.size
    assert width * height <= 32 * 32 and min(width, height) >= 24


@pytest.mark.parametrize("device", ["tpu", "cuda:banana", "xla"])
def test_a_device_that_is_not_here_is_one_line(device):
    with pytest.raises(ValueError, match=f"device '{device}'"):
        Predictor(FakeSelM(), device=device)
    with pytest.raises(ValueError, match=f"device '{device}'"):
        Predictor.from_pretrained("never-loaded", device=device)  # refused before loading


def test_masks_are_unchanged_for_good_options(tmp_path):
    pred = handmade_prediction(tmp_path / "absent.mp4")
    masks = pred.masks(0.5, size=(48, 32))
    assert masks.shape == (3, 32, 48) and masks[:, :, :24].all() and not masks[:, :, 24:].any()
    np.testing.assert_array_equal(np.stack(list(pred.iter_masks(0.5))), pred.masks(0.5))
