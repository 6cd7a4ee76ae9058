"""selm.inference.audio_source: the typed audio choice, its plain forms, and a file named `mute`."""

from pathlib import Path

import numpy as np
import pytest
import torch

from selm import predict as predict_cli
from selm.inference.audio_source import NOISE_STD, AudioSource, resolve_audio
from selm.media.audio import write_wav
from selm.media.container import MediaError
from selm.media.video import Clip, frame_times

SR = 16000


def clip(seconds: int = 3, waveform: np.ndarray | None = None) -> Clip:
    """A hand-built clip (no file): `seconds` black 8x8 frames."""
    return Clip(
        frames=np.zeros((seconds, 8, 8, 3), np.uint8),
        times=frame_times(seconds),
        waveform=waveform,
        duration=float(seconds),
        fps=1.0,
        width=8,
        height=8,
        source="clip.mp4",
    )


def beep(seconds: float, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


@pytest.mark.parametrize(
    "plain, expected",
    [
        ("original", AudioSource.original()),
        ("mute", AudioSource.mute()),
        ("noise", AudioSource.noise()),
        ("mute.wav", AudioSource.file("mute.wav")),
        ("some/dir/mute", AudioSource.file(Path("some/dir/mute"))),
        (Path("mute"), AudioSource.file("mute")),  # a Path is always a file
        (Path("original"), AudioSource("file", path=Path("original"))),
    ],
)
def test_parse_plain_forms(plain, expected):
    parsed = AudioSource.parse(plain)
    assert parsed == expected and hash(parsed) == hash(expected)
    assert AudioSource.parse(parsed) is parsed


def test_file_and_word_differ():
    assert AudioSource.file("mute") != AudioSource.mute()
    assert AudioSource.file("mute").kind == "file" and AudioSource.file("mute").label == "mute"
    assert AudioSource.file("/tmp/x/beep.wav").label == "beep.wav"
    assert AudioSource.noise().label == "noise"


def test_waveform_is_a_read_only_float32_copy():
    samples = np.array([0.1, -0.2, 0.3], np.float64)
    source = AudioSource.parse(samples)
    samples[0] = 9.0  # the caller's array changing later does not change the source
    assert source.kind == "waveform" and source.label == "waveform"
    assert source.samples.dtype == np.float32 and not source.samples.flags.writeable
    np.testing.assert_array_equal(source.samples, np.float32([0.1, -0.2, 0.3]))
    from_tensor = AudioSource.parse(torch.tensor([0.1, -0.2, 0.3]))
    assert from_tensor == source
    assert from_tensor != AudioSource.waveform([0.1, -0.2, 0.4])


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((2, 16000)), r"\(S,\) array"),
        (np.zeros(0), r"non-empty"),
        (np.array([0.0, np.nan]), "NaN or infinite"),
        (np.array(["a", "b"]), r"\(S,\) array"),
    ],
)
def test_bad_waveforms(bad, match):
    with pytest.raises(MediaError, match=match):
        AudioSource.parse(bad)


def test_inconsistent_fields_are_refused():
    with pytest.raises(ValueError, match="expected one of"):
        AudioSource("loud")
    with pytest.raises(ValueError, match="path exactly when"):
        AudioSource("file")
    with pytest.raises(ValueError, match="path exactly when"):
        AudioSource("mute", path=Path("mute"))
    with pytest.raises(ValueError, match="samples exactly when"):
        AudioSource("waveform")


def test_resolve_each_kind_against_references():
    track = beep(2.5)  # 2.5 s of track under a 3 s clip: zero-padded to 3 s
    c = clip(3, track)
    wave, label = resolve_audio(c, AudioSource.original())
    assert label == "original" and wave.shape == (3 * SR,)
    np.testing.assert_array_equal(wave[: len(track)], track)
    assert not wave[len(track) :].any()
    wave, label = resolve_audio(c, "mute")
    assert label == "mute" and wave.shape == (3 * SR,) and not wave.any()
    wave, label = resolve_audio(c, AudioSource.noise())
    assert label == "noise" and wave.std() == pytest.approx(NOISE_STD, rel=0.05)
    np.testing.assert_array_equal(wave, resolve_audio(c, "noise")[0])  # fixed seed
    long = beep(4.0, 0.5)
    wave, label = resolve_audio(c, AudioSource.waveform(long))
    assert label == "waveform"
    np.testing.assert_array_equal(wave, long[: 3 * SR])  # cut to the clip
    with pytest.raises(MediaError, match="has no audio track"):
        resolve_audio(clip(3, None), "original")


@pytest.fixture
def mute_file(tmp_path, monkeypatch):
    """A real WAV file named `mute` (no extension) in the current folder: 1 s of a beep."""
    monkeypatch.chdir(tmp_path)
    write_wav(tmp_path / "mute", beep(1.0), SR)
    assert (tmp_path / "mute").read_bytes()[:4] == b"RIFF"
    return tmp_path / "mute"


def test_a_file_named_mute_is_heard(mute_file):
    c = clip(3, None)
    reference = np.concatenate([beep(1.0), np.zeros(2 * SR, np.float32)])
    for audio in (Path("mute"), AudioSource.file("mute"), mute_file, str(mute_file)):
        wave, label = resolve_audio(c, audio)
        assert label == "mute"
        np.testing.assert_allclose(wave, reference, atol=1 / 32768 + 1e-6)  # 16-bit PCM
    wave, label = resolve_audio(c, "mute")  # the word is still silence
    assert label == "mute" and not wave.any()


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        resolve_audio(clip(3, beep(3.0)), Path(tmp_path / "mute"))


def test_cli_builds_the_typed_request(mute_file):
    parser = predict_cli.build_parser()

    def source(*flags):
        return predict_cli.audio_source(parser.parse_args(["v.mp4", "--checkpoint", "c", *flags]))

    assert source() == AudioSource.original()
    assert source("--mute") == AudioSource.mute()
    assert source("--noise") == AudioSource.noise()
    assert source("--audio", "mute") == AudioSource.file("mute")  # the file, not silence
