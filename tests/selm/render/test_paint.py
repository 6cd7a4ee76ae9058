"""selm.render.paint: masks drawn on frames, binary and by label, and bad masks refused."""

import numpy as np
import pytest

from selm.render.paint import MASK_COLOR, overlay
from selm.render.palette import label_palette


def test_overlay_binary_by_hand():
    frame = np.full((10, 12, 3), 100, np.uint8)
    frame[0, 0] = (7, 8, 9)
    mask = np.zeros((10, 12), bool)
    mask[2:7, 3:9] = True  # 5 x 6 block
    out = overlay(frame, mask, alpha=0.5)
    np.testing.assert_array_equal(out[~mask], frame[~mask])  # outside: untouched
    border = mask.copy()
    border[3:6, 4:8] = False  # the block's 1-pixel rim is the outline
    np.testing.assert_array_equal(out[border], np.tile(MASK_COLOR, (border.sum(), 1)))
    blended = np.rint(0.5 * 100 + 0.5 * np.array(MASK_COLOR)).astype(np.uint8)
    np.testing.assert_array_equal(out[3:6, 4:8], np.broadcast_to(blended, (3, 4, 3)))


def test_overlay_labels_use_the_palette_and_leave_0_transparent():
    frame = np.zeros((8, 8, 3), np.uint8)
    labels = np.zeros((8, 8), np.int64)
    labels[:, :4] = 1
    labels[:, 6:] = 2
    colors = [(0, 0, 0), (200, 0, 0), (0, 0, 240)]
    out = overlay(frame, labels, alpha=1.0, colors=colors)
    assert (out[:, :4] == (200, 0, 0)).all() and (out[:, 6:] == (0, 0, 240)).all()
    assert (out[:, 4:6] == 0).all()
    default = overlay(frame, labels, alpha=1.0)
    assert (default[:, :4] == label_palette()[1]).all()


def test_overlay_rejects_bad_masks():
    frame = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="threshold it"):
        overlay(frame, np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="does not match"):
        overlay(frame, np.zeros((4, 5), bool))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        overlay(frame, np.full((4, 4), 2), colors=[(0, 0, 0), (1, 1, 1)])
