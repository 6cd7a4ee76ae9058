"""Audio from media files as the model hears it, 16 kHz mono float32 (PyAV; soundfile for what
PyAV cannot read): a video's track or an audio file, decoded only as far as asked; every
waveform checked finite before the model hears it; white noise; WAV files written atomically."""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from selm.files import atomic_path
from selm.media.container import MAX_LEAD, MediaError, clock_origin, existing, open_container
from selm.transforms.log_mel import SAMPLE_RATE, BlockResampler, to_mono_16k

AUDIO_MARGIN = 1.0  # s of audio decoded past the seconds needed (resampling needs a little)


def _mono(frame: av.AudioFrame) -> np.ndarray:
    """(n,) float32: the channel mean of a packed float frame (`flt`: the channels of each
    sample side by side, one plane, whatever the layout), as `to_mono_16k` takes it, chunk by
    chunk. Frames are never converted to arrays while planar: PyAV reports 9 planes for a
    planar 7.1 frame and crashes converting it (any layout of 8 or more channels)."""
    samples = frame.to_ndarray().reshape(frame.samples, -1)  # (n, C)
    return samples[:, 0] if samples.shape[1] == 1 else samples.mean(1, dtype=np.float32)


def _frame_start(frame: av.AudioFrame) -> Fraction | None:
    if frame.pts is None or not frame.time_base:
        return None
    return frame.pts * Fraction(frame.time_base)


def _on_clock(wave: np.ndarray, begin: Fraction, stop: float | None, name: str) -> np.ndarray:
    """A track that starts `begin` seconds after time zero -> its samples from time zero:
    silence before it starts (never past `stop`); what lies before time zero is cut."""
    if begin > MAX_LEAD:  # hours of silence: a damaged or hostile header
        raise MediaError(
            f"{name}: its audio starts {float(begin):.0f} s after its video; re-encode it "
            "with the streams together (e.g. `ffmpeg -i in.mp4 -c:v libx264 -c:a aac "
            "out.mp4`) or give another file"
        )
    shift = round(begin * SAMPLE_RATE)
    if stop is not None:
        shift = min(shift, math.ceil(stop * SAMPLE_RATE))
    if shift > 0:
        return np.concatenate([np.zeros(shift, np.float32), wave])
    return wave[-shift:] if shift < 0 else wave


def _decode_audio(
    container, stream, stop: float | None, zero: Fraction | None
) -> np.ndarray | None:
    """Decode `stream` until `stop` seconds of the file's clock (time zero `zero`, see
    `clock_origin`; None: the stream's first frame) -> (S,) float32 mono 16 kHz from time zero,
    silence where the stream has not started yet (what a player plays)."""
    resampler = av.AudioResampler(format="flt")  # packed (see _mono); rate and layout kept
    to_16k: BlockResampler | None = None  # to 16 kHz a block at a time (bounded memory)

    def feed(frames) -> None:
        nonlocal to_16k
        for c in frames:
            if to_16k is None:
                to_16k = BlockResampler(c.sample_rate)
            to_16k.feed(_mono(c))

    begin = None  # where the stream's first frame lies on the clock, in seconds
    try:
        for frame in container.decode(stream):
            start = _frame_start(frame)
            if zero is None and start is not None:
                zero = start  # no stated start: time zero is the track's own first frame
            if begin is None:
                begin = start - zero if start is not None else Fraction(0)
            if stop is not None and start is not None and start - zero > stop:
                break
            feed(resampler.resample(frame))
        feed(resampler.resample(None))
    except av.FFmpegError as err:
        name = Path(container.name).name
        raise MediaError(
            f"{name} could not be decoded ({err}); re-encode it or give another file"
        ) from err
    if begin is None:  # not a single frame
        return None
    wave = to_16k.finish() if to_16k is not None else np.zeros(0, np.float32)  # all past stop
    wave = _on_clock(wave, begin, stop, Path(container.name).name)
    return wave if stop is None else wave[: math.ceil(stop * SAMPLE_RATE)]


def read_audio_track(path: str | os.PathLike, seconds: float | None = None) -> np.ndarray | None:
    """The first audio stream of a file -> (S,) float32 mono 16 kHz, or None when it has none,
    on the file's clock as a player plays it (`clock_origin`): a track that starts 2 s after the
    video (`ffmpeg -itsoffset 2`) begins with 2 s of silence. Any channel layout is mixed down
    to the mean of its channels.

    With `seconds`, only the first `seconds` (plus AUDIO_MARGIN, cut off again) are decoded,
    however long the track: a 30-min track under a 5-s video costs 5 s of decoding."""
    path = existing(path)
    with open_container(path) as container:
        if not container.streams.audio:
            return None
        stop = None if seconds is None else seconds + AUDIO_MARGIN
        zero = clock_origin(container)
        wave = _decode_audio(container, container.streams.audio[0], stop, zero)
    if wave is not None and seconds is not None:
        wave = wave[: round(seconds * SAMPLE_RATE)]
    return wave


def read_audio(path: str | os.PathLike, seconds: float | None = None) -> np.ndarray:
    """An audio file (wav, mp3, flac, m4a, ogg, ...) or a video's audio track ->
    (S,) float32 mono at 16 kHz; with `seconds`, only that much is decoded (see
    `read_audio_track`). soundfile is the fallback for what PyAV cannot read."""
    path = existing(path)
    try:
        wave = read_audio_track(path, seconds)
        if wave is None:
            raise MediaError(f"{path.name} has no audio stream; give an audio file")
    except MediaError as err:
        wave = _read_with_soundfile(path, err, seconds)
    if wave is None or wave.size == 0:
        raise MediaError(f"{path.name} holds no audio samples; give another audio file")
    return checked_waveform(wave, path.name)


