"""Training configuration: `TrainConfig` plus the SelM preset it selects (docs/model.md, sections
'Ablations' and 'Training recipe').

A YAML file holds `TrainConfig` fields at the top level, `preset:` (a `selm` preset name) and
`model:` (a mapping of `SelMConfig` fields overriding the preset); `base: other.yaml` (a path
relative to the file) starts from another file's values. `--set key=value` overrides one field
after the file (`--set lr=1e-4`, `--set model.bcsm=false`). Unknown keys are errors that name the
key; values are checked against the field's type (`2e-5`, which YAML reads as a string, is a float).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from selm.build import WeightSources
from selm.config import SelMConfig, coerce, get_config
from selm.files import atomic_write
from selm.presets import SETTINGS
from selm.weights.pretrained import pretrained_name

AMP_MODES = ("bf16", "fp16", "off")
# what a user's config, data, checkpoint, resume state or disk causes (the messages say what to
# fix): the command-line tools print one line and exit with 2; other errors are bugs
USER_ERRORS = (ValueError, KeyError, OSError)


def user_error_message(err: BaseException) -> str:
    """The one line to print for a user error (a KeyError's message without its quotes; for
    an error a DataLoader worker raised, the worker's own message, not its traceback)."""
    text = str(err.args[0] if isinstance(err, KeyError) and err.args else err)
    if "Original Traceback" in text:  # torch re-raises a worker's error with its traceback
        last = text.strip().splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(text.split()) or type(err).__name__


@dataclass
class DataOptions:
    """More `build_dataset` keywords (train/data/datasets.py); None keeps the loader's choice."""

    audio: str | None = None  # pkl | wav | vggish | log_mel (aliases in datasets.AUDIO_ALIASES)
    csv_path: str | None = None  # the split table, when it is not where the layout expects it
    data_dir: str | None = None  # the media folder, likewise
    mask_size: int | None = None  # resize masks to mask_size x mask_size (AVSS, as released)

    def kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass
class TrainConfig:
    # --- data ---
    setting: str = "ms3"  # s4 | ms3 | avss: loader layout, loss and metrics
    data_root: str | None = None  # AVSBench or AVS-Synth root (see train/datasets.py)
    train_split: str = "train"
    val_split: str = "val"  # evaluated every `eval_every` epochs; the best M_J is kept
    test_split: str = "test"
    augment: bool = False  # train split only: one crop/flip/colour/gain per clip (train.data)
    vggish_cache: str | None = None  # folder of cached VGGish embeddings (per split), used with
    # a frozen VGGish and written on first use from the model's VGGish: no VGGish in the loop
    data_options: DataOptions = field(default_factory=DataOptions)
    # --- model ---
    preset: str = "selm_tiny"  # a selm preset (selm_r50, selm_pvt_b5, selm_tiny, ...)
    model: dict[str, Any] = field(default_factory=dict)  # SelMConfig fields over the preset,
    # and the weight sources the builder loads (backbone_pretrained, backbone_weights,
    # vggish_weights: selm.build.WeightSources)
    init_from: str | None = None  # checkpoint dir whose weights start the run (release MS3 can
    # start from the S4 model); the config's architecture must match
    freeze_backbone_epochs: int = 0  # backbone frozen for the first N epochs (release MS3: 15)
    # --- optimisation (AdamW, constant lr: docs/model.md, section 'Training recipe') ---
    epochs: int = 100
    batch_size: int = 4  # clips per process and step (paper 4; release S4 2, MS3 1, AVSS 8)
    eval_batch_size: int = 2  # legacy M_J/M_F depend on it: the release tests with 2 videos
    lr: float = 2e-5
    weight_decay: float = 0.05  # 0.05 S4/MS3, 0.01 AVSS
    grad_clip: float = 0.0  # max global grad norm; 0 = off (the release does not clip)
    amp: str = "bf16"  # autocast on CUDA: bf16 | fp16 (with a GradScaler, release AVSS) | off
    seed: int = 123  # the release's FixSeed
    # --- runtime ---
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:N
    num_workers: int = 4
    out_dir: str | None = None  # run directory; None -> runs/<config file name>
    eval_every: int = 1  # epochs between validations (the last epoch is always validated)
    log_every: int = 20  # steps between metrics.jsonl / TensorBoard training records
    tensorboard: bool = True
    progress: bool = True  # a tqdm bar per epoch on the main process

    def __post_init__(self) -> None:
        for name, allowed in (("setting", SETTINGS), ("amp", AMP_MODES)):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"TrainConfig.{name}={getattr(self, name)!r}: expected one of {allowed}"
                )
        for name in ("epochs", "batch_size", "eval_batch_size", "eval_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)}: must be >= 1")
        for name in ("lr", "weight_decay", "grad_clip", "num_workers", "freeze_backbone_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)}: must be >= 0")
        # unknown or invalid model fields and weight sources fail now, not at the first step
        backbone = self.model_config().backbone
        pretrained = self.weight_sources().backbone_pretrained
        if isinstance(pretrained, str):
            pretrained_name(backbone, pretrained)  # a timm tag this backbone lacks: ValueError

    def model_config(self) -> SelMConfig:
        """The SelM config: the preset with `model` overrides applied (weight sources aside)."""
        fields = {k: v for k, v in self.model.items() if k not in WeightSources.field_names()}
        try:
            return get_config(self.preset, **fields)
        except KeyError as err:
            raise KeyError(f"in the model section (preset {self.preset!r}): {err.args[0]}") from err

    def weight_sources(self) -> WeightSources:
        """The pretrained weights the `model` section names, for `selm.build.build_selm`."""
        names = WeightSources.field_names()
        return WeightSources(**{k: v for k, v in self.model.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def read_yaml(text: str, source: str) -> Any:
    """YAML text -> values; malformed YAML is a one-line ValueError naming `source` and where."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"{source}: not valid YAML{where} ({problem})") from None


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file's values with its `base:` chain merged in (model sections merged by key)."""
    path = path.resolve()
    if path in seen:
        raise ValueError(f"config {path}: `base` files include each other in a loop")
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found (see train/configs/ for examples)")
    values = read_yaml(path.read_text(), f"config {path}") or {}
    if not isinstance(values, dict):
        raise ValueError(f"config {path}: expected a mapping of keys to values at the top level")
    base = values.pop("base", None)
    if base is None:
        return values
    merged = _read_yaml(path.parent / base, (*seen, path))
    model = {**(merged.get("model") or {}), **(values.pop("model", None) or {})}
    return {**merged, **values, "model": model}


def _checked(
    values: dict[str, Any], hints: dict[str, Any], owner: str, source: str, known: str
) -> dict[str, Any]:
    """`values` with every key a field of `hints` (else a KeyError naming it and `known`) and
    every value checked against its field's type."""
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise KeyError(f"{source}: unknown {owner} key(s) {', '.join(unknown)}; {known}")
    return {k: coerce(owner, k, v, hints[k]) for k, v in values.items()}


def config_from_dict(values: dict[str, Any], source: str = "config") -> TrainConfig:
    """A TrainConfig from plain values; an unknown key is an error naming it and `source`."""
    hints = _field_types(TrainConfig)
    options = values.get("data_options")
    values = {k: v for k, v in values.items() if k != "data_options"}
    known = f"TrainConfig fields are {', '.join(sorted(hints))} (model fields go under `model:`)"
    checked = _checked(values, hints, "TrainConfig", source, known)
    if options is not None:
        checked["data_options"] = _data_options(options, source)
    model_hints = {**_field_types(SelMConfig), **_field_types(WeightSources)}
    known = "SelMConfig fields, or the weight sources " + ", ".join(WeightSources.field_names())
    checked["model"] = _checked(checked.get("model") or {}, model_hints, "model", source, known)
    return TrainConfig(**checked)


def _data_options(values: Any, source: str) -> DataOptions:
    if isinstance(values, DataOptions):
        return values
    if not isinstance(values, dict):
        raise ValueError(f"{source}: data_options must be a mapping, got {values!r}")
    hints = _field_types(DataOptions)
    known = f"DataOptions fields are {', '.join(sorted(hints))}"
    return DataOptions(**_checked(values, hints, "data_options", source, known))


def parse_set(items: list[str]) -> dict[str, Any]:
    """`["lr=1e-4", "model.bcsm=false"]` -> {"lr": "1e-4", "model": {"bcsm": False}}: each value
    read as YAML (types are checked later, against the fields)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected key=value (e.g. lr=1e-4, model.bcsm=false)")
        value = read_yaml(text, f"--set {item!r}") if text.strip() else None
        if key.startswith("model."):
            out.setdefault("model", {})[key[len("model.") :]] = value
        elif "." in key:
            raise KeyError(f"--set {item!r}: only model fields take a dotted key (model.NAME)")
        else:
            out[key] = value
    return out


def load_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> TrainConfig:
    """A YAML file (or the defaults when `path` is None) plus `--set key=value` overrides."""
    values = _read_yaml(Path(path)) if path is not None else {}
    extra = parse_set(list(overrides))
    model = {**(values.get("model") or {}), **extra.pop("model", {})}
    values = {**values, **extra, "model": model}
    if values.get("out_dir") is None and path is not None:
        values["out_dir"] = str(Path("runs") / Path(path).stem)
    return config_from_dict(values, source=str(path) if path else "--set")


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write the resolved config (every field, the model section as given) as YAML, atomically."""
    text = yaml.safe_dump(config.to_dict(), sort_keys=False)
    atomic_write(path, lambda tmp: tmp.write_text(text))
