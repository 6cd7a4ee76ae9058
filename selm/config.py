"""SelM configuration: one dataclass tree, presets by name (docs/model.md).

YAML files and `--set key=value` only select a preset and override fields; an unknown key is an
error that names the key, and every value is checked against its field's type (`coerce`, also
what `train.config` checks YAML values with).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass
from typing import Any

from selm.presets import PRESETS

_CHOICES: dict[str, tuple[str, ...]] = {
    "vggish": ("official", "slim"),
    "fusion": ("dam", "add", "concat", "none"),
    "dam_variant": ("paper", "official"),
    "dam_direction": ("both", "a2v", "v2a"),
    "bcsm_direction": ("both", "a2v", "v2a"),
    "bcsm_residual": ("normed", "input"),
    "decoder": ("clever", "single_level"),
    "mask_head": ("full", "light"),
    "clever_cross_attention": ("both", "video", "audio"),
    "loss": ("bce", "bce+dice", "bce+dice+aux"),
    "audio_padding": ("repeat", "zeros"),
}


# the sizes a SelM can have: wide enough for every preset and any sensible variant, narrow
# enough that a damaged config.json (dim=-32, num_classes=1e9) is refused before torch sees it
_RANGES: dict[str, tuple[int, int]] = {
    "input_size": (32, 2048),
    "output_size": (1, 4096),
    "num_frames": (1, 256),
    "dim": (32, 4096),
    "num_tokens": (1, 256),
    "num_classes": (1, 1024),
    "bcsm_depth": (1, 64),
    "mamba_d_state": (1, 1024),
    "mamba_d_conv": (1, 64),
    "mamba_expand": (1, 16),
    "mask_upsample_steps": (0, 8),
    "audio_attn_min_side": (0, 4096),
}


def coerce(owner: str, name: str, value: Any, annotation: Any) -> Any:
    """`value` checked (and converted where lossless) against a field annotation; ValueError
    naming `owner.name`, the value and the expected type otherwise. Floats also take a numeric
    string (YAML reads 2e-5, no dot, as a string); tuples are checked element by element."""
    options = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    if value is None:
        if type(None) in options:
            return None
        raise ValueError(f"{owner}.{name} cannot be null")
    for option in options:
        base = typing.get_origin(option) or option
        if base is bool and isinstance(value, bool):
            return value
        if base is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if base is float and not isinstance(value, bool):
            if isinstance(value, int | float):
                return float(value)
            if isinstance(value, str):
                try:
                    return float(value)  # YAML reads 2e-5 (no dot) as a string
                except ValueError:
                    continue
        if base is str and isinstance(value, str):
            return value
        if base is str and value is False:  # YAML 1.1 reads a bare `off` (amp: off) as false
            return "off"
        if base in (tuple, list) and isinstance(value, list | tuple):
            items = typing.get_args(option)
            if base is tuple and items and items[-1] is not Ellipsis:
                if len(value) != len(items):
                    continue
                return tuple(
                    coerce(owner, f"{name}[{i}]", v, t)
                    for i, (v, t) in enumerate(zip(value, items))
                )
            return base(value)
        if base is dict and isinstance(value, dict):
            return dict(value)
        if option is Any:
            return value
    expected = " or ".join(_type_name(o) for o in options)
    raise ValueError(f"{owner}.{name}={value!r}: expected {expected}")


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _type_name(option: Any) -> str:
    if option is type(None):
        return "null"
    return str(option) if typing.get_args(option) else getattr(option, "__name__", str(option))


@dataclass
class SelMConfig:
    """The architecture and its losses. Weight files are not part of it: the builder takes them
    (`selm.build.build_selm(config, backbone_weights=..., vggish_weights=...)`)."""

    # --- inputs (docs/model.md, section 'Inputs') ---
    backbone: str = "resnet50"  # any timm model whose stages run one by one (resnet*, pvt_v2_*)
    input_size: int = 224  # frames are resized to input_size x input_size
    output_size: int | None = None  # logits side; None -> input_size (the release: always 224)
    num_frames: int = 5  # T: 5 for S4/MS3, 10 for AVSS
    audio_padding: str = "repeat"  # short audio: repeat the last example (S4/MS3) or zeros (AVSS)
    vggish: str = "official"  # "official" architecture (72M params) or "slim" (small CPU models)
    freeze_vggish: bool = True
    freeze_backbone: bool = False
    # --- model width ---
    dim: int = 256  # D, the model width (GroupNorm(32, D) needs D % 32 == 0)
    num_tokens: int = 2  # K, CLEVER's learnable tokens
    num_classes: int = 1  # 1: binary (S4/MS3); 71: AVSS semantic
    dropout: float = 0.1
    # --- early fusion (docs/model.md, section 'Encoder and DAM') ---
    fusion: str = "dam"
    dam_variant: str = "paper"  # "official" reproduces the released block (checkpoints load)
    dam_direction: str = "both"
    # --- BCSM (docs/model.md, section 'BCSM') ---
    bcsm: bool = True
    bcsm_direction: str = "both"
    bcsm_depth: int = 3  # Mamba blocks per stack; 4 levels x 2 stacks x depth blocks
    bcsm_residual: str = "normed"  # "normed": y = LN(x) + Mamba(LN(x)) as released
    mamba_d_state: int = 16
    mamba_d_conv: int = 4
    mamba_expand: int = 2
    # --- CLEVER decoder (docs/model.md, section 'CLEVER') ---
    decoder: str = "clever"
    clever_cross_attention: str = "both"
    pos_grid: tuple[int, int, int] | None = None  # positional-embedding grid sides of the 3 layers;
    # None -> the grids of input_size (input/16, input/8, input/4)
    mask_upsample_steps: int = 2  # x2 steps in the mask head (x4 for ResNet-50 at 224)
    mask_head: str = "full"  # "full": conv blocks at the upsampled sizes (the release); "light":
    # the same weights at the fused map's size, then the logits upsampled (selm.modeling.mask_head)
    audio_attn_min_side: int = 0  # skip the audio cross-attention on grids smaller than this
    gumbel_at_eval: bool = False  # the release adds Gumbel noise at test time; off = deterministic
    release_batch_gates: bool = False  # BCSM gates in the release's batch order (mixes clips at
    # B >= 2; docs/official.md); off = each clip on its own
    # --- loss (docs/model.md, section 'Losses') ---
    loss: str = "bce+dice+aux"
    aux_weights: tuple[float, float, float] = (0.001, 0.01, 0.1)

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"SelMConfig.{name}={value!r}: expected one of {allowed}")
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name)
            if value is not None and not low <= value <= high:
                raise ValueError(
                    f"SelMConfig.{name}={value!r}: expected {low} to {high} (a config.json with "
                    "this value is damaged or not SelM's)"
                )
        if self.dim % 32:
            raise ValueError(
                f"SelMConfig.dim={self.dim}: must be a multiple of 32 (GroupNorm(32, D))"
            )
        if self.input_size % 32:
            raise ValueError(f"SelMConfig.input_size={self.input_size}: must be a multiple of 32")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"SelMConfig.dropout={self.dropout!r}: expected 0 <= dropout < 1")
        if self.pos_grid is not None:
            self.pos_grid = tuple(int(g) for g in self.pos_grid)
            if len(self.pos_grid) != 3 or not all(1 <= g <= 1024 for g in self.pos_grid):
                raise ValueError(
                    f"SelMConfig.pos_grid={self.pos_grid}: expected three grid sides, 1 to 1024"
                )
        self.aux_weights = tuple(float(w) for w in self.aux_weights)
        if not all(0.0 <= w < float("inf") for w in self.aux_weights):
            raise ValueError(
                f"SelMConfig.aux_weights={self.aux_weights}: expected finite weights >= 0"
            )

    @property
    def out_size(self) -> int:
        return self.output_size or self.input_size

    @property
    def grids(self) -> tuple[int, int, int]:
        """Positional-embedding grid sides of the three CLEVER layers (coarse to fine)."""
        if self.pos_grid is not None:
            return self.pos_grid
        s = self.input_size
        return (s // 16, s // 8, s // 4)

    # --- (de)serialisation ---
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SelMConfig:
        hints = _hints(cls)
        unknown = sorted(set(values) - set(hints))
        if unknown:
            raise KeyError(f"unknown SelMConfig key(s): {', '.join(unknown)}")
        return cls(**{k: coerce("SelMConfig", k, v, hints[k]) for k, v in values.items()})

    def replace(self, **changes: Any) -> SelMConfig:
        return self.from_dict({**self.to_dict(), **changes})


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """A dataclass's field annotations, resolved (`from __future__ import annotations`)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in typing.get_type_hints(cls).items() if k in names}


def preset_names() -> list[str]:
    return sorted(PRESETS)


def get_config(name: str, **overrides: Any) -> SelMConfig:
    if name not in PRESETS:
        raise KeyError(f"unknown SelM preset {name!r}; known: {', '.join(preset_names())}")
    return SelMConfig.from_dict({**PRESETS[name], **overrides})
