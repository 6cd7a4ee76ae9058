"""What the model hears: `AudioSource`, the typed audio choice `Predictor.predict` takes, and
`HeardAudio`, that choice as samples for a video whose length is known only once decoded.

    AudioSource.original()        the video's own audio track
    AudioSource.mute()            silence (zeros)
    AudioSource.noise()           white noise (a fixed seed: the same noise on every call)
    AudioSource.file(path)        an audio file, or the audio track of a video file
    AudioSource.waveform(samples) an (S,) waveform at 16 kHz

`AudioSource.parse` also takes the plain forms of the public API: the strings "original",
"mute" and "noise"; any other string, or any `os.PathLike`, is a file. A `Path` is always a
file, so a file named `mute` is `Path("mute")` or `AudioSource.file("mute")`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from selm.media.audio import (
    checked_waveform,
    full_scale,
    read_audio,
    read_audio_track,
    white_noise,
)
from selm.media.container import MediaError
from selm.media.video import Clip
from selm.transforms.log_mel import SAMPLE_RATE

AudioKind = Literal["original", "mute", "noise", "file", "waveform"]
KINDS: tuple[str, ...] = ("original", "mute", "noise", "file", "waveform")
NAMED: tuple[str, ...] = ("original", "mute", "noise")  # the kinds a plain string may name


@dataclass(frozen=True, eq=False)
class AudioSource:
    """kind: one of KINDS; path: the file (kind "file" only); samples: (S,) float32 at 16 kHz,
    read-only (kind "waveform" only)."""

    kind: AudioKind = "original"
    path: Path | None = None
    samples: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"AudioSource kind {self.kind!r}: expected one of {KINDS}")
        if (self.kind == "file") != (self.path is not None):
            raise ValueError("an AudioSource has a path exactly when its kind is 'file'")
        if (self.kind == "waveform") != (self.samples is not None):
            raise ValueError("an AudioSource has samples exactly when its kind is 'waveform'")
        if self.path is not None:
            object.__setattr__(self, "path", Path(self.path))
        if self.samples is not None:
            object.__setattr__(self, "samples", _checked_waveform(self.samples))

    @classmethod
    def original(cls) -> AudioSource:
        return cls("original")

    @classmethod
    def mute(cls) -> AudioSource:
        return cls("mute")

    @classmethod
    def noise(cls) -> AudioSource:
        return cls("noise")

    @classmethod
    def file(cls, path: str | os.PathLike) -> AudioSource:
        return cls("file", path=Path(path))

    @classmethod
    def waveform(cls, samples) -> AudioSource:
        return cls("waveform", samples=samples)

    @classmethod
    def parse(cls, audio) -> AudioSource:
        """An AudioSource as it is; "original" / "mute" / "noise"; any other str or an
        os.PathLike -> a file; an array or tensor -> a waveform."""
        if isinstance(audio, AudioSource):
            return audio
        if isinstance(audio, str):
            return cls(audio) if audio in NAMED else cls.file(audio)
        if isinstance(audio, os.PathLike):
            return cls.file(audio)
        return cls.waveform(audio)

    @property
    def label(self) -> str:
        """What `Prediction.audio_label` says: the kind, or the file's name for a file."""
        return self.path.name if self.kind == "file" else self.kind

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AudioSource):
            return NotImplemented
        if (self.kind, self.path) != (other.kind, other.path):
            return False
        if self.samples is None:
            return True
        return np.array_equal(self.samples, other.samples)

    def __hash__(self) -> int:
        return hash((self.kind, self.path))

    def __repr__(self) -> str:
        if self.kind == "file":
            return f"AudioSource.file({str(self.path)!r})"
        if self.kind == "waveform":
            return f"AudioSource.waveform(<{len(self.samples)} samples>)"
        return f"AudioSource.{self.kind}()"


def _checked_waveform(samples) -> np.ndarray:
    """`checked_waveform` as a read-only float32 copy (the caller's array may change later)."""
    wave = np.array(checked_waveform(samples), dtype=np.float32)
    wave.flags.writeable = False
    return wave


NOISE_SEED = 0  # audio="noise" is the same noise on every call


NOISE_STD = 0.1  # white noise at -20 dBFS RMS: clearly audible, never clipped


AUDIO_CHOICES = NAMED  # the plain strings `audio` may be


