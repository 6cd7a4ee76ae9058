"""What the demo's tests share: a run through `app.actions` with the demo's limits and display
size, and the IoU of two masks."""

import numpy as np

from app import actions
from app.actions import AudioRequest
from app.validation import Limits

LIMITS = Limits(max_seconds=60)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def run(predictor, video, audio=None, **kw):
    kw = {"limits": LIMITS, "max_side": 480, **kw}
    return actions.run_model(predictor, video, audio or AudioRequest(), **kw)
