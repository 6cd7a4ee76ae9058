"""The builder: construct a SelM (no I/O), then load the weight sources it is given.

Modules never read files (`selm.modeling`); weights reach a model only here, or from a checkpoint
(`selm.weights.resolve.load_pretrained`), so a saved `config.json` never names a weight file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from selm.config import SelMConfig, get_config
from selm.modeling.model import SelM
from selm.weights.pretrained import (
    load_backbone_weights,
    load_vggish_weights,
    pretrained_file,
    pretrained_name,
)


@dataclass(frozen=True)
class WeightSources:
    """Where the pretrained parts come from (a training config's `model:` section may name them)."""

    # ImageNet weights through timm (cache, else the hub): true = the paper's (ResNet-50:
    # torchvision's, timm tag tv_in1k; PVT-v2-b5: its authors', in1k), timm's default for other
    # backbones; or a timm tag, e.g. a1_in1k (timm's default ResNet-50)
    backbone_pretrained: bool | str = False
    backbone_weights: str | None = None  # a local timm checkpoint file, used instead of the hub
    vggish_weights: str | None = None  # torchvggish's vggish-10086976.pth (official VGGish only)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


def build_selm(
    config: str | SelMConfig = "selm_tiny",
    *,
    backbone_weights: str | Path | None = None,
    vggish_weights: str | Path | None = None,
    backbone_pretrained: bool | str = False,
    **overrides,
) -> SelM:
    """A SelM from a preset name (`selm_r50`, `selm_pvt_b5`, `selm_tiny`, ...) or a config
    (+ field `overrides`), with the backbone's and VGGish's weights loaded when given.

    `backbone_weights` (a file) wins over `backbone_pretrained` (timm's weights from the cache or
    the hub: True for the paper's, or a timm tag; offline it fails at once, saying what file to
    supply)."""
    if isinstance(config, str):
        config = get_config(config, **overrides)
    elif overrides:
        config = config.replace(**overrides)
    model = SelM(config)
    backbone = model.encoder.backbone.model
    if backbone_weights is not None:
        load_backbone_weights(backbone, backbone_weights)
    elif backbone_pretrained:
        name = pretrained_name(config.backbone, backbone_pretrained)
        load_backbone_weights(backbone, pretrained_file(name))
    if vggish_weights is not None:
        load_vggish_weights(model.encoder.vggish, vggish_weights)
    return model
