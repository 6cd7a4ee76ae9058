"""The label colours of AVSBench-semantic: PASCAL VOC's bit-shift palette (one home for the data
loaders, which read label PNGs by colour, and the renderer, which draws them)."""

from __future__ import annotations

import numpy as np


def label_palette(num: int = 256) -> np.ndarray:
    """(num, 3) uint8: class 0 black; bit j of the class id goes to bit 7 - j // 3 of channel
    j % 3 (the VOC colour map AVSBench uses for its labels)."""
    ids = np.arange(num)
    palette = np.zeros((num, 3), dtype=np.int64)
    for bit in range(8):  # 8 rounds of 3 bits cover ids < 2**24
        for channel in range(3):
            palette[:, channel] |= ((ids >> (3 * bit + channel)) & 1) << (7 - bit)
    return palette.astype(np.uint8)
