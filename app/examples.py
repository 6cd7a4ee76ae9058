"""The demo's catalogue: example clips and the checkpoints a user can pick.

Examples are the video files in the examples directory (AVS-Synth clips, mp4 with audio). An
optional `examples.json` beside them maps a file name to a one-line description, e.g.
`{"two_sources.mp4": "two sounding objects and a silent distractor"}`; without one, the label
is the file name. Checkpoints are directories holding `config.json` and `model.safetensors`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi")
DESCRIPTIONS_FILE = "examples.json"
CHECKPOINT_FILES = ("config.json", "model.safetensors")


@dataclass(frozen=True)
class Example:
    """One example clip: `name` (its file name) and a short `description` for the UI."""

    name: str
    path: Path
    description: str

    @property
    def label(self) -> str:
        return f"{self.name}: {self.description}" if self.description else self.name


def find_examples(directory: str | os.PathLike) -> list[Example]:
    """The example clips in `directory`, sorted by name; [] when it does not exist."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    descriptions: dict[str, str] = {}
    meta = directory / DESCRIPTIONS_FILE
    if meta.is_file():
        try:
            loaded = json.loads(meta.read_text())
            descriptions = {str(k): str(v) for k, v in loaded.items()}
        except (json.JSONDecodeError, AttributeError) as err:
            raise ValueError(
                f"{meta}: expected a JSON object {{file name: description}} ({err})"
            ) from err
    return [
        Example(name=p.name, path=p.resolve(), description=descriptions.get(p.name, ""))
        for p in sorted(directory.iterdir())
        if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
    ]


def is_checkpoint_dir(path: str | os.PathLike) -> bool:
    return all((Path(path) / name).is_file() for name in CHECKPOINT_FILES)


def find_checkpoints(given: list[str] | None, default: str | os.PathLike) -> dict[str, str]:
    """Checkpoints for the pickers as {label: dir or Hub repo id}, the default first.

    `given` (the --checkpoint flags) is used as it is; without it, the default directory and its
    sibling checkpoint directories (e.g. the ablated models next to `selm-hard`).
    """
    if given:
        entries = list(dict.fromkeys(given))
    else:
        default = Path(default)
        siblings = (
            sorted(p for p in default.parent.iterdir() if p.is_dir() and is_checkpoint_dir(p))
            if default.parent.is_dir()
            else []
        )
        entries = [str(default)] + [str(p) for p in siblings if p.resolve() != default.resolve()]
    labels: dict[str, str] = {}
    for entry in entries:
        label = Path(entry).name if Path(entry).exists() else entry
        while label in labels:  # two directories with one name: label them by their path
            label = entry if label != entry else f"{entry} ({len(labels)})"
        labels[label] = entry
    return labels