def _read_with_soundfile(path: Path, err: MediaError, seconds: float | None) -> np.ndarray:
    import soundfile

    try:
        with soundfile.SoundFile(str(path)) as sound:
            rate = sound.samplerate
            frames = -1 if seconds is None else math.ceil((seconds + AUDIO_MARGIN) * rate)
            data = sound.read(frames, dtype="float32", always_2d=True)  # (S, C)
    except (RuntimeError, soundfile.LibsndfileError):
        raise err from None
    wave = to_mono_16k(torch.from_numpy(data.T.copy()), rate).numpy()
    return wave if seconds is None else wave[: round(seconds * SAMPLE_RATE)]


def white_noise(num_samples: int, seed: int, std: float = 0.1) -> np.ndarray:
    """(num_samples,) float32 Gaussian white noise, clipped to [-1, 1]; same seed, same noise."""
    noise = np.random.default_rng(seed).normal(0.0, std, size=int(num_samples))
    return np.clip(noise, -1.0, 1.0).astype(np.float32)


def write_wav(path: str | os.PathLike, waveform: np.ndarray, sr: int = SAMPLE_RATE) -> Path:
    """(S,) or (S, C) float waveform in [-1, 1] -> 16-bit PCM WAV, written atomically."""
    import soundfile

    data = np.clip(np.asarray(waveform, dtype=np.float32), -1.0, 1.0)
    with atomic_path(path) as tmp:
        soundfile.write(str(tmp), data, int(sr), subtype="PCM_16", format="WAV")
    return Path(path)


# integer PCM as the WAV convention reads it: full scale is the type's magnitude
_PCM_FULL_SCALE = {np.dtype(np.int8): 2**7, np.dtype(np.int16): 2**15, np.dtype(np.int32): 2**31}


def _as_float(wave: np.ndarray, what: str) -> np.ndarray:
    """Samples as float32 in PCM full scale: float as they are; int8/16/32 divided by 2^(bits-1)
    and uint8 centred at 128 (WAV's 8-bit), so that int16 32767 is 1.0, not 32767."""
    if np.issubdtype(wave.dtype, np.floating):
        return wave.astype(np.float32, copy=False)
    if wave.dtype == np.uint8:
        return (wave.astype(np.float32) - 128) / 128
    if wave.dtype in _PCM_FULL_SCALE:
        return (wave / np.float32(_PCM_FULL_SCALE[wave.dtype])).astype(np.float32)
    raise MediaError(
        f"{what} holds {wave.dtype} samples, whose full scale is ambiguous; give float samples "
        "in [-1, 1], or 8-, 16- or 32-bit PCM (uint8, int16, int32)"
    )


def checked_waveform(samples, what: str = "the audio waveform") -> np.ndarray:
    """(S,) numbers, finite, non-empty -> float32 (S,) (no copy when it already is); integer PCM
    is scaled to full scale [-1, 1] (`_as_float`); MediaError naming `what` otherwise. Every
    waveform the model may hear passes here: arrays given to the API, decoded files
    (`read_audio`) and a video's own track. Samples beyond full scale are kept here and
    clipped where they are heard (`full_scale`)."""
    if isinstance(samples, torch.Tensor):
        wave = samples.detach().cpu().numpy()
    else:
        wave = np.asarray(samples)
    if wave.ndim != 1 or not np.issubdtype(wave.dtype, np.number) or wave.size == 0:
        raise MediaError(
            f"{what} must be a non-empty (S,) array at 16 kHz, got shape {wave.shape} {wave.dtype}"
        )
    if np.issubdtype(wave.dtype, np.complexfloating):
        raise MediaError(f"{what} holds complex numbers; give real samples in [-1, 1]")
    wave = _as_float(wave, what)
    finite = np.isfinite(wave)
    if not finite.all():
        bad = int(wave.size - np.count_nonzero(finite))
        raise MediaError(
            f"{what} holds {bad} NaN or infinite sample(s) of {wave.size}; the model cannot hear "
            "it: give another audio file, or re-encode this one as 16-bit PCM "
            "(e.g. `ffmpeg -i in.wav -c:a pcm_s16le out.wav`, after fixing the broken samples)"
        )
    return wave


# a peak up to this far past full scale is a lossy codec's overshoot (AAC decodes loud
# masters a little past 1.0): clipped like the rest, but not worth a note
NOTED_PEAK = 1.01


def full_scale(wave: np.ndarray, what: str) -> tuple[np.ndarray, str | None]:
    """Samples beyond full scale (|x| > 1, e.g. a float WAV at 1e6) clipped to [-1, 1], as a
    player plays them and as the overlay's AAC track carries them, so the model hears what
    is written -> (the waveform, a note saying how many were clipped when the peak passes
    NOTED_PEAK, else None)."""
    over = int(np.count_nonzero(np.abs(wave) > 1.0))
    if not over:
        return wave, None
    if np.abs(wave).max() <= NOTED_PEAK:
        return np.clip(wave, -1.0, 1.0), None
    note = (
        f"{what}: {over} of {wave.size} samples lie beyond full scale (peak "
        f"{float(np.abs(wave).max()):.3g}); the model hears them clipped to [-1, 1], as a "
        "player plays them and as the overlay's audio carries them"
    )
    return np.clip(wave, -1.0, 1.0), note
