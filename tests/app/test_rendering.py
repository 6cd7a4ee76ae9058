"""app.rendering: area fractions, plots and tables, captions above images, display sizes."""

from __future__ import annotations

import numpy as np
import pytest

from app.rendering import (
    area_plot,
    area_table,
    compare_plot,
    display_size,
    labelled,
    segmented_fraction,
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


def test_area_plot_series():
    fig = area_plot(
        np.array([0.875, 1.875]), {"a": np.array([0.1, 0.2]), "b": np.array([0.0, 1.0])}, title="t"
    )
    assert [trace.name for trace in fig.data] == ["a", "b"]
    np.testing.assert_allclose(fig.data[1].y, [0.0, 1.0])
    assert list(fig.data[0].x) == [0, 1]


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
