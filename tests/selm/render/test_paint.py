import os
import warnings
from fractions import Fraction

import av
import matplotlib
import numpy as np
import pytest

from selm.files import DiskFullError
from selm.inference.predictor import Prediction
from selm.media.container import MediaError
from selm.media.video import frame_times
from selm.media.writer import open_writer
from selm.render.paint import (
    MASK_COLOR,
    TOKEN_COLORS,
    colorize,
    hit_map_image,
    label_palette,
    overlay,
    panel,
    write_overlay_video,
)


def test_overlay_binary_by_hand():
    frame = np.full((10, 12, 3), 100, np.uint8)
    frame[0, 0] = (7, 8, 9)
    mask = np.zeros((10, 12), bool)
    mask[2:7, 3:9] = True  # 5 x 6 block
    out = overlay(frame, mask, alpha=0.5)
    np.testing.assert_array_equal(out[~mask], frame[~mask])  # outside: untouched
    border = mask.copy()
    border[3:6, 4:8] = False  # the block's 1-pixel rim is the outline
    np.testing.assert_array_equal(out[border], np.tile(MASK_COLOR, (border.sum(), 1)))
    blended = np.rint(0.5 * 100 + 0.5 * np.array(MASK_COLOR)).astype(np.uint8)
    np.testing.assert_array_equal(out[3:6, 4:8], np.broadcast_to(blended, (3, 4, 3)))


def test_overlay_labels_use_the_palette_and_leave_0_transparent():
    frame = np.zeros((8, 8, 3), np.uint8)
    labels = np.zeros((8, 8), np.int64)
    labels[:, :4] = 1
    labels[:, 6:] = 2
    colors = [(0, 0, 0), (200, 0, 0), (0, 0, 240)]
    out = overlay(frame, labels, alpha=1.0, colors=colors)
    assert (out[:, :4] == (200, 0, 0)).all() and (out[:, 6:] == (0, 0, 240)).all()
    assert (out[:, 4:6] == 0).all()
    default = overlay(frame, labels, alpha=1.0)
    assert (default[:, :4] == label_palette()[1]).all()


def test_overlay_rejects_bad_masks():
    frame = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="threshold it"):
        overlay(frame, np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="does not match"):
        overlay(frame, np.zeros((4, 5), bool))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        overlay(frame, np.full((4, 4), 2), colors=[(0, 0, 0), (1, 1, 1)])


def test_label_palette_is_the_voc_bit_shift_palette():
    palette = label_palette(21)
    assert palette[0].tolist() == [0, 0, 0] and palette[1].tolist() == [128, 0, 0]
    assert palette[2].tolist() == [0, 128, 0] and palette[3].tolist() == [128, 128, 0]
    assert palette[15].tolist() == [192, 128, 128]  # VOC "person"


def test_colorize_ends_sizes_and_constant_maps():
    cmap = matplotlib.colormaps["inferno"]
    lowest = np.array(cmap(0.0, bytes=True)[:3])
    highest = np.array(cmap(1.0, bytes=True)[:3])
    ramp = colorize(np.array([[0.0, 2.0], [0.0, 2.0]]))
    assert ramp.shape == (2, 2, 3) and ramp.dtype == np.uint8
    assert (ramp[:, 0] == lowest).all() and (ramp[:, 1] == highest).all()
    clipped = colorize(np.array([[-5.0, 5.0]]), vmin=0.0, vmax=1.0)
    assert (clipped[0, 0] == lowest).all() and (clipped[0, 1] == highest).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flat = colorize(np.full((3, 3), 7.0), size=(20, 10))
    assert flat.shape == (10, 20, 3) and (flat == lowest).all()
    big = colorize(np.arange(16.0).reshape(4, 4), size=(8, 8), cmap="viridis")
    assert big.shape == (8, 8, 3)


def test_hit_map_image_colours_the_argmax_token():
    hit = np.zeros((2, 2, 2))
    hit[0, 0, :] = 1.0  # top row: token 0
    hit[1, 1, :] = 1.0  # bottom row: token 1
    image = hit_map_image(hit, size=(4, 4))
    assert image.shape == (4, 4, 3)
    assert (image[:2] == TOKEN_COLORS[0].astype(np.uint8)).all()
    assert (image[2:] == TOKEN_COLORS[1].astype(np.uint8)).all()


def test_panel_is_a_labelled_row():
    a, b = np.zeros((10, 12, 3), np.uint8), np.zeros((20, 8, 3), np.uint8)
    row = panel([a, b], ["frame", "mask"], gap=4)
    assert row.shape == (22 + 10, 12 + 4 + 4, 3)
    assert (row[:22] < 128).any()  # the labels are drawn on the white strip
    assert (row[22:, :12] == 0).all() and (row[22:, 12:16] == 255).all()
    with pytest.raises(ValueError, match="one label per image"):
        panel([a], ["x", "y"])


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
    with pytest.raises(ValueError, match="needs size and fps"):
        with open_writer(tmp_path / "x.mp4", size=(4, 4)):
            pass


def _write_clip(path, *, threaded, frames, wave):
    with open_writer(path, size=(64, 48), fps=10, sample_rate=16000, threaded=threaded) as out:
        out.write_audio(wave)
        for i, image in enumerate(frames):
            out.write_frame(image, Fraction(i, 10))


def test_threaded_encoder_writes_the_same_bytes_as_the_calling_thread(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(25)]
    wave = 0.3 * np.sin(np.arange(40000) / 16000 * 2 * np.pi * 440).astype(np.float32)
    _write_clip(tmp_path / "threaded.mp4", threaded=True, frames=frames, wave=wave)
    _write_clip(tmp_path / "inline.mp4", threaded=False, frames=frames, wave=wave)
    threaded = (tmp_path / "threaded.mp4").read_bytes()
    assert threaded == (tmp_path / "inline.mp4").read_bytes()
    with av.open(str(tmp_path / "threaded.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in c.decode(video=0)) == 25
        assert c.streams.audio


class _FailingMux:
    """A container whose mux fails at the third call, as a full disk would."""

    def __init__(self, container):
        self.container, self.calls = container, 0

    def mux(self, packets):
        self.calls += 1
        if self.calls == 3:
            raise OSError(28, "No space left on device")
        return self.container.mux(packets)

    def __getattr__(self, name):
        return getattr(self.container, name)


def test_an_encoder_thread_error_reaches_the_writer_and_leaves_no_file(tmp_path):
    frames = [np.full((48, 64, 3), i, np.uint8) for i in range(60)]
    target = tmp_path / "out.mp4"
    with pytest.raises(DiskFullError, match="no space left on"):  # atomic_path's wording
        with open_writer(target, size=(64, 48), fps=10) as out:
            assert out._thread is not None and out._thread.is_alive()
            out.container = _FailingMux(out.container)
            for i, image in enumerate(frames):  # raised by a later write or by flush
                out.write_frame(image, Fraction(i, 10))
    assert out._thread is None  # stopped, not left running
    assert os.listdir(tmp_path) == []
