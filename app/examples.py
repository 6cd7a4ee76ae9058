"""The demo's catalogue: example clips and the checkpoints a user can pick.

Examples are the video files in the examples directory (AVS-Synth clips, mp4 with audio). An
optional `examples.json` beside them maps a file name to a one-line description, e.g.
`{"two_sources.mp4": "two sounding objects and a silent distractor"}`, or to an object
`{"description": ..., "objects": {"drum": "blue triangle", ...}, "compare": "selm-hard-no_dam"}`
naming what each category looks like and the checkpoint its description compares with the
default (the Compare tab's first choice when it is listed); without one, the label is the file
name.

Checkpoints are directories holding `config.json` and `model.safetensors`, optionally an
`evaluation.json` (metric name -> number or [low, high], flat or nested) and a `README.md` model
card with Hugging Face front matter (`datasets:`, `model-index`, ...); `checkpoint_info` reads
what is there and says so where nothing is.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from selm.weights.checkpoint import CARD_NAME, CONFIG_NAME, EVALUATION_NAME, is_checkpoint
from selm.weights.release import OFFICIAL_PREFIX

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi")
DESCRIPTIONS_FILE = "examples.json"

NO_EVALUATION = "no evaluation recorded"


@dataclass(frozen=True)
class Example:
    """One example clip: `name` (its file name) and a short `description` for the UI."""

    name: str
    path: Path
    description: str
    objects: dict[str, str] = field(default_factory=dict)  # category -> what it looks like
    compare: str | None = None  # the checkpoint the description compares with the default

    @property
    def label(self) -> str:
        text = f"{self.name}: {self.description}" if self.description else self.name
        if self.objects:
            text += " | " + ", ".join(f"{k} = {v}" for k, v in self.objects.items())
        return text


def find_examples(directory: str | os.PathLike) -> list[Example]:
    """The example clips in `directory`, sorted by name; [] when it does not exist."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    entries: dict[str, dict] = {}
    meta = directory / DESCRIPTIONS_FILE
    if meta.is_file():
        try:
            loaded = json.loads(meta.read_text())
            for name, value in loaded.items():
                if isinstance(value, dict):
                    objects = {str(k): str(v) for k, v in (value.get("objects") or {}).items()}
                    compare = value.get("compare")
                    entries[str(name)] = dict(
                        description=str(value.get("description", "")),
                        objects=objects,
                        compare=None if compare is None else str(compare),
                    )
                else:
                    entries[str(name)] = dict(description=str(value))
        except (json.JSONDecodeError, AttributeError) as err:
            raise ValueError(
                f"{meta.name}: expected a JSON object {{file name: description}} ({err})"
            ) from err
    return [
        Example(
            name=p.name,
            path=p.resolve(),
            **entries.get(p.name, dict(description="")),
        )
        for p in sorted(directory.iterdir())
        if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
    ]


