"""What a media file declares against what it holds and against the limits: a long audio track
under a short video refused before decoding, a long replacement audio decoded only as far as the
clip, frames capped while decoding, truncated files reported, variable frame rates kept. Media
are generated here with PyAV."""

import tracemalloc
import warnings
from fractions import Fraction
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch
from fake_selm import predict_with_overlay
from torch import nn

from selm.config import SelMConfig
from selm.inference.predictor import Predictor
from selm.media.audio import read_audio
from selm.media.container import MediaError, MediaWarning
from selm.media.video import DEFAULT_MAX_PIXELS, read_video


class Blank(nn.Module):
    """SelM's output contract with a mask over the left half of every frame."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SelMConfig(input_size=32, num_frames=5)
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, frames, audio, frame_mask, return_maps=False):
        b, t = frames.shape[:2]
        logits = torch.full((b, t, 1, 32, 32), -10.0)
        logits[..., :16] = 10.0
        hits = [torch.zeros(b, t, 2, s, s) for s in (4, 8, 16)]
        return SimpleNamespace(logits=logits, hit_maps=hits, dam_maps=None, bcsm=None)


def write_media(
    path,
    *,
    times,
    size=(64, 48),
    audio_seconds=None,
    audio_rate=8000,
    video_codec="libx264",
    audio_codec="aac",
    time_base=Fraction(1, 1000),
):
    """Frames shown from `times` (s; any spacing), grey with the index in red; a silent audio
    track of `audio_seconds`."""
    w, h = size
    with av.open(str(path), "w") as out:
        video = out.add_stream(video_codec, rate=30)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.codec_context.time_base = time_base
        video.time_base = time_base
        if audio_seconds:
            stream = out.add_stream(audio_codec, rate=audio_rate)
            stream.layout = "mono"
            samples = np.zeros((1, round(audio_seconds * audio_rate)), np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = audio_rate, 0
            frame.time_base = Fraction(1, audio_rate)
            out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        for index, when in enumerate(times):
            image = np.full((h, w, 3), 100, np.uint8)
            image[..., 0] = (7 * index) % 256
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = round(Fraction(when) / time_base), time_base
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


def test_a_short_video_with_a_long_audio_track_is_refused_before_decoding(tmp_path):
    """5 s of video carrying 30 min of (silent AAC, tiny) audio: every stream's duration counts,
    and an mkv (no stream durations) is refused by the container's."""
    path = write_media(tmp_path / "bomb.mp4", times=np.arange(10) / 2, audio_seconds=30 * 60)
    assert path.stat().st_size < 1_000_000  # an upload this small
    with pytest.raises(MediaError, match=r"audio stream #1 lasts 1800\.0 s.*limit of 60 s"):
        read_video(path, max_seconds=60)
    predictor = Predictor(Blank())
    with pytest.raises(MediaError, match="audio stream"):
        predictor.predict(path, max_seconds=60)
    mkv = write_media(tmp_path / "bomb.mkv", times=[0, 1], audio_seconds=600, audio_codec="flac")
    with pytest.raises(MediaError, match=r"lasts 600\.0 s"):
        predictor.predict(mkv, max_seconds=60)


def test_a_long_replacement_audio_is_decoded_only_as_far_as_the_clip(tmp_path):
    """30 min of silence in a small FLAC, heard by a 3-s clip: only ~3 s are decoded."""
    flac = write_media(tmp_path / "long.mkv", times=[0], audio_seconds=30 * 60, audio_codec="flac")
    video = write_media(tmp_path / "clip.mp4", times=np.arange(6) / 2)
    wave = read_audio(flac, seconds=3.0)
    assert wave.shape == (3 * 16000,)
    tracemalloc.start()
    pred = Predictor(Blank()).predict(video, audio=flac)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert pred.waveform.shape == (round(pred.duration * 16000),) and pred.duration < 3
    assert peak < 40e6  # the whole track at 8 kHz alone is 58 MB of float32


