"""Audio from media files as the model hears it, 16 kHz mono float32 (PyAV; soundfile for what
PyAV cannot read): a video's track or an audio file, decoded only as far as asked; every
waveform checked finite before the model hears it; white noise; WAV files written atomically."""

from __future__ import annotations

import math
import os
from pathlib import Path

import av
import numpy as np
import torch

from selm.files import atomic_path
from selm.media.container import MediaError, existing, open_container
from selm.transforms.log_mel import SAMPLE_RATE, BlockResampler, to_mono_16k

AUDIO_MARGIN = 1.0  # s of audio decoded past the seconds needed (resampling needs a little)


def _mono(frame: av.AudioFrame) -> np.ndarray:
    """(n,) float32: the channel mean of a planar frame (as `to_mono_16k`, chunk by chunk, so
    only one channel's worth of samples is held)."""
    planes = frame.to_ndarray()  # (C, n)
    return planes[0] if len(planes) == 1 else planes.mean(0, dtype=np.float32)


def _decode_audio(container, stream, stop: float | None) -> np.ndarray | None:
    """Decode `stream` from the start until `stop` seconds -> (S,) float32 mono 16 kHz."""
    resampler = av.AudioResampler(format="fltp")  # sample format only; rate, layout kept
    to_16k: BlockResampler | None = None  # to 16 kHz a block at a time (bounded memory)

    def feed(frames) -> None:
        nonlocal to_16k
        for c in frames:
            if to_16k is None:
                to_16k = BlockResampler(c.sample_rate)
            to_16k.feed(_mono(c))

    origin = None
    try:
        for frame in container.decode(stream):
            if stop is not None and frame.pts is not None and frame.time_base is not None:
                start = frame.pts * frame.time_base
                origin = start if origin is None else origin
                if start - origin > stop:
                    break
            feed(resampler.resample(frame))
        feed(resampler.resample(None))
    except av.FFmpegError as err:
        name = Path(container.name).name
        raise MediaError(
            f"{name} could not be decoded ({err}); re-encode it or give another file"
        ) from err
    if to_16k is None:
        return None
    wave = to_16k.finish()
    return wave if stop is None else wave[: math.ceil(stop * SAMPLE_RATE)]


def read_audio_track(path: str | os.PathLike, seconds: float | None = None) -> np.ndarray | None:
    """The first audio stream of a file -> (S,) float32 mono 16 kHz, or None when it has none.

    With `seconds`, only the first `seconds` (plus AUDIO_MARGIN, cut off again) are decoded,
    however long the track: a 30-min track under a 5-s video costs 5 s of decoding."""
    path = existing(path)
    with open_container(path) as container:
        if not container.streams.audio:
            return None
        stop = None if seconds is None else seconds + AUDIO_MARGIN
        wave = _decode_audio(container, container.streams.audio[0], stop)
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


def checked_waveform(samples, what: str = "the audio waveform") -> np.ndarray:
    """(S,) numbers, finite, non-empty -> float32 (S,) (no copy when it already is); MediaError
    naming `what` otherwise. Every waveform the model may hear passes here: arrays given to the
    API, decoded files (`selm.media.video.read_audio`) and a video's own track."""
    if isinstance(samples, torch.Tensor):
        wave = samples.detach().cpu().numpy()
    else:
        wave = np.asarray(samples)
    if wave.ndim != 1 or not np.issubdtype(wave.dtype, np.number) or wave.size == 0:
        raise MediaError(
            f"{what} must be a non-empty (S,) array at 16 kHz, got shape {wave.shape} {wave.dtype}"
        )
    finite = np.isfinite(wave)
    if not finite.all():
        bad = int(wave.size - np.count_nonzero(finite))
        raise MediaError(
            f"{what} holds {bad} NaN or infinite sample(s) of {wave.size}; the model cannot hear "
            "it: give another audio file, or re-encode this one as 16-bit PCM "
            "(e.g. `ffmpeg -i in.wav -c:a pcm_s16le out.wav`, after fixing the broken samples)"
        )
    return wave.astype(np.float32, copy=False)
