"""selm.render.overlay: the overlay writer consuming the predictor's windows, and the redraw of
a finished prediction."""

import os
from fractions import Fraction

import av
import numpy as np
import pytest
from fake_selm import FPS, RECT, SECONDS, FakeSelM, H, W, predict_with_overlay

from selm.inference.prediction import Prediction
from selm.inference.predictor import Predictor
from selm.media.container import MediaError
from selm.media.video import Clip, frame_times
from selm.media.writer import open_writer
from selm.render.overlay import OverlayVideo, write_overlay_video


def test_one_pass_overlay_matches_a_redraw(video, tmp_path):
    """OverlayVideo draws in the predicting pass what write_overlay_video draws again later,
    and reports its stages through the windows' clock."""
    seen = []
    pred = predict_with_overlay(
        Predictor(FakeSelM()), video, tmp_path / "a.mp4", progress=lambda f, m: seen.append((f, m))
    )
    assert [m.split(":")[0] for _, m in seen] == ["decode", "model", "render", "encode"] * 2
    assert all(b > a for (a, _), (b, _) in zip(seen, seen[1:])) and seen[-1][0] == 1.0
    assert set(pred.timings) == {"decode", "log-mel", "model", "render", "encode"}
    write_overlay_video(pred, tmp_path / "b.mp4")
    decoded = []
    for name in ("a.mp4", "b.mp4"):
        with av.open(str(tmp_path / name)) as container:
            frames = [(f.time, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
        decoded.append(frames)
    assert len(decoded[0]) == len(decoded[1]) == SECONDS * FPS
    for (ta, a), (tb, b) in zip(*decoded):
        assert ta == pytest.approx(tb, abs=1e-6)
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2  # same frames, same encoder


def test_an_in_memory_clip_renders_its_own_frames(tmp_path):
    frames = np.zeros((3, H, W, 3), np.uint8)
    frames[:, RECT[0], RECT[1]] = 255
    clip = Clip(
        frames=frames,
        times=frame_times(3),
        waveform=np.full(3 * 16000, 0.1, np.float32),
        duration=3.0,
        fps=1.0,
        width=W,
        height=H,
        source="in memory",
    )
    pred = Predictor(FakeSelM()).predict(clip)
    assert pred.in_memory
    out = write_overlay_video(pred, tmp_path / "clip.mp4")
    with av.open(str(out)) as container:
        images = [(f.time, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    assert [t for t, _ in images] == [0.0, 1.0, 2.0]
    for _, image in images:  # the bright object is drawn red
        centre = image[16, 28].astype(int)
        assert centre[0] - centre[1] > 60


def test_windows_without_video_frames_are_refused(video, tmp_path):
    windows = Predictor(FakeSelM()).windows(video)  # video_frames=False
    with pytest.raises(ValueError, match="video_frames=True"):
        with OverlayVideo(tmp_path / "o.mp4") as overlay:
            overlay.add(next(windows))
    assert not (tmp_path / "o.mp4").exists()  # nothing half written


def source_video(path, fps, count, size=(161, 97)):
    w, h = size
    with open_writer(path, size=size, fps=fps, pix_fmt="yuv444p") as out:
        for _ in range(count):
            out.write_frame(np.full((h, w, 3), 90, np.uint8))
    return path


def prediction(source, seconds, size, fps):
    w, h = size
    probs = np.zeros((seconds, 1, h, w), np.float32)
    probs[0, 0, :, : w // 2] = 0.9  # second 0: left half; second 1: nothing; then everything
    probs[2:] = 0.8
    t = np.arange(round(seconds * 16000)) / 16000
    return Prediction(
        frames=np.full((seconds, h, w, 3), 90, np.uint8),
        times=frame_times(seconds),
        probs=probs,
        hit_maps=[],
        dam_maps=None,
        bcsm=None,
        waveform=(0.4 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32),
        audio_label="noise",
        fps=float(fps),
        source=str(source),
        duration=float(seconds),
    )


@pytest.mark.parametrize("fps,seconds", [(Fraction(7), 3), (Fraction(30000, 1001), 2)])
def test_write_overlay_video(tmp_path, fps, seconds):
    count = round(seconds * fps)
    source = source_video(tmp_path / "src.mp4", fps, count)
    target = write_overlay_video(
        prediction(source, seconds, (161, 97), fps), tmp_path / "out" / "overlay.mp4"
    )
    assert target == tmp_path / "out" / "overlay.mp4" and os.listdir(target.parent) == [target.name]
    with av.open(str(target)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and video.average_rate == fps
        assert (video.width, video.height) == (162, 98)  # even sides for yuv420p
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in container.decode(video)]
    assert len(frames) == count
    for time, image in frames:
        second = int(np.floor(time + 1e-9))
        left, right = image[40, 20].astype(int), image[40, 140].astype(int)
        if second == 1:  # no mask: the source's grey
            assert np.abs(left - 90).max() <= 4 and np.abs(right - 90).max() <= 4
        else:  # masked pixels move towards MASK_COLOR (red)
            assert left[0] - left[1] > 60
            assert (right[0] - right[1] > 60) == (second >= 2)
    with av.open(str(target)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
        wave = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])
    assert audio.sample_rate == 16000
    assert len(wave) / 16000 == pytest.approx(seconds, abs=0.07)
    spectrum = np.abs(np.fft.rfft(wave))
    assert np.argmax(spectrum) * 16000 / len(wave) == pytest.approx(1000, abs=3)


@pytest.mark.parametrize("mask_size", [(161, 97), (40, 24)])
def test_write_overlay_video_at_a_chosen_size(tmp_path, mask_size):
    """size=(W, H): source frames (161 x 97) and masks (at their own size) are resized to it."""
    fps, seconds = Fraction(5), 3
    source = source_video(tmp_path / "src.mp4", fps, seconds * 5)
    pred = prediction(source, seconds, mask_size, fps)
    target = write_overlay_video(pred, tmp_path / "small.mp4", size=(80, 48))
    with av.open(str(target)) as container:
        video = container.streams.video[0]
        assert (video.width, video.height) == (80, 48)
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in container.decode(video)]
    assert len(frames) == seconds * 5
    for time, image in frames:
        second = int(np.floor(time + 1e-9))
        left, right = image[24, 10].astype(int), image[24, 70].astype(int)
        if second == 1:  # no mask: the source's grey
            assert np.abs(left - 90).max() <= 4 and np.abs(right - 90).max() <= 4
        else:  # second 0: the left half only; second 2: all of it
            assert left[0] - left[1] > 60
            assert (right[0] - right[1] > 60) == (second >= 2)


def test_failed_write_leaves_nothing(tmp_path):
    pred = prediction(tmp_path / "gone.mp4", 2, (16, 16), 5)
    with pytest.raises(MediaError, match="no such file"):
        write_overlay_video(pred, tmp_path / "overlay.mp4")
    assert os.listdir(tmp_path) == []
