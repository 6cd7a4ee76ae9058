"""selm.media.video: the frame at i + 14/16 s of each second, rotation, colour conversion, and
clear errors for files that are no video."""

import math
import subprocess
from fractions import Fraction

import av
import numpy as np
import pytest
from signals import peak_hz, sine

from selm.media.audio import read_audio
from selm.media.container import MediaError, MediaWarning
from selm.media.video import FRAME_OFFSET, VideoStream, frame_times, frame_to_rgb, read_video
from selm.media.writer import open_writer


def coded_frame(index: int, width: int, height: int) -> np.ndarray:
    """A frame whose top-right patch encodes `index` in R and G; a square moves below it."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = 16 * (index % 16) + 8
    image[..., 1] = 16 * (index // 16) + 8
    image[..., 2] = 128
    x = (3 * index) % (width - 8)
    image[height - 10 : height - 2, x : x + 8] = 255
    return image


def decode_index(image: np.ndarray) -> int:
    red, green = image[2:8, -8:-2, 0].mean(), image[2:8, -8:-2, 1].mean()
    return round((red - 8) / 16) + 16 * round((green - 8) / 16)


def make_video(
    path,
    *,
    fps,
    count,
    size,
    codec="libx264",
    pix_fmt="yuv444p",
    audio=None,
    rate=44100,
    freq=440.0,
):
    with open_writer(
        path,
        size=size,
        fps=fps,
        sample_rate=rate if audio else None,
        channels=2,
        video_codec=codec,
        audio_codec=audio or "aac",
        pix_fmt=pix_fmt,
    ) as out:
        if audio:
            out.write_audio(sine(freq, count / fps, rate))
        for index in range(count):
            out.write_frame(coded_frame(index, *size))
    return path


FORMATS = [  # suffix, video codec, pixel format, audio codec, rate, fps, frames, (W, H), sine Hz
    (".mp4", "libx264", "yuv444p", "aac", 44100, Fraction(7), 20, (161, 97), 440.0),
    (
        ".webm",
        "libvpx-vp9",
        "yuv420p",
        "libopus",
        48000,
        Fraction(30000, 1001),
        69,
        (160, 96),
        1000.0,
    ),
    (".mkv", "ffv1", "yuv444p", "flac", 22050, Fraction(8), 23, (161, 97), 700.0),
    (".avi", "mpeg4", "yuv420p", "pcm_s16le", 16000, Fraction(7), 14, (160, 96), 440.0),
    (".mov", "libx264", "yuv420p", None, 0, Fraction(30000, 1001), 60, (160, 96), 0.0),
]


@pytest.mark.parametrize("fmt", FORMATS, ids=[f[0] for f in FORMATS])
def test_read_video_samples_the_frame_at_14_16_of_each_second(tmp_path, fmt):
    suffix, codec, pix_fmt, audio, rate, fps, count, size, freq = fmt
    path = make_video(
        tmp_path / f"clip{suffix}",
        fps=fps,
        count=count,
        size=size,
        codec=codec,
        pix_fmt=pix_fmt,
        audio=audio,
        rate=rate,
        freq=freq,
    )
    clip = read_video(path)
    duration = count / fps
    seconds = math.ceil(duration - 0.05)  # 60 frames at 29.97 fps (2.002 s) are 2 seconds
    assert clip.frames.shape == (seconds, size[1], size[0], 3) and clip.frames.dtype == np.uint8
    assert (clip.width, clip.height) == size
    np.testing.assert_allclose(clip.times, np.arange(seconds) + 14 / 16)
    assert clip.duration == pytest.approx(float(duration), abs=1e-3)
    assert clip.fps == pytest.approx(float(fps))
    # frame k is shown from k / fps on: the sample of second i is frame floor((i + 14/16) fps),
    # or the last frame when that instant lies past the end
    expected = [min(math.floor((i + Fraction(14, 16)) * fps), count - 1) for i in range(seconds)]
    assert [decode_index(f) for f in clip.frames] == expected
    assert clip.has_audio == bool(audio)
    if audio:
        assert clip.waveform.dtype == np.float32 and clip.waveform.ndim == 1
        assert len(clip.waveform) / 16000 == pytest.approx(float(duration), abs=0.08)
        assert peak_hz(clip.waveform) == pytest.approx(freq, abs=3.0)


def test_frame_times_and_a_two_second_clip(tmp_path):
    assert FRAME_OFFSET == 14 / 16
    np.testing.assert_array_equal(frame_times(3), [0.875, 1.875, 2.875])
    clip = read_video(make_video(tmp_path / "two.mp4", fps=16, count=32, size=(48, 32)))
    assert len(clip.frames) == 2 and clip.num_seconds == 2
    assert [decode_index(f) for f in clip.frames] == [14, 30]  # the 15th of 16 sub-samples


def test_rotation_matches_ffmpeg_autorotate(tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    image = np.zeros((24, 40, 3), np.uint8)
    image[:, :20, 0] = 255
    image[:12, 20:, 1] = 255
    path = tmp_path / "rotated.mp4"
    with open_writer(path, size=(40, 24), fps=5, pix_fmt="yuv444p", rotation=90) as out:
        for _ in range(5):
            out.write_frame(image)
    with VideoStream(path) as video:
        ours = frame_to_rgb(next(video.frames())[1])
    raw = subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-v",
            "error",
            "-i",
            str(path),
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    assert ours.shape == (40, 24, 3)
    reference = np.frombuffer(raw, np.uint8).reshape(ours.shape)
    assert np.abs(reference.astype(int) - ours).max() <= 3
    assert read_video(path).frames.shape == (1, 40, 24, 3)


def test_user_errors_are_clear(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 20)
    # named like a video, holding text: damaged, in the demo's words too; no errno numbers
    for read in (read_video, read_audio):
        with pytest.raises(MediaError, match="'notes.mp4' is not a video selm can read") as err:
            read(text)
        assert "damaged or truncated" in str(err.value) and "Errno" not in str(err.value)
    (tmp_path / "notes.txt").write_text("plain text\n")
    with pytest.raises(MediaError, match="give a common format: mp4"):
        read_video(tmp_path / "notes.txt")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match=r"'empty.mp4' is empty \(0 bytes\)"):
        read_video(tmp_path / "empty.mp4")
    with pytest.raises(MediaError, match="no such file"):
        read_video(tmp_path / "missing.mp4")
    tone = tmp_path / "tone.m4a"
    with open_writer(tone, sample_rate=16000) as out:
        out.write_audio(np.zeros(16000))
    with pytest.raises(MediaError, match="no video stream"):
        read_video(tone)
    silent_video = make_video(tmp_path / "v.mp4", fps=7, count=14, size=(32, 32))
    with pytest.raises(MediaError, match="no audio stream"):
        read_audio(silent_video)
    no_frames = tmp_path / "noframes.mkv"
    with open_writer(no_frames, size=(32, 32), fps=5, sample_rate=16000, video_codec="ffv1") as out:
        out.write_audio(np.zeros(16000))  # a video stream without a single frame
    with pytest.raises(MediaError, match="no decodable frame"):
        read_video(no_frames)


def test_max_seconds(tmp_path):
    path = make_video(tmp_path / "long.mkv", fps=8, count=40, size=(32, 32), codec="ffv1")
    with pytest.raises(MediaError, match=r"lasts 5\.0 s, longer than the limit of 4 s"):
        read_video(path, max_seconds=4)
    assert read_video(path, max_seconds=5).num_seconds == 5


def _yuv420_frame(width: int, height: int, colorspace: int, color_range: int):
    """A 4:2:0 frame with smooth luma and chroma ramps and one sharp-edged block."""
    import av

    yy, xx = np.mgrid[0:height, 0:width]
    luma = (16 + 219 * (xx + yy) / (width + height)).astype(np.uint8)
    cy, cx = np.mgrid[0 : height // 2, 0 : width // 2]
    u = (16 + 224 * cx / max(1, width // 2 - 1)).astype(np.uint8)
    v = (240 - 224 * cy / max(1, height // 2 - 1)).astype(np.uint8)
    u[2:6, 4:10], v[2:6, 4:10] = 240, 16  # a saturated block
    planes = np.concatenate([luma.ravel(), u.ravel(), v.ravel()]).reshape(-1, width)
    frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    frame.colorspace, frame.color_range = colorspace, color_range
    return frame


@pytest.mark.parametrize("colorspace", [2, 5, 6])
@pytest.mark.parametrize("width, height", [(202, 114), (64, 48)])
def test_bt601_frames_convert_as_swscale_does_within_a_few_levels(width, height, colorspace):
    from selm.media.video import _opencv_converts, frame_to_rgb

    frame = _yuv420_frame(width, height, colorspace, 0)
    assert _opencv_converts(frame)
    ours = frame_to_rgb(frame).astype(int)
    swscale = frame.to_ndarray(format="rgb24").astype(int)
    assert ours.shape == swscale.shape == (height, width, 3)
    diff = np.abs(ours - swscale)
    assert diff.max() <= 8 and diff.mean() < 1.0, (diff.max(), diff.mean())


@pytest.mark.parametrize("colorspace, color_range", [(1, 0), (1, 1), (2, 2), (9, 1)])
def test_other_matrices_and_ranges_convert_through_swscale(colorspace, color_range):
    from selm.media.video import _opencv_converts, frame_to_rgb

    frame = _yuv420_frame(64, 48, colorspace, color_range)
    assert not _opencv_converts(frame)
    np.testing.assert_array_equal(frame_to_rgb(frame), frame.to_ndarray(format="rgb24"))
    bt601 = _yuv420_frame(64, 48, 2, 0).to_ndarray(format="rgb24")
    assert np.abs(frame_to_rgb(frame).astype(int) - bt601).max() > 8  # the tag matters


# --- the file's clock: streams that start apart (`ffmpeg -itsoffset`) ----------------------


def write_offset_media(path, *, video_start=0.0, audio_start=0.0, video_seconds, audio_seconds):
    """An mp4 whose video (fake_selm's scene, 8 fps) starts at `video_start` s and whose audio,
    a 440 Hz tone (AAC, 16 kHz), at `audio_start` s, as `ffmpeg -itsoffset` leaves them."""
    from fake_selm import scene

    rate, fps = 16000, 8
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.codec_context.time_base = video.time_base = Fraction(1, 1000)
        audio = out.add_stream("aac", rate=rate, layout="mono")
        tone = sine(440.0, audio_seconds, rate, channels=1).astype(np.float32)
        for i in range(0, tone.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(tone[:, i : i + 1024].copy(), "flt", "mono")
            frame.sample_rate, frame.time_base = rate, Fraction(1, rate)
            frame.pts = round(audio_start * rate) + i
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
        for i in range(round(video_seconds * fps)):
            frame = av.VideoFrame.from_ndarray(scene(0), format="rgb24")
            frame.pts, frame.time_base = round((video_start + i / fps) * 1000), Fraction(1, 1000)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


def loudness(wave: np.ndarray, start: float, stop: float) -> float:
    return float(np.abs(wave[round(start * 16000) : round(stop * 16000)]).max(initial=0.0))


def test_audio_that_starts_late_is_heard_and_muxed_where_it_plays(tmp_path):
    from fake_selm import FakeSelM, assert_object_segmented, predict_with_overlay

    from selm.inference.predictor import Predictor
    from selm.media.audio import read_audio_track

    path = write_offset_media(
        tmp_path / "late_audio.mp4", audio_start=2.25, video_seconds=3.0, audio_seconds=1.0
    )
    track = read_audio_track(path)
    assert loudness(track, 0.0, 2.1) < 0.01 and loudness(track, 2.4, 3.0) > 0.3
    with pytest.warns(MediaWarning, match=r"its audio starts 2\.\d\d s after its video"):
        pred = predict_with_overlay(Predictor(FakeSelM()), path, tmp_path / "overlay.mp4")
    masks = pred.masks()
    assert not masks[0].any() and not masks[1].any()  # silence before the audio starts
    assert_object_segmented(masks[2])
    assert any("heard silence before that" in note for note in pred.notes)
    heard = read_audio(tmp_path / "overlay.mp4")  # the overlay's track, on the same clock
    assert loudness(heard, 0.0, 2.1) < 0.01 and loudness(heard, 2.4, 2.95) > 0.3


def test_video_that_starts_late_shows_black_before_its_first_frame(tmp_path):
    from fake_selm import FakeSelM, predict_with_overlay, scene

    from selm.inference.predictor import Predictor

    path = write_offset_media(
        tmp_path / "late_video.mp4", video_start=2.0, video_seconds=3.0, audio_seconds=5.0
    )
    with pytest.warns(MediaWarning, match="a black frame at seconds 0-1"):
        clip = read_video(path)
    assert clip.num_seconds == 5 and clip.duration == pytest.approx(5.0, abs=0.01)
    assert not clip.frames[:2].any()  # seconds 0-1: no picture yet, as a player shows
    assert np.abs(clip.frames[2:].astype(int) - scene(0)).mean(axis=(1, 2, 3)).max() < 3
    with pytest.warns(MediaWarning):
        pred = predict_with_overlay(Predictor(FakeSelM()), path, tmp_path / "overlay.mp4")
    assert not pred.frames[:2].any() and pred.frames[2:].any()
    assert any("black frame at seconds 0-1" in note for note in pred.notes)
    with av.open(str(tmp_path / "overlay.mp4")) as overlay:
        stream = overlay.streams.video[0]
        first = next(overlay.decode(stream))
        assert float(first.pts * first.time_base) == pytest.approx(2.0, abs=0.01)
    heard = read_audio(tmp_path / "overlay.mp4")
    assert len(heard) / 16000 == pytest.approx(5.0, abs=0.1) and loudness(heard, 0.2, 1.8) > 0.3