def _fit(wave: np.ndarray, num_samples: int) -> np.ndarray:
    """Cut or zero-pad (S,) to num_samples."""
    wave = wave[:num_samples]
    return np.pad(wave, (0, num_samples - len(wave))).astype(np.float32, copy=False)


def no_track(name: str) -> MediaError:
    """The error for original audio asked of a video without an audio track."""
    return MediaError(
        f"{name} has no audio track, so there is no original audio; "
        "choose audio='mute' or 'noise', or give an audio file"
    )


class HeardAudio:
    """The audio the model hears, for a video whose length is known only once decoded:
    `samples(k)` are the first k samples of what `final(duration)` returns (the choice cut or
    zero-padded to the video), so windows can run before the end is reached. A file (or the
    video's own track, `track`) is decoded only as far as `bound` seconds, and further only if
    the video turns out longer (at least twice as far each time). Samples beyond full scale are
    clipped, as a player and the overlay's audio track have them (`full_scale`); `notes` says
    so."""

    def __init__(
        self, source: AudioSource, *, track: Path | None = None, bound=None, name: str = ""
    ) -> None:
        """`name`: what a waveform is called in notes (default "the waveform given")."""
        self.source, self.track, self.bound = source, track, bound
        self.wave: np.ndarray | None = None
        self.notes: list[str] = []
        if source.kind == "file" and not source.path.is_file():
            raise MediaError(
                f"audio={str(source.path)!r}: no such file; expected one of {AUDIO_CHOICES}, "
                "a path to an audio file, or an (S,) waveform at 16 kHz"
            )
        if source.kind == "waveform":
            self._hear(np.asarray(source.samples, np.float32), name or "the waveform given")
        elif source.kind in ("original", "file"):
            self._read(bound)

    def _hear(self, wave: np.ndarray | None, what: str) -> None:
        if wave is not None:
            wave, note = full_scale(wave, what)
            if note is not None and note not in self.notes:
                self.notes.append(note)
        self.wave = wave

    def _read(self, seconds: float | None) -> None:
        if self.source.kind == "original":
            track = read_audio_track(self.track, seconds)
            name = f"the audio track of {Path(self.track).name}"
            self._hear(None if track is None else checked_waveform(track, name), name)
        else:
            self._hear(read_audio(self.source.path, seconds), self.source.path.name)
        self.bound = seconds

    @property
    def label(self) -> str:
        return self.source.label

    def samples(self, count: int) -> np.ndarray:
        """The first `count` samples, (count,) float32."""
        kind = self.source.kind
        if kind == "mute":
            return np.zeros(count, np.float32)
        if kind == "noise":  # a longer draw of the same seed starts with the same samples
            if self.wave is None or len(self.wave) < count:
                longer = max(count, 2 * (0 if self.wave is None else len(self.wave)))
                self.wave = white_noise(longer, NOISE_SEED, std=NOISE_STD)
            return self.wave[:count]
        if self.bound is not None and count > self.bound * SAMPLE_RATE:
            self._read(max(count / SAMPLE_RATE, 2 * self.bound))
        return _fit(self.wave, count)

    def final(self, duration: float) -> np.ndarray:
        return self.samples(round(duration * SAMPLE_RATE))


def heard_for_clip(clip: Clip, audio) -> HeardAudio:
    """What the model hears with a clip (`resolve_audio`)."""
    source = AudioSource.parse(audio)
    if source.kind == "original":
        if clip.waveform is None:
            raise no_track(Path(clip.source).name)
        name = f"the audio track of {Path(clip.source).name}"
        return HeardAudio(AudioSource.waveform(checked_waveform(clip.waveform, name)), name=name)
    return HeardAudio(source, bound=clip.duration)


def resolve_audio(clip: Clip, audio) -> tuple[np.ndarray, str]:
    """The `audio` choice for a clip -> ((S,) float32 16 kHz cut / zero-padded to the video's
    duration, label). `audio` is an `AudioSource` or what `AudioSource.parse` takes:
    "original", "mute" (zeros), "noise" (white noise, fixed seed), a path to an audio (or
    video) file (a `Path` is always a file, any other str too), or an (S,) 16 kHz waveform.
    A file is decoded only as far as the clip lasts."""
    heard = heard_for_clip(clip, audio)
    return heard.final(clip.duration), AudioSource.parse(audio).label
