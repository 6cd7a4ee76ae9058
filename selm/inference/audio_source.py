"""What the model hears: `AudioSource`, the typed audio choice `Predictor.predict` takes.

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

from selm.media.audio import checked_waveform

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
