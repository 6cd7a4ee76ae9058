"""AVS-Synth sounds: one synthesis recipe per category, each with its own band and rhythm in
VGGish's 64 mel bands (125-7500 Hz), plus per-second gating and the clip mix.

Every recipe returns a continuous signal at unit RMS; the mix gates it to the seconds in which
its source sounds (audio example i covers [i, i + 0.96) s: a source that sounds in second i is
on for all of it, with short fades that fall outside the examples).
"""

from __future__ import annotations

import numpy as np

from selm.transforms.log_mel import SAMPLE_RATE

SR = SAMPLE_RATE  # the model's rate (selm.transforms.log_mel): the synthetic sounds are made at it
LEVEL = 0.1  # RMS of a source at loudness 1
RAMP = 160  # 10 ms fade-in at the start of a sounding second
TAIL = int(0.96 * SR)  # fades out over [i + 0.96, i + 1): between two audio examples


def _pitch(rng: np.random.Generator, base: float, octaves: float) -> float:
    return float(base * 2.0 ** rng.uniform(-octaves, octaves))


def sample_sound_params(recipe: str, rng: np.random.Generator) -> dict:
    """Instance jitter of a recipe: pitch, rhythm, loudness, and the seed of its noise."""
    params = {
        "harmonic": lambda: dict(f0=_pitch(rng, 220, 0.25)),
        "pluck": lambda: dict(f0=_pitch(rng, 523, 0.15), period=rng.uniform(0.22, 0.36)),
        "bursts": lambda: dict(rate=rng.uniform(3.0, 5.0), cutoff=rng.uniform(700, 1000)),
        "chirps": lambda: dict(low=_pitch(rng, 2300, 0.1), period=rng.uniform(0.15, 0.25)),
        "am": lambda: dict(carrier=_pitch(rng, 1000, 0.15), rate=rng.uniform(5.0, 9.0)),
        "pulses": lambda: dict(rate=rng.uniform(40.0, 70.0)),
        "bandnoise": lambda: dict(low=rng.uniform(3500, 4200), high=rng.uniform(6500, 7400)),
        "formant": lambda: dict(f0=_pitch(rng, 125, 0.2), syllable=rng.uniform(3.0, 5.0)),
    }
    if recipe not in params:
        raise ValueError(f"unknown sound recipe {recipe!r}; known: {RECIPES}")
    out = {k: float(v) for k, v in params[recipe]().items()}
    out["loudness"] = float(rng.uniform(0.7, 1.3))
    out["seed"] = int(rng.integers(2**31))
    return out


def _band(x: np.ndarray, gain) -> np.ndarray:
    """Filter x by a zero-phase gain over frequency (gain: Hz array -> array)."""
    spectrum = np.fft.rfft(x)
    spectrum *= gain(np.fft.rfftfreq(x.size, 1.0 / SR))
    return np.fft.irfft(spectrum, x.size)


def _karplus_strong(f0: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """A plucked string: y[k] = x[k] + 0.498 (y[k-L] + y[k-L-1]), computed L samples at a time
    (every sample of a block depends only on earlier blocks)."""
    period = max(int(round(SR / f0)), 2)
    y = np.zeros(n + period + 1)
    # a string plucked at 30% of its length, plus a little noise (y[0]: the sample before)
    shape = np.interp(np.arange(period) / period, [0.0, 0.3, 1.0], [0.0, 1.0, 0.0])
    y[1 : period + 1] = shape - shape.mean() + 0.1 * rng.uniform(-1, 1, period)
    for start in range(period + 1, n + 1, period):
        stop = min(start + period, n + 1)
        y[start:stop] = 0.498 * (
            y[start - period : stop - period] + y[start - period - 1 : stop - period - 1]
        )
    return y[1 : n + 1]


def synthesize(recipe: str, params: dict, seconds: float) -> np.ndarray:
    """(round(seconds * 16000),) float64 at unit RMS: the recipe playing all the time."""
    n = int(round(seconds * SR))
    t = np.arange(n) / SR
    rng = np.random.default_rng(params["seed"])
    p = params
    if recipe == "harmonic":  # steady horn: 8 harmonics, 1/k
        phase = 2 * np.pi * p["f0"] * t
        x = sum(np.sin(k * phase) / k for k in range(1, 9))
    elif recipe == "pluck":  # the same pluck repeated every `period` seconds
        m = int(p["period"] * SR)
        x = np.resize(_karplus_strong(p["f0"], m, rng), n)
    elif recipe == "bursts":  # low drum hits, 60 ms decays, at `rate` per second
        local = np.mod(t, 1.0 / p["rate"])
        x = _band(rng.standard_normal(n), lambda f: (f > 60) & (f < p["cutoff"]))
        x *= np.exp(-local / 0.03) * (local < 0.12)
    elif recipe == "chirps":  # bird: 90 ms up-sweeps low -> 1.8 low, every `period` s
        local, dur, ratio = np.mod(t, p["period"]), 0.09, 1.8
        phase = 2 * np.pi * p["low"] * dur / np.log(ratio) * (ratio ** (local / dur) - 1)
        x = np.sin(phase) * np.sin(np.pi * np.clip(local / dur, 0, 1)) ** 2
    elif recipe == "am":  # siren: one tone, amplitude-modulated at `rate` Hz
        x = np.sin(2 * np.pi * p["carrier"] * t) * (1 + 0.9 * np.sin(2 * np.pi * p["rate"] * t))
    elif recipe == "pulses":  # engine: broadband clicks at `rate` Hz
        x = np.zeros(n)
        x[(np.arange(0, seconds, 1.0 / p["rate"]) * SR).astype(int)] = 1.0
        x = _band(np.convolve(x, np.exp(-np.arange(16) / 3.0))[:n], lambda f: f > 100)
    elif recipe == "bandnoise":  # fountain: steady hiss between `low` and `high` Hz
        x = _band(rng.standard_normal(n), lambda f: (f > p["low"]) & (f < p["high"]))
    elif recipe == "formant":  # voice: a buzz with vibrato through 3 formants, syllable rhythm
        f0 = p["f0"] * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))
        saw = 2 * np.mod(np.cumsum(f0) / SR, 1.0) - 1
        formants = ((700, 130), (1200, 150), (2600, 220))
        x = _band(saw, lambda f: sum(np.exp(-0.5 * ((f - c) / w) ** 2) for c, w in formants))
        x *= 0.25 + 0.75 * np.sin(np.pi * p["syllable"] * t) ** 2
    else:
        raise ValueError(f"unknown sound recipe {recipe!r}; known: {RECIPES}")
    return x / max(float(np.sqrt(np.mean(x**2))), 1e-8)


