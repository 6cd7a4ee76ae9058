"""VGGish's log-mel front end (docs/model.md, section 'Inputs') on torchaudio.

16 kHz mono -> 25 ms periodic-Hann frames every 10 ms -> |FFT 512| -> 64 HTK mel bands
(125-7500 Hz) -> log(mel + 0.01) -> non-overlapping 0.96 s examples of 96 x 64.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torchaudio

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 512
N_MELS = 64
F_MIN, F_MAX = 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s
EXAMPLE_SAMPLES = (EXAMPLE_FRAMES - 1) * HOP + WINDOW  # samples one example needs
PADDINGS = ("repeat", "zeros")  # how short audio is filled to T examples (SelMConfig.audio_padding)


def _hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log1p(hz / 700.0)  # HTK


def vggish_mel_matrix(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(N_FFT // 2 + 1, N_MELS) weights, triangles linear in mel as VGGish builds them.

    torchaudio's `melscale_fbanks` draws the triangles linear in Hz, which is not VGGish's
    matrix, so this one small piece is written here. The DC bin gets no weight.
    """
    bins = torch.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1, dtype=torch.float64)
    bins_mel = _hz_to_mel(bins)
    edges = torch.linspace(
        _hz_to_mel(torch.tensor(F_MIN, dtype=torch.float64)).item(),
        _hz_to_mel(torch.tensor(F_MAX, dtype=torch.float64)).item(),
        N_MELS + 2,
        dtype=torch.float64,
    )
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    lower_slope = (bins_mel[:, None] - lower) / (center - lower)
    upper_slope = (upper - bins_mel[:, None]) / (upper - center)
    weights = torch.clamp(torch.minimum(lower_slope, upper_slope), min=0.0)
    weights[0, :] = 0.0
    return weights.to(dtype)


