"""mp4 clips of AVS-Synth scenes (H.264 + AAC, through selm's media writer) for the demo.

The scene is rendered at every video frame's instant k / fps; at 24 fps the frames 24 i + 21 fall
exactly on AVSBench's sampling instants i + 14/16, so a model reading the mp4 sees the PNGs.
"""

from __future__ import annotations

import os

import numpy as np

from selm.media.writer import open_writer
from train.synth.scenes import Renderer
from train.synth.sounds import SR

# one encoder thread: the same clip gives the same bytes on any machine
VIDEO_OPTIONS = {"crf": "18", "preset": "veryfast", "threads": "1"}


def write_mp4(
    path: str | os.PathLike, renderer: Renderer, seconds: int, wave: np.ndarray, fps: int = 24
) -> None:
    """Render `seconds` of the clip at `fps` and mux it with `wave` ((S,) float, 16 kHz)."""
    if renderer.size % 2:
        raise ValueError(f"mp4 needs an even frame size, got {renderer.size}")
    size = (renderer.size, renderer.size)
    with open_writer(
        path, size=size, fps=fps, sample_rate=SR, video_options=VIDEO_OPTIONS
    ) as writer:
        for k in range(seconds * fps):
            rgb, _ = renderer(k / fps)
            writer.write_frame(np.round(rgb * 255).astype(np.uint8))
        writer.write_audio(np.asarray(wave, dtype=np.float32))
