"""app.validation: probing uploads before the model runs."""

from __future__ import annotations

import av
import numpy as np
import pytest
import soundfile

from app.validation import DemoError, Limits, check_audio_file, probe_video
from selm.media.container import PARTIAL_SECOND_MIN, MediaError, over_limit
from selm.media.video import read_video


def test_probe_reads_the_headers(media_dir, kit):
    info = probe_video(media_dir / "tone.mp4", Limits())
    assert (info.width, info.height, info.fps, info.has_audio) == (kit.width, kit.height, 8.0, True)
    assert info.duration == pytest.approx(3.0, abs=0.01)
    assert not probe_video(media_dir / "no_audio.mp4", Limits()).has_audio


def test_limits_are_inclusive(media_dir, kit):
    probe_video(media_dir / "tone.mp4", Limits(max_seconds=3, max_pixels=kit.width * kit.height))
    with pytest.raises(DemoError, match=f"{kit.width}x{kit.height}"):
        probe_video(media_dir / "tone.mp4", Limits(max_pixels=kit.width * kit.height - 1))


def test_webm_without_a_declared_duration(tmp_path, kit):
    """Browser recordings (MediaRecorder) are live webm: no duration in the headers."""
    path = tmp_path / "recording.webm"
    with av.open(str(path), "w", format="webm", options={"live": "1"}) as container:
        stream = container.add_stream("libvpx", rate=8)
        stream.width, stream.height, stream.pix_fmt = kit.width, kit.height, "yuv420p"
        black = np.zeros((kit.height, kit.width, 3), np.uint8)
        for index in range(20):  # 2.5 s
            frame = av.VideoFrame.from_ndarray(black, "rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with av.open(str(path)) as container:
        assert container.duration is None and container.streams.video[0].duration is None
    assert probe_video(path, Limits()).duration == pytest.approx(2.5)
    with pytest.raises(DemoError, match="lasts 2.5 s"):
        probe_video(path, Limits(max_seconds=1.5))


def test_missing_file(tmp_path):
    with pytest.raises(DemoError, match="does not exist any more"):
        probe_video(tmp_path / "gone.mp4", Limits())


def test_audio_files(tmp_path, media_dir):
    soundfile.write(tmp_path / "ok.flac", np.zeros(800, np.float32), 8000)
    assert check_audio_file(tmp_path / "ok.flac") == tmp_path / "ok.flac"
    assert check_audio_file(media_dir / "tone.mp4") == media_dir / "tone.mp4"  # a video's track
    with pytest.raises(DemoError, match="has no audio track"):
        check_audio_file(media_dir / "no_audio.mp4")


@pytest.mark.parametrize("seconds, fps, too_long", [(60.2, 5, True), (60.04, 25, False)])
def test_the_app_and_selm_media_agree_on_too_long(tmp_path, kit, seconds, fps, too_long):
    """One slack (selm.media.video.PARTIAL_SECOND_MIN = 0.05 s) for both checks: 60.2 s against a
    60 s limit is refused by the app's probe and by selm.media.video alike; 60.04 s passes both."""
    path = kit.write_clip(
        tmp_path / "long.mp4", seconds=seconds, fps=fps, size=(16, 16), audio=None, grey=False
    )
    assert probe_video(path, Limits(max_seconds=120)).duration == pytest.approx(seconds, abs=1e-6)
    if too_long:
        with pytest.raises(DemoError, match=r"lasts 60\.2 s.*up to 60 s"):
            probe_video(path, Limits(max_seconds=60))
        with pytest.raises(MediaError, match=r"lasts 60\.2 s, longer than the limit of 60 s"):
            read_video(path, max_seconds=60)
    else:
        assert probe_video(path, Limits(max_seconds=60)).duration == pytest.approx(60.04)
        assert read_video(path, max_seconds=60).num_seconds == 60


def test_over_limit_is_the_one_rule():
    assert PARTIAL_SECOND_MIN == 0.05
    assert not over_limit(60.05, 60) and over_limit(60.0501, 60) and over_limit(60.2, 60)
    assert not over_limit(1e9, None)


def test_a_short_video_with_a_long_audio_track_is_refused_by_its_headers(tmp_path):
    from fractions import Fraction

    path = tmp_path / "bomb.mp4"
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=10)
        video.width = video.height = 64
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        audio.layout = "mono"
        for k in range(20):  # 2 s of video
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 9 * k, np.uint8), "rgb24")
            frame.pts = k
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        silence = np.zeros((1, 160000), np.float32)
        for i in range(9):  # 90 s of audio
            frame = av.AudioFrame.from_ndarray(silence, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, i * 160000, Fraction(1, 16000)
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    with pytest.raises(DemoError, match=r"holds a stream that lasts 9\d\.\d s; this demo runs"):
        probe_video(path, Limits(max_seconds=60))
    assert probe_video(path, Limits(max_seconds=120)).duration == pytest.approx(2.0, abs=0.2)


def test_a_picture_renamed_as_a_video_is_not_a_video(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "cat.png"), np.full((48, 64, 3), 128, np.uint8))
    renamed = (tmp_path / "cat.png").rename(tmp_path / "cat.mp4")
    with pytest.raises(DemoError, match=r"'cat.mp4' is a still image \(PNG\), not a video") as err:
        probe_video(renamed, Limits())
    assert "upload a video file" in str(err.value) and "audio" not in str(err.value)


def test_the_threshold_a_request_sends_is_checked():
    from app.validation import checked_threshold

    assert checked_threshold(0.35) == 0.35
    for bad in (float("nan"), 2.0, -1, None, "0.5"):
        with pytest.raises(DemoError, match="threshold=.*strictly between 0 and 1"):
            checked_threshold(bad)