class LogMel(torch.nn.Module):
    """Waveform (..., S) at 16 kHz -> log-mel frames (..., F, 64), F = 1 + (S - 400) // 160."""

    def __init__(self) -> None:
        super().__init__()
        pad = (N_FFT - WINDOW) // 2
        # torch.stft centres a short window inside each n_fft frame; padding the signal by the
        # same amount on both sides puts frame i on samples [160 i, 160 i + 400) as in VGGish,
        # and the magnitude of a zero-padded frame does not depend on where the zeros sit.
        self.pad = pad
        self.spectrogram = torchaudio.transforms.Spectrogram(
            n_fft=N_FFT,
            win_length=WINDOW,
            hop_length=HOP,
            center=False,
            power=1.0,
            window_fn=torch.hann_window,  # periodic by default, as VGGish's
        )
        self.register_buffer("mel", vggish_mel_matrix(), persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.shape[-1] < WINDOW:
            waveform = torch.nn.functional.pad(waveform, (0, WINDOW - waveform.shape[-1]))
        x = torch.nn.functional.pad(waveform, (self.pad, self.pad))
        spec = self.spectrogram(x.float())  # (..., 257, F)
        mel = spec.transpose(-1, -2) @ self.mel.to(spec.dtype)  # (..., F, 64)
        return torch.log(mel + LOG_OFFSET)


@functools.cache
def _log_mel() -> LogMel:
    """The one LogMel of this process (its mel matrix is built once)."""
    return LogMel()


def to_mono_16k(waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """(C, S) or (S,) at any rate -> (S,) float32 mono at 16 kHz."""
    if waveform.dim() == 2:
        waveform = waveform.float().mean(0)
    elif waveform.dim() != 1:
        raise ValueError(f"waveform must be (S,) or (C, S), got shape {tuple(waveform.shape)}")
    waveform = waveform.float()
    if sample_rate != SAMPLE_RATE:
        waveform = torchaudio.functional.resample(waveform, sample_rate, SAMPLE_RATE)
    return waveform


class BlockResampler:
    """`to_mono_16k` of a long mono signal fed in pieces, in blocks of about `block_seconds`:
    memory stays a block, not the whole signal at its own rate (a 300-s 44.1-kHz track held
    ~215 MB of temporaries in one call). Each block is resampled by torchaudio with `context`
    input samples of the real signal on both sides, aligned to the resampler's period, and only
    its own outputs are kept; the result equals resampling the whole signal at once to float
    rounding (the FIR sees the same samples; tests/selm/transforms/test_log_mel.py), and has
    its length.
    """

    LOWPASS_WIDTH, ROLLOFF = 6, 0.99  # torchaudio.functional.resample's defaults

    def __init__(self, sample_rate: int, block_seconds: float = 10.0) -> None:
        self.rate = int(sample_rate)
        g = math.gcd(self.rate, SAMPLE_RATE)
        self.orig, self.new = self.rate // g, SAMPLE_RATE // g
        # torchaudio's kernel reaches this many input samples either side of an output
        reach = math.ceil(
            self.LOWPASS_WIDTH * self.orig / (min(self.orig, self.new) * self.ROLLOFF)
        )
        self.context = self.orig * (math.ceil((reach + 1) / self.orig) + 1)
        self.block = self.orig * max(1, round(block_seconds * self.rate / self.orig))
        self._pending: list[np.ndarray] = []  # input not yet joined to the buffer
        self._pending_samples = 0
        self._buffer = np.zeros(0, np.float32)
        self._left = 0  # samples of context at the buffer's start (0 at the signal's start)
        self._out: list[np.ndarray] = []

    def _resample(self, piece: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(piece, dtype=np.float32))
        if self.rate != SAMPLE_RATE:
            x = torchaudio.functional.resample(x, self.rate, SAMPLE_RATE)
        return x.numpy()

    def feed(self, samples: np.ndarray) -> None:
        """Append (n,) float32 mono samples at `sample_rate`."""
        samples = np.asarray(samples, np.float32)
        self._pending.append(samples)
        self._pending_samples += len(samples)
        if len(self._buffer) - self._left + self._pending_samples < self.block + self.context:
            return
        self._buffer = np.concatenate([self._buffer, *self._pending])
        self._pending, self._pending_samples = [], 0
        while len(self._buffer) - self._left >= self.block + self.context:
            piece = self._buffer[: self._left + self.block + self.context]
            skip = self._left * self.new // self.orig
            self._out.append(
                self._resample(piece)[skip : skip + self.block * self.new // self.orig]
            )
            start = self._left + self.block - self.context  # keep `context` before the next block
            self._buffer, self._left = self._buffer[start:].copy(), self.context

    def finish(self) -> np.ndarray:
        """The whole signal at 16 kHz, (S,) float32 (its length: ceil(S_in * 16000 / rate))."""
        rest = np.concatenate([self._buffer, *self._pending])
        self._pending, self._pending_samples = [], 0
        self._buffer = np.zeros(0, np.float32)
        if len(rest) > self._left:
            skip = self._left * self.new // self.orig
            self._out.append(self._resample(rest)[skip:])
        out = np.concatenate(self._out) if self._out else np.zeros(0, np.float32)
        self._out = []
        return out


def log_mel_examples(
    waveform: torch.Tensor,
    sample_rate: int = SAMPLE_RATE,
    num_examples: int | None = None,
    padding: str = "repeat",
) -> torch.Tensor:
    """Waveform -> VGGish examples (N, 1, 96, 64), one per second of audio.

    With `num_examples`, the result has exactly that many: extra examples are dropped and
    missing ones are padded by repeating the last example (`padding="repeat"`, S4/MS3) or
    with zeros (`"zeros"`, AVSS). A waveform of zeros ("mute") gives log(0.01) everywhere.
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    wav = to_mono_16k(waveform, sample_rate)
    frames = _log_mel()(wav)  # (F, 64)
    count = frames.shape[0] // EXAMPLE_FRAMES
    examples = frames[: count * EXAMPLE_FRAMES].reshape(count, 1, EXAMPLE_FRAMES, N_MELS)
    if num_examples is None:
        if count == 0:
            raise ValueError(
                f"audio of {wav.numel() / SAMPLE_RATE:.3f} s is shorter than one 0.96 s example"
            )
        return examples
    if count == 0 and padding == "repeat":
        # nothing to repeat: the whole (short) signal padded with silence is the example
        wav = torch.nn.functional.pad(wav, (0, EXAMPLE_SAMPLES - wav.numel()))
        examples = _log_mel()(wav)[:EXAMPLE_FRAMES].reshape(1, 1, EXAMPLE_FRAMES, N_MELS)
    return fit_examples(examples, num_examples, padding)


def fit_examples(examples: torch.Tensor, num_examples: int, padding: str) -> torch.Tensor:
    """(N, 1, 96, 64) -> exactly (num_examples, 1, 96, 64): extra examples dropped, missing ones
    the last example repeated (`"repeat"`, S4/MS3) or zeros (`"zeros"`, AVSS; also when N = 0)."""
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    count = examples.shape[0]
    if count >= num_examples:
        return examples[:num_examples].contiguous()
    if count == 0 or padding == "zeros":
        fill = examples.new_zeros(1, 1, EXAMPLE_FRAMES, N_MELS)
    else:
        fill = examples[-1:]
    pad = fill.expand(num_examples - count, -1, -1, -1)
    return torch.cat([examples, pad], dim=0).contiguous()