RECIPES = ("harmonic", "pluck", "bursts", "chirps", "am", "pulses", "bandnoise", "formant")


def gate(sounding: tuple[bool, ...] | np.ndarray, n: int) -> np.ndarray:
    """(n,) envelope: 1 during sounding seconds, fades at the edges of a sounding run."""
    on = np.asarray(sounding, dtype=bool)
    g = np.zeros(n)
    fade_in = np.linspace(0.0, 1.0, RAMP, endpoint=False)
    fade_out = np.linspace(1.0, 0.0, SR - TAIL)
    for i in np.nonzero(on)[0]:
        start, stop = i * SR, min((i + 1) * SR, n)
        g[start:stop] = 1.0
        if i == 0 or not on[i - 1]:
            g[start : start + RAMP] = fade_in[: max(0, min(RAMP, stop - start))]
        if i + 1 >= len(on) or not on[i + 1]:
            end = start + TAIL
            g[end:stop] = fade_out[: max(0, stop - end)]
    return g


def gate_spans(spans, n: int) -> np.ndarray:
    """(n,) envelope: 1 inside each (start, stop) span in seconds (hard clips: sounds that start
    and stop inside a second), with 10 ms linear fades inside the span at both ends."""
    g = np.zeros(n)
    for start, stop in spans:
        a, b = int(round(start * SR)), min(int(round(stop * SR)), n)
        if b <= a:
            continue
        g[a:b] = 1.0
        ramp = min(RAMP, (b - a) // 2)
        g[a : a + ramp] = np.linspace(0.0, 1.0, ramp, endpoint=False)
        g[b - ramp : b] = np.linspace(1.0, 0.0, ramp + 1)[1:]
    return g


def background_noise(seed: int, n: int, snr_db: float) -> np.ndarray:
    """Pinkish noise whose RMS sits snr_db below a source at loudness 1."""
    rng = np.random.default_rng(seed)
    x = _band(rng.standard_normal(n), lambda f: 1.0 / np.sqrt(np.maximum(f, 50.0)))
    x /= max(float(np.sqrt(np.mean(x**2))), 1e-8)
    return x * LEVEL * 10 ** (-snr_db / 20)


def mix(
    sources: list[tuple],
    seconds: int,
    noise_seed: int,
    snr_db: float | None,
) -> np.ndarray:
    """(seconds * 16000,) float32: the gated sources plus background noise (None: none),
    scaled down only if it would clip. A source is (recipe, params, sounding) gated by whole
    seconds, or (recipe, params, sounding, spans) gated by its (start, stop) spans."""
    n = seconds * SR
    out = np.zeros(n)
    for recipe, params, sounding, *spans in sources:
        if any(sounding):
            level = LEVEL * params["loudness"]
            env = gate(sounding, n) if not spans or spans[0] is None else gate_spans(spans[0], n)
            out += level * synthesize(recipe, params, seconds) * env
    if snr_db is not None:
        out += background_noise(noise_seed, n, snr_db)
    peak = float(np.abs(out).max(initial=0.0))
    if peak > 0.99:
        out *= 0.99 / peak
    return out.astype(np.float32)
