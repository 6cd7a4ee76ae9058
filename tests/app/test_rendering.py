"""app.rendering: the per-second row of maps, area fractions, plots and display-size overlays."""

from __future__ import annotations

import dataclasses

import av
import numpy as np
import pytest

from app.rendering import area_plot, display_size, frame_maps, segmented_fraction, write_overlay
from selm.predictor import Prediction

WIDTH, HEIGHT = 96, 64  # the hand-made predictions' frame size


def prediction(
    source, *, num_classes=1, with_dam=True, with_bcsm=True, seconds=3, size=(WIDTH, HEIGHT)
) -> Prediction:
    """A hand-made Prediction: left half of every frame certain (p = 0.9), right half 0.1."""
    width, height = size
    probs = np.full((seconds, num_classes, height, width), 0.1, np.float32)
    probs[:, 0, :, : width // 2] = 0.9
    if num_classes > 1:  # semantic: class 2 wins on the left, background on the right
        probs[:, :] = 0.0
        probs[:, 2, :, : width // 2] = 1.0
        probs[:, 0, :, width // 2 :] = 1.0
    levels = [
        np.random.default_rng(i).random((seconds, 8 // 2**i + 1, 8 // 2**i + 1), dtype=np.float32)
        for i in range(4)
    ]
    return Prediction(
        frames=np.zeros((seconds, height, width, 3), np.uint8),
        times=np.arange(seconds) + 0.875,
        probs=probs,
        hit_maps=[np.zeros((seconds, 2, s, s), np.float32) for s in (2, 4, 8)],
        dam_maps=levels if with_dam else None,
        bcsm=[
            {"norm_before": m, "norm_after": m, "gate_audio": None, "gate_video": None}
            for m in levels
        ]
        if with_bcsm
        else None,
        waveform=np.zeros(seconds * 16000, np.float32),
        audio_label="mute",
        fps=8.0,
        source=str(source),
        duration=float(seconds),
    )


def test_segmented_fraction_by_hand():
    masks = np.zeros((2, 4, 5), np.int64)
    masks[0, :2, :] = 1  # 10 of 20
    masks[1, 0, 0] = 7  # 1 of 20, a class id
    np.testing.assert_allclose(segmented_fraction(masks), [0.5, 0.05])
    np.testing.assert_allclose(segmented_fraction(masks.astype(bool)), [0.5, 0.05])


@pytest.mark.parametrize(
    "size, max_side, expected",
    [
        ((96, 64), 480, (96, 64)),
        ((1920, 1080), 480, (480, 270)),
        ((1080, 1920), 480, (270, 480)),
        ((641, 361), 641, (641, 361)),
        ((641, 361), 320, (320, 180)),
    ],
)
def test_display_size(size, max_side, expected):
    assert display_size(*size, max_side) == expected


def test_frame_maps_row(tmp_path):
    pred = prediction(tmp_path / "none.mp4")
    row = frame_maps(pred, index=1, level=2, threshold=0.5)
    assert [c for _, c in row] == [
        "frame, second 1 (1.88 s)",
        "mask (p > 0.50)",
        "CLEVER layer 1 (2x2)",
        "CLEVER layer 2 (4x4)",
        "CLEVER layer 3 (8x8)",
        "DAM attention, stage 3",
        "BCSM before, stage 3",
        "BCSM after, stage 3",
    ]
    assert all(image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8 for image, _ in row)
    mask_image = row[1][0].astype(int)
    assert mask_image[:, WIDTH // 2 + 2 :].max() == 0  # right half: not segmented, frame black
    assert mask_image[5:-5, 5 : WIDTH // 2 - 5, 0].min() > 100  # left half: red tint
    assert len(frame_maps(pred, index=99, level=0, threshold=0.5)) == 8  # clamped to the last


def test_frame_maps_leave_out_what_the_model_lacks(tmp_path):
    pred = prediction(tmp_path / "none.mp4", with_dam=False, with_bcsm=False)
    captions = [c for _, c in frame_maps(pred, 0, 0, 0.5)]
    assert len(captions) == 5 and not any("DAM" in c or "BCSM" in c for c in captions)


def test_semantic_prediction(tmp_path):
    pred = prediction(tmp_path / "none.mp4", num_classes=4)
    row = frame_maps(pred, 0, 0, 0.5)
    assert row[1][1] == "mask (argmax of 4 classes)"
    np.testing.assert_allclose(segmented_fraction(pred.masks(0.5)), 0.5)


def test_area_plot_series():
    fig = area_plot(
        np.array([0.875, 1.875]), {"a": np.array([0.1, 0.2]), "b": np.array([0.0, 1.0])}, title="t"
    )
    assert [trace.name for trace in fig.data] == ["a", "b"]
    np.testing.assert_allclose(fig.data[1].y, [0.0, 1.0])
    assert list(fig.data[0].x) == [0, 1]


def test_write_overlay_at_display_size(tmp_path, kit):
    source = kit.write_clip(tmp_path / "clip.mp4", seconds=3.0, fps=8)
    pred = prediction(source, size=(kit.width // 2, kit.height // 2))  # a half-size display copy
    out = write_overlay(pred, tmp_path / "overlay.mp4", threshold=0.5)
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
    out = write_overlay(pred, tmp_path / "plain.mp4", threshold=0.5)
    with av.open(str(out)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    assert abs(first[..., 0] - first[..., 1]).mean() < 10
