"""selm.media.audio: audio files and tracks at 16 kHz mono, white noise, WAV files."""

import os
from fractions import Fraction

import av
import numpy as np
import pytest
import soundfile
from signals import peak_hz, sine

from selm.media.audio import read_audio, white_noise, write_wav
from selm.media.writer import open_writer


@pytest.mark.parametrize(
    "suffix,codec,rate",
    [
        (".mp3", "libmp3lame", 44100),
        (".m4a", "aac", 44100),
        (".ogg", "libopus", 48000),
        (".flac", "flac", 22050),
    ],
)
def test_read_audio_files(tmp_path, suffix, codec, rate):
    path = tmp_path / f"tone{suffix}"
    with open_writer(path, sample_rate=rate, channels=2, audio_codec=codec) as out:
        out.write_audio(sine(880.0, 1.5, rate))
    wave = read_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert len(wave) / 16000 == pytest.approx(1.5, abs=0.08)
    assert peak_hz(wave) == pytest.approx(880.0, abs=3.0)


def test_read_audio_wav_is_the_channel_mean_at_16k(tmp_path):
    t = np.arange(44100) / 44100
    left, right = 0.5 * np.sin(2 * np.pi * 300 * t), 0.1 * np.sin(2 * np.pi * 300 * t)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], 1), 44100, subtype="FLOAT")
    wave = read_audio(path)
    assert len(wave) == 16000
    assert np.abs(wave[1000:-1000]).max() == pytest.approx(0.3, abs=0.005)  # (0.5 + 0.1) / 2
    assert peak_hz(wave) == pytest.approx(300.0, abs=2.0)


