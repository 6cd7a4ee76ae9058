"""app.rendering: the per-second row of maps, area fractions, plots and display-size overlays."""

from __future__ import annotations

import dataclasses

import av
import matplotlib
import numpy as np
import pytest

from app.rendering import (
    area_plot,
    area_table,
    compare_plot,
    display_size,
    frame_maps,
    labelled,
    map_legend,
    map_scales,
    segmented_fraction,
    write_overlay,
)
from selm.inference.predictor import Prediction
from selm.render.paint import colorbar, colorize, token_legend

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
        "CLEVER layer 1, 2x2 grid",
        "CLEVER layer 2, 4x4 grid",
        "CLEVER layer 3, 8x8 grid",
        "DAM stage 3, 3x3 grid",
        "BCSM before, stage 3, 3x3 grid",
        "BCSM after, stage 3, 3x3 grid",
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


def _inferno(value: float) -> np.ndarray:
    return np.array(matplotlib.colormaps["inferno"](value, bytes=True)[:3])


def test_one_scale_per_map_kind_across_seconds_and_predictions(tmp_path):
    a = prediction(tmp_path / "a.mp4")
    b = prediction(tmp_path / "b.mp4")
    b.dam_maps[1][:] = 0.0
    b.dam_maps[1][2, 0, 0] = 5.0  # one hot cell in b's last second
    b.bcsm[1]["norm_after"] = b.bcsm[1]["norm_after"] * 3.0
    scales = map_scales([a, b])
    assert scales[("dam", 1)] == (0.0, 5.0)  # min / max over both, every second
    low = min(a.bcsm[1]["norm_before"].min(), b.bcsm[1]["norm_after"].min())
    high = max(a.bcsm[1]["norm_before"].max(), b.bcsm[1]["norm_after"].max())
    assert scales[("bcsm", 1)] == pytest.approx((low, high))  # before and after: one scale
    # a's DAM map drawn on the shared scale: its values are <= 1 of 5, so never the top colour
    row = frame_maps(a, 0, 1, 0.5, scales)
    dam = next(image for image, caption in row if caption.startswith("DAM"))
    value = a.dam_maps[1][0, 0, 0] / 5.0
    np.testing.assert_array_equal(dam[0, 0], _inferno(value))
    assert not (dam == _inferno(1.0)).all(axis=-1).any()
    # without shared scales, each clip still gets one scale over its seconds
    own = map_scales([a])[("dam", 1)]
    assert own == (float(a.dam_maps[1].min()), float(a.dam_maps[1].max()))
    assert ("dam", 0) not in map_scales([prediction(tmp_path / "c.mp4", with_dam=False)])


def test_maps_are_drawn_as_cells_not_blurred():
    grid = np.array([[0.0, 1.0], [1.0, 0.0]])
    image = colorize(grid, size=(8, 8))
    assert len(np.unique(image.reshape(-1, 3), axis=0)) == 2  # two colours, no blend
    np.testing.assert_array_equal(image[:4, :4], np.broadcast_to(_inferno(0.0), (4, 4, 3)))
    np.testing.assert_array_equal(image[:4, 4:], np.broadcast_to(_inferno(1.0), (4, 4, 3)))
    smooth = colorize(grid, size=(8, 8), smooth=True)
    assert len(np.unique(smooth.reshape(-1, 3), axis=0)) > 2


def test_colour_bar_and_token_legend():
    bar = colorbar(0.0, 2.0, "DAM attention (softmax weight)", width=300)
    assert bar.shape[1] == 300 and bar.dtype == np.uint8
    strip = bar[27, 8:292]  # the bar's middle row, left to right: the colormap from 0 to 1
    np.testing.assert_array_equal(strip[0], _inferno(0.0))
    np.testing.assert_array_equal(strip[-1], _inferno(1.0))
    legend = token_legend(3)
    from selm.render.paint import TOKEN_COLORS

    for k in range(3):
        x, y = 8 + 76 * k, 22
        np.testing.assert_array_equal(legend[y + 5, x + 5], TOKEN_COLORS[k].astype(np.uint8))


def test_map_legend_shows_only_what_the_model_has(tmp_path):
    full = map_legend([prediction(tmp_path / "a.mp4")], level=0)
    bare = map_legend([prediction(tmp_path / "a.mp4", with_dam=False, with_bcsm=False)], 0)
    assert full.shape[0] > bare.shape[0] and full.shape[1] == bare.shape[1]


def test_labels_sit_above_the_image_and_wrap():
    image = np.zeros((100, 60, 3), np.uint8)  # a portrait thumbnail
    out = labelled(image, "BCSM after, stage 3, 3x3 grid")
    assert out.shape[1] == 60 and out.shape[0] > 100
    np.testing.assert_array_equal(out[-100:], image)  # the picture itself is uncovered
    one_line = labelled(np.zeros((100, 400, 3), np.uint8), "BCSM after, stage 3, 3x3 grid")
    assert out.shape[0] - 100 > one_line.shape[0] - 100  # the narrow one wrapped


def test_long_clips_get_readable_second_ticks():
    short = area_plot(np.arange(5) + 0.875, {"a": np.zeros(5)}, title="t")
    long = area_plot(np.arange(60) + 0.875, {"a": np.zeros(60)}, title="t")
    assert short.layout.xaxis.dtick == 1 and long.layout.xaxis.dtick == 5


def test_compare_plot_keeps_area_and_iou_apart():
    times = np.arange(3) + 0.875
    fig = compare_plot(
        times, {"A": np.array([0.1, 0.2, 0.3]), "B": np.zeros(3)}, np.ones(3), title="t"
    )
    assert [t.name for t in fig.data] == ["A", "B", "IoU of the two"]
    assert fig.data[0].yaxis == fig.data[1].yaxis == "y" and fig.data[2].yaxis == "y2"
    assert fig.layout.yaxis2.title.text == "mask IoU"


def test_area_table_by_hand():
    headers, rows = area_table(
        np.array([0.875, 1.875]), {"original": np.array([0.5, 0.25]), "silent": np.zeros(2)}
    )
    assert headers == ["second", "original (% segmented)", "silent (% segmented)"]
    assert rows == [[0, 50.0, 0.0], [1, 25.0, 0.0]]
