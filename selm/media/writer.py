"""Writing video and audio files: `open_writer` and its `MediaWriter`, which encodes RGB frames
(H.264, yuv420p by default) and waveforms (AAC) in a worker thread, atomically (the file
appears only when writing ends without an error)."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction

import av
import cv2
import numpy as np

from selm.files import atomic_path

# x264's settings for overlay videos: `ultrafast` encodes a 640 x 360 frame ~2.7x faster than
# `veryfast` (benchmarks/README.md) for ~2x the bytes; crf 23 is x264's own default quality
X264_OPTIONS = {"crf": "23", "preset": "ultrafast"}
_QUEUE_FRAMES = 8  # frames waiting for the encoder thread: memory stays a few frames


class MediaWriter:
    """Encodes RGB frames and/or a waveform into an open output container (see `open_writer`).

    With `threaded` (the default) one worker thread encodes and muxes, in the order written,
    while the caller decodes and draws the next frames (PyAV releases the GIL in the encoder):
    `write_*` only convert and queue (at most a few frames wait). An encoder error is raised by
    the next `write_*`, by `flush` or by `close`; `close` always stops the thread."""

    def __init__(
        self,
        container,
        *,
        size,
        fps,
        sample_rate,
        channels,
        video_codec,
        audio_codec,
        pix_fmt,
        rotation,
        video_options=None,
        time_base=None,
        threaded=True,
    ) -> None:
        self.container = container
        self.video = self.audio = None
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.frames_written = self.samples_written = 0
        self.last_pts: int | None = None
        if size is not None:
            width, height = int(size[0]), int(size[1])
            if pix_fmt.endswith("420p"):  # chroma at half resolution needs even sides
                width, height = width + width % 2, height + height % 2
            rate = Fraction(fps).limit_denominator(1001)
            self.rate = rate
            self.video = container.add_stream(video_codec, rate=rate)
            self.video.width, self.video.height, self.video.pix_fmt = width, height, pix_fmt
            # 1 / fps by default; a source's own time base keeps its timestamps exact (VFR)
            self.time_base = Fraction(time_base) if time_base else 1 / rate
            self.video.codec_context.time_base = self.time_base
            self.video.time_base = self.time_base
            if video_options is not None:
                self.video.options = dict(video_options)
            elif video_codec == "libx264":
                self.video.options = dict(X264_OPTIONS)
            if rotation:
                self.video.set_display_rotation(rotation)
        if sample_rate is not None:
            self.audio = container.add_stream(audio_codec, rate=int(sample_rate))
            self.audio.layout = "mono" if channels == 1 else "stereo"
        if threaded:
            self._queue = queue.Queue(maxsize=_QUEUE_FRAMES)
            self._thread = threading.Thread(target=self._work, name="selm-encoder", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        """The encoder thread: (stream, frame) items until None; after an error it only drains
        the queue, so that the writing thread never blocks on a full one."""
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self.container.mux(item[0].encode(item[1]))
                except BaseException as err:  # raised in the writing thread
                    self._error = err

    def _encode(self, stream, frame) -> None:
        if self._error is not None:
            raise self._error
        if self._queue is None:
            self.container.mux(stream.encode(frame))
        else:
            self._queue.put((stream, frame))

    def _stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error

    def write_frame(self, rgb: np.ndarray, time: float | Fraction | None = None) -> None:
        """(H, W, 3) uint8 -> the next frame, shown from `time` seconds (default: the frame
        count / fps); odd sides are padded with the edge pixels. Times must increase."""
        pad_h, pad_w = self.video.height - rgb.shape[0], self.video.width - rgb.shape[1]
        if pad_h or pad_w:
            rgb = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        rgb = np.ascontiguousarray(rgb)
        if self.video.pix_fmt == "yuv420p":  # OpenCV's BT.601 (limited range, as swscale's
            # default) in ~0.3 ms; swscale's rgb24 -> yuv420p took ~5.6 ms at 640 x 360
            frame = av.VideoFrame.from_ndarray(
                cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), format="yuv420p"
            )
        else:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        if time is None:
            time = self.frames_written / self.rate
        pts = round(Fraction(time) / self.time_base)
        if self.last_pts is not None and pts <= self.last_pts:
            raise ValueError(f"frame times must increase: {float(time):.6f} s after a later one")
        frame.pts, frame.time_base, self.last_pts = pts, self.time_base, pts
        self.frames_written += 1
        self._encode(self.video, frame)

    def write_audio(self, waveform: np.ndarray) -> None:
        """(S,) or (C, S) float samples in [-1, 1] appended to the audio stream."""
        wave = np.atleast_2d(np.asarray(waveform, dtype=np.float32))
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(np.clip(wave, -1, 1)), format="fltp", layout=self.audio.layout
        )
        frame.sample_rate = self.audio.rate
        frame.pts = self.samples_written
        frame.time_base = Fraction(1, self.audio.rate)
        self.samples_written += wave.shape[1]
        self._encode(self.audio, frame)

    def flush(self) -> None:
        """Every queued frame encoded, then the encoders drained into the container."""
        self._stop()
        for stream in (self.video, self.audio):
            if stream is not None:
                self.container.mux(stream.encode(None))

    def close(self) -> None:
        """Stop the encoder thread (queued frames are still encoded); raises its error."""
        self._stop()


@contextmanager
def open_writer(
    path: str | os.PathLike,
    *,
    size: tuple[int, int] | None = None,
    fps: float | Fraction | None = None,
    sample_rate: int | None = None,
    channels: int = 1,
    video_codec: str = "libx264",
    audio_codec: str = "aac",
    pix_fmt: str = "yuv420p",
    rotation: int = 0,
    video_options: dict[str, str] | None = None,
    time_base: Fraction | None = None,
    threaded: bool = True,
) -> Iterator[MediaWriter]:
    """A `MediaWriter` for `path` (format from its suffix): a video stream when size = (W, H)
    and fps are given, an audio stream when sample_rate is. `video_options`: encoder options
    (default for x264: X264_OPTIONS). `time_base`: seconds per tick of the frame times
    (default 1 / fps; give the source's to keep its timestamps exact). `threaded`: encode in a
    worker thread (MediaWriter). The file appears only when the block ends without an error
    (temp file beside it + os.replace)."""
    if (size is None) != (fps is None) or (size is None and sample_rate is None):
        raise ValueError("open_writer needs size and fps (video) and/or sample_rate (audio)")
    with atomic_path(path) as tmp:
        options = {"movflags": "+faststart"} if tmp.suffix.lower() in (".mp4", ".mov") else {}
        container = av.open(str(tmp), "w", options=options)
        try:
            writer = MediaWriter(
                container,
                size=size,
                fps=fps,
                sample_rate=sample_rate,
                channels=channels,
                video_codec=video_codec,
                audio_codec=audio_codec,
                pix_fmt=pix_fmt,
                rotation=rotation,
                video_options=video_options,
                time_base=time_base,
                threaded=threaded,
            )
        except BaseException:
            container.close()
            raise
        try:
            yield writer
            writer.flush()
        finally:
            try:
                writer.close()
            finally:
                container.close()
