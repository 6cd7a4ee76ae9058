"""Named models: AVSBench's three settings, the backbones by short name, and the presets
`selm.config.get_config` builds (field values only; `SelMConfig` checks them).

`selm_r50`, `selm_pvt_b5` and `selm_tiny` are ours. `selm_r50_official_{s4,ms3,avss}` and
`selm_pvt_b5_official_{s4,ms3,avss}` describe the authors' six published models exactly
(docs/official.md): every value a published file implies, with where it comes from. The tensor
shapes of the six files (`tests/data/official/*.tsv`) fix the input size (the decoder's
positional embeddings are added without resampling, so their grid sides are input/16, input/8,
input/4), the mask-head steps (`decoder.proj.vis.*`) and the AVSS head
(`decoder.proj.audio_linear`: 71 x 256 outputs); the release's code fixes the rest (output 224,
audio step on grids >= 14, BCSM residual from the normalised input, DAM as released).
"""

from __future__ import annotations

from typing import Any

# AVSBench's settings: s4 (single source, 5 frames), ms3 (multiple sources, 5 frames), avss
# (semantic, 10 frames, 71 classes); named once for presets, data, training and the CLIs
SETTINGS = ("s4", "ms3", "avss")
BACKBONES = {"r50": "resnet50", "pvt": "pvt_v2_b5"}  # --backbone value -> timm model
BACKBONE_NAMES = {"r50": "ResNet-50", "pvt": "PVT-v2-b5"}  # what messages and cards call them

_COMMON: dict[str, Any] = dict(
    dam_variant="official",  # the released DAM block (selm.modeling.dam_official)
    output_size=224,  # the release resizes its logits to 224 x 224 for every model
    audio_attn_min_side=14,  # `LoadLayer`: the audio step exists only where pe_shape >= 14
    bcsm_residual="normed",  # `Mamba_channel_temporal_block`: y = LN(x); y + Mamba(y)
    gumbel_at_eval=False,  # the release samples Gumbel noise at test time too; we do not
    vggish="official",  # the released models consumed frozen VGGish embeddings
    freeze_vggish=True,
    dim=256,
    num_tokens=2,
)

# (input_size, decoder grid sides, mask-head x2 steps): read off each file's tensor shapes
_GEOMETRY: dict[tuple[str, str], tuple[int, tuple[int, int, int], int]] = {
    ("r50", "s4"): (224, (14, 28, 56), 2),
    ("r50", "ms3"): (448, (28, 56, 112), 1),
    ("r50", "avss"): (224, (14, 28, 56), 2),
    ("pvt", "s4"): (448, (28, 56, 112), 1),
    ("pvt", "ms3"): (448, (28, 56, 112), 2),  # 112 -> 448, then resized to 224
    ("pvt", "avss"): (224, (14, 28, 56), 2),
}

_SETTING: dict[str, dict[str, Any]] = {
    "s4": dict(num_frames=5, num_classes=1, audio_padding="repeat"),
    "ms3": dict(num_frames=5, num_classes=1, audio_padding="repeat"),
    "avss": dict(num_frames=10, num_classes=71, audio_padding="zeros"),
}


def official_preset_name(setting: str, backbone: str) -> str:
    """`selm_r50_official_s4`, `selm_pvt_b5_official_avss`, ..."""
    if setting not in SETTINGS:
        raise ValueError(f"setting {setting!r}: expected one of {', '.join(SETTINGS)}")
    if backbone not in BACKBONES:
        raise ValueError(f"backbone {backbone!r}: expected one of {', '.join(BACKBONES)}")
    return f"selm_{'r50' if backbone == 'r50' else 'pvt_b5'}_official_{setting}"


def _preset(backbone: str, setting: str) -> dict[str, Any]:
    input_size, grids, steps = _GEOMETRY[backbone, setting]
    return dict(
        _COMMON,
        **_SETTING[setting],
        backbone=BACKBONES[backbone],
        input_size=input_size,
        pos_grid=grids,
        mask_upsample_steps=steps,
        # the release trains S4/MS3 with its ResNet-50 frozen; PVT and AVSS fine-tune it
        freeze_backbone=backbone == "r50" and setting != "avss",
    )


OFFICIAL_PRESETS: dict[str, dict[str, Any]] = {
    official_preset_name(s, b): _preset(b, s) for b in BACKBONES for s in SETTINGS
}

PRESETS: dict[str, dict[str, Any]] = {
    # the paper's ResNet-50 model at 224
    "selm_r50": dict(backbone="resnet50", input_size=224, mask_upsample_steps=2),
    # PVT-v2-b5 as released: 448 input, one x2 step in the mask head, 224 output
    "selm_pvt_b5": dict(
        backbone="pvt_v2_b5", input_size=448, output_size=224, mask_upsample_steps=1
    ),
    # trains from scratch on a CPU; checkpoint < 25 MB
    "selm_tiny": dict(
        backbone="pvt_v2_b0",
        input_size=224,
        vggish="slim",
        freeze_vggish=False,
        dim=64,
        mask_upsample_steps=2,
    ),
}
PRESETS.update(OFFICIAL_PRESETS)  # selm_{r50,pvt_b5}_official_{s4,ms3,avss}: the released models