def test_write_wav_is_atomic_and_round_trips(tmp_path):
    wave = white_noise(8000, seed=3)
    target = write_wav(tmp_path / "sub" / "noise.wav", wave, 16000)
    data, rate = soundfile.read(target, dtype="float32")
    assert rate == 16000 and np.abs(data - wave).max() < 1e-4  # 16-bit PCM
    assert os.listdir(tmp_path / "sub") == ["noise.wav"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0o600
    np.testing.assert_array_equal(read_audio(target), data)


def test_white_noise_is_seeded_with_the_requested_level():
    a, b = white_noise(32000, seed=1), white_noise(32000, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, white_noise(32000, seed=2))
    assert a.dtype == np.float32 and a.std() == pytest.approx(0.1, rel=0.03)
    assert abs(a.mean()) < 0.005


# --- every channel layout, packed and planar, in files and in a video's track --------------

RATE = 16000
# 1 to 8 channels; odd ones (2.1, 6.1) and 8-channel layouts, whose planar frames PyAV cannot
# turn into arrays (a 7.1 `fltp` frame reports 9 planes)
LAYOUTS = ("mono", "stereo", "2.1", "3.0", "quad", "5.0", "5.1", "6.1", "7.1", "octagonal")
# codec, file suffix, sample format the encoder takes: what the decoder gives is packed (flt,
# s16) for PCM and FLAC, planar (fltp) for WavPack and AAC
LOSSLESS = {
    "wav-float": ("pcm_f32le", ".wav", None),
    "wav-16bit": ("pcm_s16le", ".wav", None),
    "flac": ("flac", ".flac", None),
    "wavpack-planar": ("wavpack", ".wv", "fltp"),
}


def channel_tones(layout: str, seconds: float = 0.5, lfe: bool = True) -> np.ndarray:
    """(S, C) float32: channel k a sine at 250 (k + 1) Hz of amplitude 0.05 (k + 1); the LFE
    channel at 60 Hz, or silent (lfe=False: AAC low-passes it)."""
    t = np.arange(round(seconds * RATE)) / RATE
    rows = []
    for k, channel in enumerate(av.AudioLayout(layout).channels):
        if channel.name == "LFE":
            rows.append(0.05 * (k + 1) * np.sin(2 * np.pi * 60 * t) * lfe)
        else:
            rows.append(0.05 * (k + 1) * np.sin(2 * np.pi * 250 * (k + 1) * t))
    return np.stack(rows, 1).astype(np.float32)


def encode_audio(out, layout: str, data: np.ndarray, codec: str, sample_format=None, start=0):
    """Add an audio stream to an open container and encode `data` (S, C) into it, from PyAV's
    packed frames (one plane: never a planar frame's to_ndarray)."""
    stream = out.add_stream(codec, rate=RATE, layout=layout)
    if sample_format is not None:
        stream.format = sample_format
    for i in range(0, len(data), 1024):
        chunk = np.ascontiguousarray(data[i : i + 1024]).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = RATE, start + i, Fraction(1, RATE)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def tone_amplitude(wave: np.ndarray, freq: float, begin: int) -> float:
    """The amplitude of the `freq` sine in `wave` (samples from `begin` on), by projection."""
    t = (begin + np.arange(len(wave))) / RATE
    return float(2 * np.abs(np.mean(wave * np.exp(-2j * np.pi * freq * t))))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", LOSSLESS)
def test_any_layout_is_mixed_down_to_the_channel_mean(tmp_path, kind, layout):
    codec, suffix, sample_format = LOSSLESS[kind]
    data = channel_tones(layout)
    path = tmp_path / f"{layout}{suffix}"
    with av.open(str(path), "w") as out:
        encode_audio(out, layout, data, codec, sample_format)
    expected = data.mean(1)  # an independent mixdown: numpy's mean of the channels
    if codec == "pcm_s16le" or codec == "flac":  # what 16-bit samples hold
        expected = np.round(np.clip(data, -1, 32767 / 32768) * 32768).mean(1) / 32768
    wave = read_audio(path)
    assert wave.shape == expected.shape
    np.testing.assert_allclose(wave, expected, atol=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_any_layout_of_a_video_track_and_an_aac_file(tmp_path, layout):
    """AAC decodes to planar frames (fltp): the 7.1 track of a video crashed the process."""
    from fake_selm import FakeSelM, scene

    from selm.inference.predictor import Predictor
    from selm.media.audio import read_audio_track

    data = channel_tones(layout, seconds=2.0, lfe=False)
    video, sound = tmp_path / f"{layout}.mp4", tmp_path / f"{layout}.m4a"
    with av.open(str(sound), "w") as out:
        encode_audio(out, layout, data, "aac")
    with av.open(str(video), "w") as out:  # 2 s of frames and the track beside them
        stream = out.add_stream("libx264", rate=4)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        encode_audio(out, layout, data, "aac")
        for index in range(8):
            frame = av.VideoFrame.from_ndarray(scene(0), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 4)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    channels = av.AudioLayout(layout).channels
    for wave in (
        read_audio(sound),
        read_audio_track(video),
        Predictor(FakeSelM()).predict(video).waveform,
    ):
        middle = wave[4000:28000]
        for k, channel in enumerate(channels):
            if channel.name == "LFE":
                continue
            heard = tone_amplitude(middle, 250 * (k + 1), 4000)
            assert heard == pytest.approx(0.05 * (k + 1) / len(channels), rel=0.05), (k, layout)


# --- integer PCM and samples beyond full scale ------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.uint8])
def test_integer_pcm_is_read_at_full_scale(dtype):
    """int16 32767 is 1.0 (the WAV convention), not an amplitude of 32767."""
    from selm.media.audio import checked_waveform

    wave = 0.5 * np.sin(2 * np.pi * 440 * np.arange(1600) / 16000)
    info = np.iinfo(dtype)
    half = (int(info.max) - int(info.min) + 1) // 2  # 2^(bits - 1)
    centre = 0 if info.min < 0 else half  # uint8: silence is 128
    pcm = (np.round(wave * (half - 1)) + centre).astype(dtype)
    got = checked_waveform(pcm)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, (pcm.astype(np.float64) - centre) / half, atol=1e-7)
    assert np.abs(got - wave).max() < max(2 / half, 1e-7)  # float32 holds 24 bits


@pytest.mark.parametrize("dtype", [np.int64, np.uint16, np.uint32])
def test_integers_of_no_pcm_width_are_refused(dtype):
    from selm.media.audio import checked_waveform
    from selm.media.container import MediaError

    with pytest.raises(MediaError, match=f"holds {np.dtype(dtype).name} samples.*ambiguous"):
        checked_waveform(np.zeros(1600, dtype))


def test_an_int16_waveform_is_heard_at_its_level(video):
    from fake_selm import FakeSelM

    from selm.inference.predictor import Predictor

    t = np.arange(7 * 16000) / 16000
    pcm = np.round(0.25 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    pred = Predictor(FakeSelM()).predict(video, audio=pcm)
    assert np.abs(pred.waveform).max() == pytest.approx(0.25, abs=1e-3)


def test_a_float_wav_beyond_full_scale_is_heard_as_the_overlay_carries_it(video, tmp_path):
    """A float WAV at +-1e6: the model hears it clipped to [-1, 1], as a player plays it and as
    the overlay's AAC track holds it, and the prediction says so."""
    from fake_selm import FakeSelM, predict_with_overlay

    from selm.inference.predictor import Predictor
    from selm.media.container import MediaWarning

    loud = tmp_path / "loud.wav"
    t = np.arange(7 * 16000) / 16000
    soundfile.write(loud, 1e6 * np.sin(2 * np.pi * 440 * t), 16000, subtype="FLOAT")
    with pytest.warns(MediaWarning, match="beyond full scale"):
        pred = predict_with_overlay(Predictor(FakeSelM()), video, tmp_path / "o.mp4", audio=loud)
    assert np.abs(pred.waveform).max() == 1.0
    assert any("beyond full scale" in note and "clipped to [-1, 1]" in note for note in pred.notes)
    carried = read_audio(tmp_path / "o.mp4")[: len(pred.waveform)]
    error = np.sqrt(np.mean((carried - pred.waveform[: len(carried)]) ** 2))
    assert error < 0.1 * np.sqrt(np.mean(pred.waveform**2))  # the same signal, AAC aside


def test_a_codecs_small_overshoot_is_clipped_without_a_note():
    from selm.media.audio import full_scale

    wave, note = full_scale(np.array([0.5, -1.004, 1.008], np.float32), "track")
    assert note is None and np.abs(wave).max() == 1.0
    wave, note = full_scale(np.array([0.5, 3.0], np.float32), "track")
    assert wave.tolist() == [0.5, 1.0] and note.startswith("track: 1 of 2 samples lie beyond")
    untouched = np.array([0.5, -1.0], np.float32)
    assert full_scale(untouched, "track") == (untouched, None)
