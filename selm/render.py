"""Pictures and videos of a prediction: mask overlays, heat maps, token maps, overlay videos.

numpy + OpenCV + matplotlib colormaps only. Images are (H, W, 3) uint8 RGB; sizes are (W, H).
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import cv2
import matplotlib
import numpy as np

from selm.audio import SAMPLE_RATE
from selm.media import VideoStream, frame_to_rgb
from selm.palette import label_palette
from selm.state_dict import atomic_path

MASK_COLOR = (255, 64, 64)  # binary masks
TOKEN_COLORS = np.array(matplotlib.colormaps["tab10"].colors[:10]) * 255  # (10, 3) CLEVER tokens


def _labels_and_palette(mask: np.ndarray, colors: Sequence | None) -> tuple[np.ndarray, np.ndarray]:
    """A bool or integer-label mask -> (labels (H, W) int64, palette (L, 3) float64)."""
    if mask.dtype == bool:
        palette = np.array([(0, 0, 0), colors[0] if colors is not None else MASK_COLOR])
        return mask.astype(np.int64), palette.astype(np.float64)
    if np.issubdtype(mask.dtype, np.integer):
        labels = mask.astype(np.int64)
        palette = np.asarray(colors if colors is not None else label_palette(), dtype=np.float64)
        if labels.min(initial=0) < 0 or labels.max(initial=0) >= len(palette):
            raise ValueError(f"mask labels must lie in [0, {len(palette) - 1}]")
        return labels, palette
    raise ValueError(f"mask must be bool or integer labels, got {mask.dtype}: threshold it")


class MaskPainter:
    """One mask's overlay, worked out once and drawn on any number of frames of its size.

    The contours, the blend of every label's colour (a 256-entry lookup table per channel,
    holding exactly `rint((1 - alpha) * v + alpha * colour)`) and the outline pixels are found
    here; `paint` then costs a table lookup and two masked copies per label, in uint8, so the
    frames of one second share the work of its mask (see `overlay` for the look).
    """

    def __init__(self, mask: np.ndarray, alpha: float = 0.5, colors: Sequence | None = None):
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
        labels, palette = _labels_and_palette(mask, colors)
        self.shape = mask.shape
        thickness = max(1, round(max(mask.shape) / 300))
        values = np.arange(256, dtype=np.float64)[:, None]  # (256, 1)
        self.layers = []  # (box, table (1, 256, 3), blend mask, outline mask, colour image)
        present = np.flatnonzero(np.bincount(labels.ravel(), minlength=len(palette)))
        for label in present[present > 0]:
            region = labels == label
            color = np.asarray(palette[label], dtype=np.float64)
            table = np.clip(np.rint((1 - alpha) * values + alpha * color), 0, 255)
            outline = np.zeros(region.shape, np.uint8)
            contours, _ = cv2.findContours(
                region.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE
            )
            cv2.drawContours(outline, contours, -1, 1, 2 * thickness - 1)
            edge = (outline > 0) & region  # the inner half of the stroke only
            rows, cols = np.flatnonzero(region.any(1)), np.flatnonzero(region.any(0))
            box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            solid = np.empty((*region[box].shape, 3), np.uint8)
            solid[:] = np.clip(np.rint(color), 0, 255).astype(np.uint8)
            self.layers.append(
                (
                    box,
                    table.astype(np.uint8)[None],
                    (region & ~edge)[box].astype(np.uint8),
                    edge[box].astype(np.uint8),
                    solid,
                )
            )

    def paint(self, frame: np.ndarray, *, inplace: bool = False) -> np.ndarray:
        """(H, W, 3) uint8 frame -> the frame with the mask drawn (on `frame` itself if inplace)."""
        if frame.shape != (*self.shape, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"frame must be {(*self.shape, 3)} uint8 for this mask, got {frame.shape} "
                f"{frame.dtype}"
            )
        out = frame if inplace else frame.copy()
        for box, table, inner, edge, solid in self.layers:  # regions are disjoint
            view = out[box]
            cv2.copyTo(cv2.LUT(view, table), inner, view)
            cv2.copyTo(solid, edge, view)
        return out


def overlay(
    frame: np.ndarray, mask: np.ndarray, alpha: float = 0.5, colors: Sequence | None = None
) -> np.ndarray:
    """Blend a mask onto a frame and outline it -> (H, W, 3) uint8.

    mask (H, W): bool (binary: one colour, `colors[0]` or MASK_COLOR) or integer labels
    (label l gets `colors[l]`, default `label_palette()`; 0 stays transparent). The outline is
    drawn on the mask's own border pixels, so pixels outside the mask never change. For many
    frames with one mask, build a `MaskPainter` once.
    """
    frame = np.asarray(frame)
    mask = np.asarray(mask)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    if mask.shape != frame.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match the frame {frame.shape[:2]}")
    return MaskPainter(mask, alpha, colors).paint(frame)


def _resize(image: np.ndarray, size: tuple[int, int] | None, nearest: bool = False) -> np.ndarray:
    if size is None or tuple(size) == (image.shape[1], image.shape[0]):
        return image
    flag = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.resize(image, (int(size[0]), int(size[1])), interpolation=flag)


def colorize(
    map2d: np.ndarray,
    size: tuple[int, int] | None = None,
    cmap: str = "inferno",
    vmin: float | None = None,
    vmax: float | None = None,
    *,
    smooth: bool = False,
) -> np.ndarray:
    """A 2-D map (h, w) -> (H, W, 3) uint8 through a matplotlib colormap.

    Values are scaled from [vmin, vmax] (default: the map's own range) to [0, 1]; pass one
    shared (vmin, vmax) to compare maps by colour. Resized to size = (W, H) as cells (nearest:
    each of the h x w grid's values is one flat block), or bilinearly with smooth=True. A
    constant map gets the colormap's lowest colour.
    """
    values = np.asarray(map2d, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"colorize expects a 2-D map, got shape {values.shape}")
    finite = values[np.isfinite(values)]
    low = float(vmin if vmin is not None else (finite.min() if finite.size else 0.0))
    high = float(vmax if vmax is not None else (finite.max() if finite.size else 0.0))
    span = high - low
    scaled = (values - low) / span if span > 0 else np.zeros_like(values)
    scaled = np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 1.0).astype(np.float32)
    scaled = _resize(scaled, size, nearest=not smooth)
    return matplotlib.colormaps[cmap](scaled, bytes=True)[..., :3].copy()


def hit_map_image(hit: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """CLEVER token assignment (K, h, w) -> (H, W, 3) uint8, one colour per token (argmax),
    drawn as cells; token k has colour `TOKEN_COLORS[k % 10]` (see `token_legend`)."""
    hit = np.asarray(hit)
    if hit.ndim != 3:
        raise ValueError(f"hit map must be (K, h, w), got shape {hit.shape}")
    colors = np.array([TOKEN_COLORS[k % len(TOKEN_COLORS)] for k in range(hit.shape[0])])
    image = colors[hit.argmax(0)].astype(np.uint8)  # (h, w, 3)
    return _resize(image, size, nearest=True)


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.42) -> None:
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.2e}"


def colorbar(
    vmin: float,
    vmax: float,
    label: str,
    *,
    cmap: str = "inferno",
    width: int = 320,
) -> np.ndarray:
    """A horizontal colour bar from vmin (left) to vmax (right), its ends and middle labelled,
    and `label` (what the colour means, with its units) above -> (H, width, 3) uint8."""
    bar_h, top, height = 14, 20, 52
    image = np.full((height, width, 3), 255, np.uint8)
    margin = 8
    ramp = np.linspace(0.0, 1.0, width - 2 * margin)[None].repeat(bar_h, 0)
    image[top : top + bar_h, margin : width - margin] = matplotlib.colormaps[cmap](
        ramp, bytes=True
    )[..., :3]
    _text(image, label, (margin, 14))
    ticks = ((margin, vmin), ((width - 40) // 2, (vmin + vmax) / 2), (width - margin - 44, vmax))
    for x, value in ticks:
        _text(image, _number(value), (max(x, 0), top + bar_h + 14), 0.38)
    return image


def token_legend(num_tokens: int, *, width: int = 320) -> np.ndarray:
    """Swatches of CLEVER's token colours (as `hit_map_image` draws them) -> uint8 RGB."""
    per_row = max(1, (width - 8) // 76)
    rows = math.ceil(num_tokens / per_row)
    image = np.full((20 + 20 * rows, width, 3), 255, np.uint8)
    _text(image, "CLEVER: the token each pixel is assigned to", (8, 14))
    for k in range(num_tokens):
        x, y = 8 + 76 * (k % per_row), 22 + 20 * (k // per_row)
        image[y : y + 14, x : x + 14] = TOKEN_COLORS[k % len(TOKEN_COLORS)].astype(np.uint8)
        _text(image, f"token {k}", (x + 18, y + 12), 0.38)
    return image


def panel(images: Sequence[np.ndarray], labels: Sequence[str], gap: int = 4) -> np.ndarray:
    """A row of images at the first one's height, each with its label above -> uint8 RGB."""
    if len(images) != len(labels) or not images:
        raise ValueError(f"panel needs one label per image, got {len(images)} and {len(labels)}")
    height = images[0].shape[0]
    strip = 22
    tiles = []
    for image, label in zip(images, labels):
        width = max(1, round(image.shape[1] * height / image.shape[0]))
        tile = np.full((strip + height, width, 3), 255, np.uint8)
        tile[strip:] = _resize(np.asarray(image, np.uint8), (width, height))
        cv2.putText(
            tile, str(label), (3, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA
        )
        tiles.append(tile)
        tiles.append(np.full((strip + height, gap, 3), 255, np.uint8))
    return np.concatenate(tiles[:-1], axis=1)


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


def paint_frames(
    frames: Sequence[tuple[float | Fraction, np.ndarray]],
    masks: np.ndarray,
    first_second: int = 0,
    alpha: float = 0.5,
) -> Iterator[tuple[float | Fraction, np.ndarray]]:
    """Draw on each (time, (H, W, 3) uint8) frame the mask of the second it falls in:
    masks[k] (H, W) is second first_second + k; times before or after the masks take the
    first or last one. The masks' work (contours, colour tables) is done once per second;
    frames are drawn one at a time, as they are asked for (a generator: one copy alive)."""
    painters: dict[int, MaskPainter] = {}
    last = len(masks) - 1
    for time, frame in frames:
        index = min(max(math.floor(time) - first_second, 0), last)
        if index not in painters:
            painters[index] = MaskPainter(masks[index], alpha)
        yield time, painters[index].paint(frame)


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
    width, height = size if size is not None else pred.size
    width, height = int(width), int(height)
    masks = pred.masks(threshold, size=(width, height))  # (T, H, W) bool or class ids
    source = Path(pred.source)
    if getattr(pred, "in_memory", False):  # a clip that is no file: its own frames
        frames = [(float(t), _resize(f, (width, height))) for t, f in zip(pred.times, pred.frames)]
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
