"""selm.render.maps: heat maps and token maps drawn as cells, the row of maps of one second,
colour scales shared across predictions, and their legend."""

import warnings

import matplotlib
import numpy as np
import pytest
from fake_selm import HEIGHT, WIDTH, handmade_prediction

from selm.render.maps import (
    TOKEN_COLORS,
    colorbar,
    colorize,
    frame_maps,
    hit_map_image,
    map_legend,
    map_scales,
    token_legend,
)


def test_colorize_ends_sizes_and_constant_maps():
    cmap = matplotlib.colormaps["inferno"]
    lowest = np.array(cmap(0.0, bytes=True)[:3])
    highest = np.array(cmap(1.0, bytes=True)[:3])
    ramp = colorize(np.array([[0.0, 2.0], [0.0, 2.0]]))
    assert ramp.shape == (2, 2, 3) and ramp.dtype == np.uint8
    assert (ramp[:, 0] == lowest).all() and (ramp[:, 1] == highest).all()
    clipped = colorize(np.array([[-5.0, 5.0]]), vmin=0.0, vmax=1.0)
    assert (clipped[0, 0] == lowest).all() and (clipped[0, 1] == highest).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flat = colorize(np.full((3, 3), 7.0), size=(20, 10))
    assert flat.shape == (10, 20, 3) and (flat == lowest).all()
    big = colorize(np.arange(16.0).reshape(4, 4), size=(8, 8), cmap="viridis")
    assert big.shape == (8, 8, 3)


def test_hit_map_image_colours_the_argmax_token():
    hit = np.zeros((2, 2, 2))
    hit[0, 0, :] = 1.0  # top row: token 0
    hit[1, 1, :] = 1.0  # bottom row: token 1
    image = hit_map_image(hit, size=(4, 4))
    assert image.shape == (4, 4, 3)
    assert (image[:2] == TOKEN_COLORS[0].astype(np.uint8)).all()
    assert (image[2:] == TOKEN_COLORS[1].astype(np.uint8)).all()


def test_frame_maps_row(tmp_path):
    pred = handmade_prediction(tmp_path / "none.mp4")
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
    pred = handmade_prediction(tmp_path / "none.mp4", with_dam=False, with_bcsm=False)
    captions = [c for _, c in frame_maps(pred, 0, 0, 0.5)]
    assert len(captions) == 5 and not any("DAM" in c or "BCSM" in c for c in captions)


def test_semantic_prediction(tmp_path):
    pred = handmade_prediction(tmp_path / "none.mp4", num_classes=4)
    row = frame_maps(pred, 0, 0, 0.5)
    assert row[1][1] == "mask (argmax of 4 classes)"
    np.testing.assert_allclose((pred.masks(0.5) != 0).mean((1, 2)), 0.5)


def test_one_scale_per_map_kind_across_seconds_and_predictions(tmp_path):
    a = handmade_prediction(tmp_path / "a.mp4")
    b = handmade_prediction(tmp_path / "b.mp4")
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
    assert ("dam", 0) not in map_scales([handmade_prediction(tmp_path / "c.mp4", with_dam=False)])


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

    for k in range(3):
        x, y = 8 + 76 * k, 22
        np.testing.assert_array_equal(legend[y + 5, x + 5], TOKEN_COLORS[k].astype(np.uint8))


def test_map_legend_shows_only_what_the_model_has(tmp_path):
    full = map_legend([handmade_prediction(tmp_path / "a.mp4")], level=0)
    bare = map_legend([handmade_prediction(tmp_path / "a.mp4", with_dam=False, with_bcsm=False)], 0)
    assert full.shape[0] > bare.shape[0] and full.shape[1] == bare.shape[1]


def _inferno(value: float) -> np.ndarray:
    return np.array(matplotlib.colormaps["inferno"](value, bytes=True)[:3])
