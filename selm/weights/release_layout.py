"""The authors' published SelM files (`.pth`) as selm models: read them, read off which model a
file is, map every tensor onto our names and load it strictly (`python -m selm.convert` is the
command line).

The model is built from the matching `selm_*_official_*` preset (selm.presets) and loaded
strictly. Only the release's unused ResNet branches `resnet.layer3_2` / `resnet.layer4_2` are
dropped; any other tensor that has no place, or any of ours left without a value, stops the
conversion with the list.

The published files hold no VGGish: the released models were trained on frozen VGGish
embeddings. `vggish_weights` (torchvggish's `vggish-10086976.pth`) makes the converted model run
on raw audio; without it the conversion refuses, unless `embeddings_only` says that a randomly
initialised VGGish is wanted, for a model that will only ever see precomputed (B, T, 128)
VGGish embeddings.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from selm.config import SelMConfig, get_config
from selm.modeling.dam_official import our_key
from selm.modeling.model import SelM
from selm.modeling.vggish import VGGish
from selm.presets import BACKBONE_NAMES, SETTINGS, official_preset_name
from selm.weights.pretrained import VGGISH_FILE, VGGISH_URL, load_vggish_weights
from selm.weights.state_dict import (
    CheckpointError,
    load_state_strict,
    read_weights,
    timm_checkpoint_filter,
    unwrap_state_dict,
)

DROPPED = re.compile(r"^resnet\.layer[34]_2\.")  # the release's second ResNet branch, unused
_DAM = re.compile(r"^(?:encoder_backbone\.)?DAM_Fusion([1-4])\.(.+)$")
_PVT = re.compile(r"^encoder_backbone\.((?:patch_embed|block|norm)[1-4]\..+)$")
_RENAMES: tuple[tuple[re.Pattern, str], ...] = tuple(
    (re.compile(pattern), target)
    for pattern, target in (
        (r"^resnet\.layer([34])_1\.", r"encoder.backbone.model.layer\1."),
        (r"^resnet\.(conv1|bn1|layer1|layer2)\.", r"encoder.backbone.model.\1."),
        (r"^in_proj1\.", "proj.0."),
        (r"^in_proj2\.", "proj.1."),
        (r"^in_proj3\.", "proj.2."),
        (r"^in_proj4\.", "proj.3."),
        (r"^(?:BCSM|tem_att)\.", "bcsm."),  # BCSM in the ResNet models, tem_att in the PVT ones
        (r"^decoder\.", "decoder."),
        (r"^audio_(proj|norm)\.", r"encoder.audio_\1."),
    )
)
_WRAPPERS = ("state_dict", "model", "model_state_dict", "net")
BACKBONE_PREFIX = "encoder.backbone.model."


class ConversionError(ValueError):
    """A published file that cannot become the selm model it claims to be."""


@dataclass
class Conversion:
    """The converted model (eval mode) and where each of its tensors came from."""

    model: SelM
    sources: dict[str, str]  # our tensor name -> the published tensor it holds
    dropped: list[str]  # published tensors deliberately left out (unused ResNet branches)
    vggish: str  # where encoder.vggish.* came from
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """What was mapped where, one line per group."""
        groups = Counter(_group(name) for name in self.sources)
        lines = [f"mapped {len(self.sources)} published tensors:"]
        lines += [f"  {n:5d}  -> {g}" for g, n in sorted(groups.items())]
        if self.dropped:
            branches = sorted({".".join(k.split(".")[:2]) for k in self.dropped})
            lines.append(f"dropped {len(self.dropped)} unused tensors: {', '.join(branches)}")
        vggish_tensors = len(self.model.encoder.vggish.state_dict())
        lines.append(f"  {vggish_tensors:5d}  encoder.vggish <- {self.vggish}")
        return "\n".join(lines)


def _group(name: str) -> str:
    parts = name.split(".")
    depth = 3 if parts[0] == "encoder" and parts[1] == "dam" else 2
    return ".".join(parts[:depth])


def read_official(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a published .pth (plain, wrapped in a dict, or with `module.`)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConversionError(f"{path}: no such file (the published SelM .pth to convert)")
    try:
        obj = read_weights(path)
    except Exception as err:  # unpickling errors come in many types
        raise ConversionError(f"{path} could not be read as a PyTorch state dict ({err})") from err
    state = unwrap_state_dict(obj, _WRAPPERS)
    if state is None:
        raise ConversionError(
            f"{path} holds no state dict (name -> tensor), neither plain nor under one of "
            f"{', '.join(_WRAPPERS)}"
        )
    return state


def describe(state: dict[str, torch.Tensor]) -> dict[str, object]:
    """What a published state dict is: backbone, first decoder grid side, mask-head x2 steps
    and classes, read off its tensors (None where the file lacks the tensor)."""
    backbone = (
        "r50"
        if any(k.startswith("resnet.") for k in state)
        else "pvt"
        if any(k.startswith("encoder_backbone.") for k in state)
        else None
    )
    pos = state.get("decoder.layers.0.positional_embedding")
    head = state.get("decoder.proj.audio_linear.weight")
    steps = sum(
        1
        for k, v in state.items()
        if re.fullmatch(r"decoder\.proj\.vis\.\d+\.0\.weight", k) and v.dim() == 4
    )
    classes = None
    if head is not None:
        rows, dim = head.shape
        classes = 1 if rows == dim + 1 else rows // dim
    return dict(
        backbone=backbone,
        grid=None if pos is None else math.isqrt(pos.shape[0]),
        steps=steps,
        classes=classes,
    )


def _fits(facts: dict[str, object], cfg: SelMConfig) -> bool:
    return (facts["grid"], facts["steps"], facts["classes"]) == (
        cfg.grids[0],
        cfg.mask_upsample_steps,
        cfg.num_classes,
    )


def detect_layout(
    state: dict[str, torch.Tensor], setting: str | None = None, backbone: str | None = None
) -> tuple[str, str]:
    """(setting, backbone) of a published state dict, read off its tensor names and shapes once.

    Without `setting` / `backbone` (a spec or a raw .pth) the file must fit exactly one of the
    six released layouts. With them (the command line's flags) the file must be that model; a
    file that is another released model says which flags fit it, and one whose setting cannot
    be read off is taken as named (the strict load then lists what it lacks). ConversionError
    otherwise."""
    facts = describe(state)
    found = facts["backbone"]
    if found is None:
        raise ConversionError(
            "it fits none of the six released layouts: it has neither `resnet.*` (ResNet-50 "
            "models) nor `encoder_backbone.*` (PVT-v2-b5 models) tensors"
        )
    if backbone is not None and found != backbone:
        raise ConversionError(
            f"this file is a {BACKBONE_NAMES[found]} model (--backbone {found}), "
            f"not --backbone {backbone}"
        )
    fits = [s for s in SETTINGS if _fits(facts, get_config(official_preset_name(s, found)))]
    shown = (
        f"first decoder grid {facts['grid']}, {facts['steps']} mask-head upsampling steps, "
        f"{facts['classes']} class(es)"
    )
    if setting is not None:
        if None in facts.values() or setting in fits:
            return setting, found
        cfg = get_config(official_preset_name(setting, found))
        hint = f"it fits --setting {fits[0]}" if fits else "it fits no released setting"
        raise ConversionError(
            f"this file is not the released {setting} model for --backbone {found} "
            f"({shown}; expected grid {cfg.grids[0]}, {cfg.mask_upsample_steps} steps, "
            f"{cfg.num_classes} class(es)): {hint}"
        )
    if len(fits) == 1:
        return fits[0], found
    unread = [k for k in ("grid", "classes") if facts[k] is None]
    why = (
        f"its setting cannot be read off ({' and '.join(unread)} missing)"
        if unread
        else "it fits none of the three released settings"
    )
    raise ConversionError(
        f"a {BACKBONE_NAMES[found]} file, but {why} ({shown}); name it explicitly: "
        f"python -m selm.convert FILE --setting {{{','.join(SETTINGS)}}} --backbone {found} "
        f"--out DIR --vggish-weights {VGGISH_FILE}"
    )


def map_official(
    state: dict[str, torch.Tensor], timm_model: torch.nn.Module
) -> tuple[dict[str, torch.Tensor], dict[str, str], list[str]]:
    """Rename every published tensor to ours. Returns (our name -> tensor, our name -> published
    name, the dropped published names); raises with the list of tensors that have no place."""
    mapped, sources, dropped, unknown, pvt = {}, {}, [], [], {}
    for key, tensor in state.items():
        if DROPPED.match(key):
            dropped.append(key)
            continue
        if m := _DAM.match(key):
            try:
                ours = f"encoder.dam.{int(m[1]) - 1}.{our_key(m[2])}"
            except KeyError:
                unknown.append(key)
                continue
        elif m := _PVT.match(key):
            pvt[m[1]] = tensor
            continue
        else:
            ours = next((p.sub(t, key, count=1) for p, t in _RENAMES if p.match(key)), None)
            if ours is None:
                unknown.append(key)
                continue
        mapped[ours], sources[ours] = tensor, key
    if unknown:
        raise ConversionError(_listing("published tensors with no place in selm's model", unknown))
    if pvt:  # the original PVT-v2 layout, renamed by timm's own checkpoint filter
        filter_fn = timm_checkpoint_filter(timm_model)
        if filter_fn is None:
            raise ConversionError(
                f"timm's {type(timm_model).__name__} has no checkpoint filter "
                "for the original PVT-v2 layout"
            )
        origin = {id(t): k for k, t in pvt.items()}
        for key, tensor in filter_fn(dict(pvt), timm_model).items():
            if id(tensor) not in origin:
                raise ConversionError(f"timm's checkpoint filter rewrote {key}; cannot trace it")
            ours = BACKBONE_PREFIX + key
            mapped[ours], sources[ours] = tensor, "encoder_backbone." + origin[id(tensor)]
    return mapped, sources, dropped


def _listing(title: str, keys: list[str]) -> str:
    more = f"\n  ... and {len(keys) - 30} more" if len(keys) > 30 else ""
    return f"{title} ({len(keys)}):\n  " + "\n  ".join(sorted(keys)[:30]) + more


_NO_VGGISH = (
    f"the published files hold no VGGish (the released models were trained on frozen VGGish "
    f"embeddings). Pass --vggish-weights {VGGISH_FILE} (from {VGGISH_URL}) so the converted "
    "model runs on raw audio, or --embeddings-only to keep a randomly initialised VGGish and "
    "feed the model precomputed (B, T, 128) embeddings only"
)


def _vggish_state(vggish_weights: str | Path | None) -> tuple[dict[str, torch.Tensor], str]:
    """torchvggish's weights from `vggish_weights`, else a random initialisation."""
    vggish = VGGish("official")
    if vggish_weights is None:
        return vggish.state_dict(), "RANDOM initialisation (embeddings-only model)"
    load_vggish_weights(vggish, vggish_weights)
    return vggish.state_dict(), f"{Path(vggish_weights).name} (torchvggish)"


def convert_official(
    state: dict[str, torch.Tensor],
    *,
    setting: str,
    backbone: str,
    vggish_weights: str | Path | None = None,
    embeddings_only: bool = False,
) -> Conversion:
    """Build the `selm_*_official_*` model for (setting, backbone), the layout `detect_layout`
    read off (or checked for) the file, and fill every tensor of it from the published state
    dict (+ VGGish); strict both ways."""
    if vggish_weights is None and not embeddings_only:
        raise ConversionError(_NO_VGGISH)
    cfg = get_config(official_preset_name(setting, backbone))
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    with torch.device("meta"):  # no random initialisation: every tensor comes from the file
        model = SelM(cfg)
    mapped, sources, dropped = map_official(state, model.encoder.backbone.model)
    # check the mapped tensors first, with the model's own (empty) VGGish standing in
    vggish = {k: v for k, v in model.state_dict().items() if k.startswith("encoder.vggish.")}
    try:
        with warnings.catch_warnings():  # copying into meta tensors is a no-op: checks only
            warnings.simplefilter("ignore")
            source = f"the published {setting} {backbone} model"
            load_state_strict(model, {**mapped, **vggish}, source)
    except CheckpointError as err:
        raise ConversionError(str(err)) from err
    vggish, vggish_source = _vggish_state(vggish_weights)
    full = {**mapped, **{f"encoder.vggish.{k}": v for k, v in vggish.items()}}
    model.load_state_dict(full, strict=True, assign=True)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise ConversionError(_listing("selm tensors left without a value", left))
    notes = []
    if vggish_weights is None:
        notes.append(
            "WARNING: encoder.vggish is randomly initialised. This model works ONLY on "
            "precomputed VGGish embeddings (B, T, 128), never on waveforms or log-mel input."
        )
    return Conversion(model.eval(), sources, sorted(dropped), vggish_source, notes)
