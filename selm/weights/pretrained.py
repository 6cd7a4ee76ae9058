"""Every weight loader: timm backbones' ImageNet weights and torchvggish's VGGish.

Modules never read files (`selm.modeling`); the builder (`selm.build`) calls these after
construction. Backbone order: an explicit `weights_path` wins; else, with `pretrained`, a copy
already in the Hugging Face (or torch hub) cache; else a download, attempted only when the hub is
online and reachable (directly, or through the proxy the environment names: HTTPS_PROXY,
NO_PROXY, ...). Offline (HF_HUB_OFFLINE=1) or unreachable, it fails at once with the file to
supply and how. `pretrained=True` means the paper's ImageNet weights for the paper's two
backbones (`PAPER_WEIGHTS`), timm's default weights for any other; a string names a timm tag.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from selm.modeling.vggish import VGGish
from selm.weights.cache import network_problem
from selm.weights.state_dict import (
    load_state_strict,
    read_weights,
    timm_checkpoint_filter,
    unwrap_state_dict,
)

VGGISH_FILE = "vggish-10086976.pth"
VGGISH_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/" + VGGISH_FILE
_HF_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm's hub repos hold


@dataclass(frozen=True)
class PaperWeights:
    """The ImageNet weights the SelM authors start a backbone from, and where timm serves them."""

    tag: str  # timm's pretrained tag for the same weights
    file: str  # the file the authors' config loads (`cfg.TRAIN.PRETRAINED_*_PATH`)
    url: str  # where that file is published
    what: str


PAPER_WEIGHTS = {
    # torchvision's IMAGENET1K_V1; its resnet50-0676ba61.pth is the same weights re-saved in the
    # zip format, and timm's tv_in1k is converted from that
    "resnet50": PaperWeights(
        "tv_in1k",
        "resnet50-19c8e357.pth",
        "https://download.pytorch.org/models/resnet50-19c8e357.pth",
        "torchvision's ImageNet ResNet-50",
    ),
    # the PVT-v2 authors' release; timm's only pvt_v2_b5 weights (in1k) are converted from it
    "pvt_v2_b5": PaperWeights(
        "in1k",
        "pvt_v2_b5.pth",
        "https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b5.pth",
        "PVT-v2's own ImageNet-1k weights",
    ),
}


def pretrained_name(backbone: str, pretrained: bool | str = True) -> str:
    """The timm name (`model.tag`) of the weights `pretrained` asks for: True -> the paper's
    (`PAPER_WEIGHTS`) for its backbones, timm's default tag for any other; a string -> that timm
    tag (e.g. "a1_in1k", timm's default ResNet-50). A tag timm does not have is a ValueError."""
    import timm

    if pretrained is True:
        paper = PAPER_WEIGHTS.get(backbone)
        return f"{backbone}.{paper.tag}" if paper else backbone
    if not isinstance(pretrained, str) or not pretrained:
        raise ValueError(f"backbone_pretrained={pretrained!r}: expected true, false or a timm tag")
    tags = sorted(n.split(".", 1)[1] for n in timm.list_pretrained(f"{backbone}.*"))
    if pretrained not in tags:
        paper = PAPER_WEIGHTS.get(backbone)
        default = f"the paper's, {paper.tag}" if paper else "timm's default"
        raise ValueError(
            f"backbone_pretrained={pretrained!r}: timm has no {backbone} weights of that tag "
            f"(its tags: {', '.join(tags) or 'none'}; true gives {default})"
        )
    return f"{backbone}.{pretrained}"


def load_backbone_weights(model: nn.Module, path: str | Path) -> None:
    """Load a checkpoint (safetensors or torch pickle) into a timm model, through the model's own
    `checkpoint_filter_fn` when timm has one (so e.g. the original PVT-v2 layout loads).
    The classifier is ignored; any other missing or unexpected key is an error."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"backbone weights not found at {path}; set `backbone_weights: PATH` in the config's "
            "model section or `--set model.backbone_weights=PATH`"
        )
    state = unwrap_state_dict(read_weights(path), ("state_dict", "model"))
    if state is None:
        raise RuntimeError(f"{path} holds no state dict (name -> tensor) for a timm backbone")
    filter_fn = timm_checkpoint_filter(model)
    if filter_fn is not None:
        state = filter_fn(state, model)
    classifier = model.pretrained_cfg.get("classifier") or ()
    heads = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    state = {k: v for k, v in state.items() if not any(k.startswith(h + ".") for h in heads)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise RuntimeError(
            f"{path} does not fit timm's {type(model).__name__} "
            f"({model.pretrained_cfg.get('architecture')}): missing {missing[:8]} "
            f"({len(missing)}), unexpected {unexpected[:8]} ({len(unexpected)})"
        )


def _offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return constants.HF_HUB_OFFLINE or flag in {"1", "ON", "YES", "TRUE"}


def _hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _missing(name: str, where: str, reason: str) -> RuntimeError:
    return RuntimeError(
        f"ImageNet weights for backbone {name!r} are not available: {reason}. Download {where} "
        f"on a machine with internet access and set `backbone_weights: PATH` in the config's "
        f"model section (or `--set model.backbone_weights=PATH`), or set "
        f"`backbone_pretrained: false`."
    )


def pretrained_file(name: str) -> Path:
    """Local path of timm's pretrained file for `name` (`model` for its default tag, or
    `model.tag`): cached, or downloaded now."""
    from huggingface_hub import constants, try_to_load_from_cache
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise RuntimeError(
            f"timm has no pretrained weights for {name!r}; set `backbone_pretrained: false` or "
            "give a checkpoint as `backbone_weights: PATH`"
        )
    repo = (cfg.hf_hub_id or "").split("@")[0]
    files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HF_FILES
    url_file = None
    if cfg.url:
        url_file = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(cfg.url).path).name
    for filename in files if repo else ():
        hit = try_to_load_from_cache(repo, filename, cache_dir=constants.HF_HUB_CACHE)
        if isinstance(hit, str):
            return Path(hit)
    if url_file is not None and url_file.is_file():
        return url_file

    where = f"{files[0]} from https://huggingface.co/{repo}" if repo else cfg.url
    paper = next((w for b, w in PAPER_WEIGHTS.items() if name == f"{b}.{w.tag}"), None)
    if paper is not None:
        where = (
            f"{paper.file} ({paper.what}, the file the SelM authors start from) from "
            f"{paper.url}, or the same weights as {where},"
        )
    if _offline():
        raise _missing(name, where, "HF_HUB_OFFLINE is set and they are not in the local cache")
    source = _hub_endpoint() if repo else cfg.url
    problem = network_problem(source)
    if problem is not None:
        raise _missing(name, where, problem)
    try:
        return _download(repo, files, cfg.url, url_file)
    except Exception as err:  # network and hub errors come in many types
        raise _missing(name, where, f"the download failed ({err})") from err


def _download(repo: str, files: tuple[str, ...], url: str | None, url_file: Path | None) -> Path:
    from huggingface_hub import constants, hf_hub_download

    if not repo:
        url_file.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(url_file), progress=False)
        return url_file
    for filename in files[:-1]:
        try:
            return Path(hf_hub_download(repo, filename, cache_dir=constants.HF_HUB_CACHE))
        except Exception:  # this repo stores the weights under the next name
            continue
    return Path(hf_hub_download(repo, files[-1], cache_dir=constants.HF_HUB_CACHE))


def load_vggish_weights(vggish: VGGish, path: str | Path) -> None:
    """Load torchvggish's `vggish-10086976.pth` (or a state dict saved from an official VGGish)
    strictly into an official-variant VGGish; a file that does not fit raises with its keys."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"VGGish weights not found at {path}. Download {VGGISH_FILE} from the torchvggish "
            f"release ({VGGISH_URL}) and pass it as `--vggish-weights PATH` (model.vggish_weights)."
        )
    if vggish.variant != "official":
        raise ValueError(
            f"{path.name} holds the official VGGish; this model uses the {vggish.variant!r} "
            "variant. Set `vggish: official` to load it, or drop `vggish_weights`."
        )
    try:
        state = unwrap_state_dict(read_weights(path), ("state_dict", "model", "vggish"))
    except Exception as err:  # unpickling errors have many types; say which file and why
        raise ValueError(f"{path} is not a VGGish state dict ({err})") from err
    if state is None:
        raise ValueError(
            f"{path} is not a VGGish state dict: expected a state dict (name -> tensor) or a "
            "dict wrapping one"
        )
    # torchvggish's full model also holds its PCA buffers; post-processing is off here
    state = {k: v for k, v in state.items() if not k.startswith("pproc.")}
    load_state_strict(vggish, state, str(path), what=f"the official VGGish ({VGGISH_FILE})")
