"""Independent references shared by several test files (float64 NumPy transcriptions)."""

from __future__ import annotations

import numpy as np


def hz_to_mel(f):
    """HTK mel scale."""
    return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def reference_log_mel(wave: np.ndarray) -> np.ndarray:
    """VGGish's recipe, step by step, in float64: frames of 400 every 160, periodic Hann,
    |rfft| of length 512, triangles linear in mel between 125 and 7500 Hz, log(x + 0.01).
    (F, 64) for F = 1 + (len(wave) - 400) // 160."""
    wave = np.asarray(wave, dtype=np.float64)
    n = 1 + (len(wave) - 400) // 160
    frames = np.stack([wave[i * 160 : i * 160 + 400] for i in range(n)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    spec = np.abs(np.fft.rfft(frames * window, 512))
    bins_mel = hz_to_mel(np.linspace(0, 8000, 257))
    edges = np.linspace(hz_to_mel(125.0), hz_to_mel(7500.0), 66)
    mel = np.zeros((257, 64))
    for j in range(64):
        lo, c, hi = edges[j : j + 3]
        for i in range(1, 257):  # the DC bin gets no weight
            m = bins_mel[i]
            mel[i, j] = max(0.0, min((m - lo) / (c - lo), (hi - m) / (hi - c)))
    return np.log(spec @ mel + 0.01)
