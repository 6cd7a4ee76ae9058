"""selm.inference.prediction: the masks of a prediction, whole, one by one and one second alone;
what a prediction holds (arrays and facts, no file paths)."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from fake_selm import SECONDS, FakeSelM

from selm.inference.prediction import Prediction
from selm.inference.predictor import Predictor


@pytest.mark.parametrize("num_classes", [1, 3])
def test_one_mask_and_masks_one_by_one_are_the_masks(video, monkeypatch, num_classes):
    import selm.inference.prediction

    monkeypatch.setattr(selm.inference.prediction, "MASK_CHUNK", 3)  # 7 s: chunks of 3, 3 and 1
    pred = Predictor(FakeSelM(num_classes=num_classes)).predict(video)
    for size in (None, (20, 10)):
        masks = pred.masks(0.5, size)
        one_by_one = list(pred.iter_masks(0.5, size))
        assert len(one_by_one) == SECONDS and masks.shape[0] == SECONDS
        for index, mask in enumerate(one_by_one):
            assert mask.dtype == masks.dtype
            np.testing.assert_array_equal(mask, masks[index])
            np.testing.assert_array_equal(pred.mask(index, 0.5, size), masks[index])


def test_a_prediction_holds_no_file_paths(video):
    pred = Predictor(FakeSelM()).predict(video)
    assert isinstance(pred, Prediction) and pred.source == str(video)
    held = [getattr(pred, f.name) for f in dataclasses.fields(pred)]
    assert not any(isinstance(value, Path) for value in held)
