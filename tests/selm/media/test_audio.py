"""selm.media.audio: audio files and tracks at 16 kHz mono, white noise, WAV files."""

import os

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
