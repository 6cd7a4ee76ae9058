"""The VGGish log-mel front end against a float64 NumPy transcription of VGGish's algorithm."""

import math

import numpy as np
import pytest
import torch
from references import hz_to_mel, reference_log_mel

from selm.transforms.log_mel import LogMel, log_mel_examples, to_mono_16k, vggish_mel_matrix


def test_mel_matrix_matches_reference_triangles():
    w = vggish_mel_matrix(torch.float64).numpy()
    assert w.shape == (257, 64) and (w[0] == 0).all()
    bins_mel = hz_to_mel(np.linspace(0, 8000, 257))
    # every band peaks near its centre and sums to a positive weight
    assert (w.sum(0) > 0).all()
    assert np.all(np.diff(bins_mel[w.argmax(0)]) > 0)


def test_log_mel_matches_float64_reference():
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(16000 * 2 + 123) * 0.1
    ours = LogMel()(torch.from_numpy(wave).float()).numpy()
    ref = reference_log_mel(wave)
    assert ours.shape == ref.shape == (1 + (len(wave) - 400) // 160, 64)
    np.testing.assert_allclose(ours, ref, atol=2e-4)


def test_examples_are_non_overlapping_0_96_s():
    wave = torch.randn(16000 * 3)
    frames = LogMel()(wave)
    ex = log_mel_examples(wave)
    assert ex.shape == (3, 1, 96, 64)
    torch.testing.assert_close(ex[1, 0], frames[96:192])


def test_padding_repeat_and_zeros():
    wave = torch.randn(16000 * 2)
    rep = log_mel_examples(wave, num_examples=4, padding="repeat")
    zer = log_mel_examples(wave, num_examples=4, padding="zeros")
    assert rep.shape == zer.shape == (4, 1, 96, 64)
    assert torch.equal(rep[3], rep[1]) and torch.equal(rep[2], rep[1])
    assert torch.equal(zer[2:], torch.zeros(2, 1, 96, 64)) and torch.equal(zer[:2], rep[:2])
    assert log_mel_examples(wave, num_examples=1).shape[0] == 1


def test_mute_is_log_of_offset():
    ex = log_mel_examples(torch.zeros(16000 * 2), num_examples=2)
    torch.testing.assert_close(ex, torch.full_like(ex, float(np.log(0.01))))


def test_resampling_and_stereo():
    t = torch.arange(44100 * 2) / 44100
    stereo = torch.stack([torch.sin(2 * np.pi * 1000 * t)] * 2)
    ex = log_mel_examples(stereo, sample_rate=44100)
    assert ex.shape == (2, 1, 96, 64)
    band = ex[0, 0].mean(0).argmax().item()  # the loudest band holds 1 kHz
    edges = np.linspace(hz_to_mel(125.0), hz_to_mel(7500.0), 66)
    assert edges[band] < hz_to_mel(1000.0) < edges[band + 2]


def test_too_short_and_bad_shapes():
    with pytest.raises(ValueError, match="shorter than one"):
        log_mel_examples(torch.randn(8000))
    assert log_mel_examples(torch.randn(8000), num_examples=2).shape == (2, 1, 96, 64)
    with pytest.raises(ValueError, match="waveform must be"):
        log_mel_examples(torch.randn(1, 2, 100))
    with pytest.raises(ValueError, match="padding"):
        log_mel_examples(torch.randn(16000), num_examples=2, padding="wrap")


@pytest.mark.parametrize("rate", [44100, 48000, 22050, 11025, 8000, 16000])
def test_block_resampler_equals_resampling_the_whole_signal(rate):
    from selm.transforms.log_mel import BlockResampler

    rng = np.random.default_rng(rate)
    x = rng.standard_normal(rate * 5 + 77).astype(np.float32)
    whole = to_mono_16k(torch.from_numpy(x), rate).numpy()
    blocks = BlockResampler(rate, block_seconds=0.7)
    i = 0
    while i < len(x):  # pieces of any size, as decoded audio frames come
        n = int(rng.integers(1, rate // 3))
        blocks.feed(x[i : i + n])
        i += n
    out = blocks.finish()
    assert len(out) == len(whole) == math.ceil(len(x) * 16000 / rate)
    np.testing.assert_allclose(out, whole, rtol=0, atol=1e-6)
    # memory: never more than a block and its context held at the input rate
    assert blocks.block <= rate and blocks.context < rate // 10
    short = BlockResampler(rate)
    short.feed(x[:100])
    assert len(short.finish()) == math.ceil(100 * 16000 / rate)
    assert len(BlockResampler(rate).finish()) == 0
