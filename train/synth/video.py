"""mp4 clips of AVS-Synth scenes (H.264 + AAC, PyAV) for the demo.

The scene is rendered at every video frame's instant k / fps; at 24 fps the frames 24 i + 21 fall
exactly on AVSBench's sampling instants i + 14/16, so a model reading the mp4 sees the PNGs.
"""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np

from train.synth.scenes import Renderer
from train.synth.sounds import SR

AAC_FRAME = 1024  # samples per AAC frame


def write_mp4(
    path: str | os.PathLike, renderer: Renderer, seconds: int, wave: np.ndarray, fps: int = 24
) -> None:
    """Render `seconds` of the clip at `fps` and mux it with `wave` ((S,) float, 16 kHz)."""
    if renderer.size % 2:
        raise ValueError(f"mp4 needs an even frame size, got {renderer.size}")
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width = video.height = renderer.size
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "18", "preset": "veryfast", "threads": "1"}  # 1: reproducible
        audio = container.add_stream("aac", rate=SR)
        audio.layout = "mono"
        for k in range(seconds * fps):
            rgb, _ = renderer(k / fps)
            image = np.round(rgb * 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            container.mux(video.encode(frame))
        samples = np.asarray(wave, dtype=np.float32)
        for start in range(0, samples.size, AAC_FRAME):
            chunk = samples[start : start + AAC_FRAME][None, :]
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = SR
            frame.pts = start
            frame.time_base = Fraction(1, SR)
            container.mux(audio.encode(frame))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