def test_frames_are_capped_at_decode_time(tmp_path):
    path = write_media(tmp_path / "big.mp4", times=[0, 0.5, 1.0, 1.5], size=(2560, 1440))
    clip = read_video(path)
    assert clip.frames.shape[1] * clip.frames.shape[2] <= DEFAULT_MAX_PIXELS
    assert (clip.width, clip.height) == (1280, 720)
    assert read_video(path, max_pixels=None).frames.shape[1:3] == (1440, 2560)
    pred = predict_with_overlay(Predictor(Blank()), path, tmp_path / "o.mp4", audio="mute")
    assert pred.frames.shape[1:3] == (720, 1280)
    with av.open(str(tmp_path / "o.mp4")) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (1280, 720)


def test_a_truncated_mp4_says_what_was_decoded_against_what_it_declares(tmp_path):
    from selm.media.writer import open_writer  # faststart: the header stays at the front

    path = tmp_path / "full.mp4"
    noise = np.random.default_rng(0).integers(0, 256, (50, 48, 64, 3), dtype=np.uint8)
    with open_writer(path, size=(64, 48), fps=10) as out:  # noise: the frames dominate
        for image in noise:
            out.write_frame(image)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 5])
    with pytest.warns(MediaWarning, match=r"only \d\.\d\d s of video.*declares 5\.00 s"):
        clip = read_video(cut)
    assert clip.duration < 4.0 and clip.notes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MediaWarning)
        pred = Predictor(Blank()).predict(cut, audio="mute")
    assert len(pred.notes) == 1 and "declares 5.00 s" in pred.notes[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", MediaWarning)
        assert read_video(path).notes == []  # the complete file: no note


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_variable_frame_rate_overlays_keep_every_frame_time(tmp_path, suffix):
    """20 fps for 2.5 s, then 4 fps: each overlay frame keeps its source time; no drift."""
    times = [i / 20 for i in range(50)] + [2.5 + i / 4 for i in range(10)]
    source = write_media(tmp_path / f"vfr{suffix}", times=times, audio_seconds=5.0)
    out = tmp_path / f"overlay{suffix}"
    pred = predict_with_overlay(Predictor(Blank()), source, out)
    assert pred.duration == pytest.approx(5.0, abs=0.26)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        written = [float(f.time) for f in container.decode(stream)]
    with av.open(str(out)) as container:
        audio = sum(f.samples for f in container.decode(audio=0)) / 16000
    assert len(written) == len(times)
    np.testing.assert_allclose(written, times, atol=2e-3)  # at most a tick of rounding
    assert audio == pytest.approx(pred.duration, abs=0.07)  # the audio spans the same time
    assert written[-1] == pytest.approx(4.75, abs=2e-3)


def test_a_declared_length_never_sizes_a_buffer(tmp_path):
    """An mkv whose header claims 1e12 ms (about 32 years) and holds 6 s (two windows, the
    first one yielded while the length is still the claim): the prediction takes the memory of
    6 s (nothing is allocated from the claim)."""
    import struct

    path = write_media(tmp_path / "liar.mkv", times=np.arange(24) / 4, audio_seconds=6.0)
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89\x88")  # Segment Info's Duration, an 8-byte float in ms
    data[at + 3 : at + 11] = struct.pack(">d", 1e12)
    path.write_bytes(bytes(data))
    with av.open(str(path)) as container:
        assert container.duration / av.time_base == pytest.approx(1e9)  # the claim is in place
    tracemalloc.start()
    pred = Predictor(Blank()).predict(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(pred.times) == 6 and pred.duration < 6.1
    assert peak < 50e6


@pytest.mark.parametrize("image", [".png", ".jpg"])
def test_a_still_image_named_like_a_video_is_not_a_video(tmp_path, image):
    import cv2

    from selm.inference.predictor import check_inputs

    picture = tmp_path / f"photo{image}"
    cv2.imwrite(str(picture), np.full((48, 64, 3), 200, np.uint8))
    renamed = picture.rename(tmp_path / "photo.mp4")
    codec = "PNG" if image == ".png" else "MJPEG"
    message = rf"'photo.mp4' is a still image \({codec}\), not a video"
    for call in (
        lambda: read_video(renamed),
        lambda: Predictor(Blank()).predict(renamed, audio="mute"),
        lambda: check_inputs(renamed),  # not "has no audio track"
    ):
        with pytest.raises(MediaError, match=message):
            call()