def find_checkpoints(given: list[str] | None, default: str | os.PathLike) -> dict[str, str]:
    """Checkpoints for the pickers as {label: dir or Hub repo id}, the default first.

    `given` (the --checkpoint flags) is used as it is; without it, the default directory and its
    sibling checkpoint directories (e.g. the ablated models next to `selm-synth`).
    """
    if given:
        entries = list(dict.fromkeys(given))
    else:
        default = Path(default)
        siblings = (
            sorted(p for p in default.parent.iterdir() if p.is_dir() and is_checkpoint(p))
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


def _front_matter(card: Path) -> dict:
    """The YAML between the first two `---` lines of a model card; {} when absent or broken."""
    try:
        text = card.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        return {}
    try:
        data = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def flatten_metrics(data, prefix: str = "") -> dict[str, str]:
    """A flat or nested mapping of metric names to numbers or [low, high] intervals ->
    {"a / b": "0.822" or "0.80 [0.77, 0.83]"}; anything else (text, lists of other lengths)
    is left out. A mapping {"value": x, "ci": [lo, hi]} (or "low"/"high") reads as one entry."""
    out: dict[str, str] = {}
    if not isinstance(data, dict):
        return out
    value = data.get("value", data.get("mean"))
    interval = data.get("ci", data.get("interval"))
    if interval is None and _number(data.get("low")) and _number(data.get("high")):
        interval = [data["low"], data["high"]]
    if prefix and _number(value):
        text = f"{value:.3f}"
        if isinstance(interval, list | tuple) and len(interval) == 2:
            if all(_number(v) for v in interval):
                text += f" [{interval[0]:.3f}, {interval[1]:.3f}]"
        out[prefix] = text
        return out
    for key, item in data.items():
        name = f"{prefix} / {key}" if prefix else str(key)
        if _number(item):
            out[name] = f"{item:.3f}" if isinstance(item, float) else str(item)
        elif isinstance(item, list | tuple) and len(item) == 2 and all(_number(v) for v in item):
            out[name] = f"[{item[0]:.3f}, {item[1]:.3f}]"
        elif isinstance(item, dict):
            out.update(flatten_metrics(item, name))
    return out


@dataclass(frozen=True)
class CheckpointInfo:
    """What the UI says about a checkpoint: trained on what, at which input size, headline
    numbers, its recorded evaluation (metric -> text), and whether it only saw synthetic data."""

    name: str
    trained_on: str
    input_size: int | None
    headline: str
    evaluation: dict[str, str]
    synthetic: bool

    @property
    def label(self) -> str:
        size = f"{self.input_size} px" if self.input_size else "input size unknown"
        parts = [self.name, self.trained_on, size]
        if self.headline:
            parts.append(self.headline)
        return " | ".join(parts)

    def evaluation_markdown(self) -> str:
        """The checkpoint's evaluation row as a small two-column table (or the fact there is
        none), headed by its name."""
        head = f"**{self.name}**: trained on {self.trained_on}"
        if self.input_size:
            head += f", input {self.input_size} px"
        if not self.evaluation:
            return f"{head}. *{NO_EVALUATION}.*"
        rows = "\n".join(f"| {k} | {v} |" for k, v in self.evaluation.items())
        return f"{head}.\n\n| metric | value |\n|---|---:|\n{rows}"


def _trained_on(card: dict, evaluation: dict, training: dict, name: str) -> str:
    for source in (card.get("datasets"), evaluation.get("dataset"), evaluation.get("data")):
        if isinstance(source, str) and source:
            return source
        if isinstance(source, list) and source:
            return ", ".join(str(s) for s in source)
    for key in ("dataset", "data", "data_root"):
        if isinstance(training.get(key), str) and training[key]:
            return Path(training[key]).name
    if "synth" in name.lower():
        return "AVS-Synth (synthetic shapes)"
    return "unknown data"


def checkpoint_info(spec: str, name: str | None = None) -> CheckpointInfo:
    """Read what a checkpoint says about itself (config.json's `training`, `evaluation.json`,
    the model card's front matter); every part is optional."""
    name = name or (Path(spec).name if not spec.startswith(OFFICIAL_PREFIX) else spec)
    if spec.startswith(OFFICIAL_PREFIX):
        return CheckpointInfo(
            name=name,
            trained_on="AVSBench (the authors' published model)",
            input_size=None,
            headline="",
            evaluation={},
            synthetic=False,
        )
    folder = Path(spec)

    def load_json(path: Path) -> dict:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    config = load_json(folder / CONFIG_NAME) if folder.is_dir() else {}
    evaluation = load_json(folder / EVALUATION_NAME) if folder.is_dir() else {}
    card = _front_matter(folder / CARD_NAME) if folder.is_dir() else {}
    training = config.get("training") if isinstance(config.get("training"), dict) else {}
    model = config.get("config") if isinstance(config.get("config"), dict) else {}
    size = model.get("input_size")
    metrics = flatten_metrics(evaluation)
    if metrics:
        headline = ", ".join(f"{k} {v}" for k, v in list(metrics.items())[:2])
    elif _number(training.get("j_legacy")):
        headline = f"val M_J {training['j_legacy']:.3f}"
    else:
        headline = ""
    trained_on = _trained_on(card, evaluation, training, name)
    return CheckpointInfo(
        name=name,
        trained_on=trained_on,
        input_size=int(size) if _number(size) else None,
        headline=headline,
        evaluation=metrics,
        synthetic="synth" in trained_on.lower(),
    )
