"""Overlay videos: the masks of each second drawn on every frame shown in it, encoded (H.264,
yuv420p) with the audio the model heard (AAC), at the source's own frame times.

`OverlayVideo` is a consumer of `Predictor.windows(..., video_frames=True)`: it draws and
encodes each window as it comes, in the pass that predicts, so the video is decoded once and
memory holds one window. `write_overlay_video` draws a finished `Prediction` again (another
threshold, another size) by decoding its source a second time.
"""

from __future__ import annotations

import math
import os
from contextlib import ExitStack
from pathlib import Path

from selm.inference.options import check_output_video, check_size, check_threshold
from selm.inference.prediction import probs_to_masks
from selm.media.video import VideoStream, frame_to_rgb
from selm.media.writer import open_writer
from selm.render.paint import paint_frames, resize_image
from selm.transforms.log_mel import SAMPLE_RATE


class OverlayVideo:
    """Writes an overlay video from a stream of windows:

        with OverlayVideo("out.mp4", threshold=0.5) as overlay:
            pred = Prediction.from_windows(
                predictor.windows(video, video_frames=True), overlay.add
            )

    Each window's masks (p > threshold, or the argmax class) are drawn on its frames (colours
    and outlines worked out once per second) and encoded at the frames' own timestamps, after
    the window's piece of the heard audio. The file appears only when the block ends without an
    error (selm.media.writer). The path must name a video file (VIDEO_SUFFIXES) and the
    threshold lie strictly between 0 and 1: both are checked here, before any window."""

    def __init__(self, path: str | os.PathLike, *, threshold: float = 0.5, alpha: float = 0.5):
        self.path = check_output_video(path)
        self.threshold, self.alpha = check_threshold(threshold), alpha
        self._stack = ExitStack()
        self._writer = None

    def __enter__(self) -> OverlayVideo:
        return self

    def __exit__(self, *exc) -> bool | None:
        return self._stack.__exit__(*exc)

    def add(self, window) -> None:
        """Draw and encode one window (`selm.inference.windows.Window`)."""
        if window.video is None:
            raise ValueError(
                "the window holds no video frames to draw on: ask the predictor for them "
                "(Predictor.windows(..., video_frames=True))"
            )
        source, clock = window.source, window.clock
        if self._writer is None:
            self._writer = self._stack.enter_context(
                open_writer(
                    self.path,
                    size=source.size,
                    fps=source.fps,
                    sample_rate=SAMPLE_RATE,
                    time_base=source.time_base,
                )
            )
        self._writer.write_audio(window.audio)
        width, height = source.size
        masks = probs_to_masks(window.probs, (height, width), self.threshold)
        clock.stage("render")
        for when, image in paint_frames(window.video, masks, window.start, self.alpha):
            clock.stage("render")
            self._writer.write_frame(image, when)
            clock.stage("encode")
        window.report("render")
        window.report("encode")


def write_overlay_video(
    pred,
    out_path: str | os.PathLike,
    threshold: float = 0.5,
    *,
    size: tuple[int, int] | None = None,
) -> Path:
    """Draw on a video the mask of the second each frame falls in, and write H.264 (yuv420p)
    + the audio the model heard (AAC) -> path. (`Predictor.predict(..., overlay=path)` writes
    the same video in the pass that predicts; this is for a prediction already made, e.g. at
    another threshold.)

    The source video is decoded again, at its own frame times (a variable frame rate is
    kept); a prediction of an in-memory `Clip` (`pred.in_memory`) has no source to decode, so
    its own sampled frames are drawn, one per second. size = (W, H) of the video
    written, default the frames' size: frames are scaled to it while decoding (area), masks
    are resized to it from the probabilities (bilinear, then thresholded)."""
    out_path, threshold = check_output_video(out_path), check_threshold(threshold)
    width, height = check_size(size) if size is not None else pred.size
    masks = pred.masks(threshold, size=(width, height))  # (T, H, W) bool or class ids
    source = Path(pred.source)
    if getattr(pred, "in_memory", False):  # a clip that is no file: its own frames
        frames = [
            (float(t), resize_image(f, (width, height))) for t, f in zip(pred.times, pred.frames)
        ]
        with open_writer(out_path, size=(width, height), fps=1, sample_rate=SAMPLE_RATE) as out:
            out.write_audio(pred.waveform)
            for second, (_, image) in enumerate(paint_frames(frames, masks)):
                out.write_frame(image, second)
        return Path(out_path)
    with VideoStream(source) as video:
        with open_writer(
            out_path,
            size=(width, height),
            fps=pred.fps,
            sample_rate=SAMPLE_RATE,
            time_base=video.time_base,
        ) as out:
            out.write_audio(pred.waveform)
            second, batch = None, []
            for time, frame in video.frames():
                if math.floor(time) != second and batch:
                    for when, image in paint_frames(batch, masks):
                        out.write_frame(image, when)
                    batch.clear()
                second = math.floor(time)
                batch.append((time, frame_to_rgb(frame, (width, height))))
            for when, image in paint_frames(batch, masks):
                out.write_frame(image, when)
    return Path(out_path)
