"""timm backbones with ImageNet weights from a local file, the cache, or the hub; offline-aware.

Order: an explicit `weights_path` wins; else, with `pretrained`, a copy already in the Hugging
Face (or torch hub) cache; else a download, attempted only when the hub is online and reachable.
Offline (HF_HUB_OFFLINE=1) or unreachable, it fails at once with the file to supply and how.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

_HF_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm's hub repos hold
_PROBE_TIMEOUT_S = 3.0


def create_backbone(
    name: str, pretrained: bool = False, weights_path: str | Path | None = None
) -> nn.Module:
    """timm model `name` without its classifier (num_classes=0), weights as the module doc says."""
    import timm

    if not timm.is_model(name.split(".")[0]):
        close = timm.list_models(f"*{name.split('.')[0].split('_')[0]}*")[:12]
        raise ValueError(f"unknown timm model {name!r}; similar names: {close}")
    model = timm.create_model(name, pretrained=False, num_classes=0)
    if weights_path is not None:
        load_backbone_weights(model, weights_path)
    elif pretrained:
        load_backbone_weights(model, _pretrained_file(name))
    return model


def load_backbone_weights(model: nn.Module, path: str | Path) -> None:
    """Load a checkpoint (safetensors or torch pickle) into a timm model, through the model's own
    `checkpoint_filter_fn` when timm has one (so e.g. the original PVT-v2 layout loads).
    The classifier is ignored; any other missing or unexpected key is an error."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"backbone weights not found at {path}; set `backbone_weights: PATH` in the config "
            "or `--set backbone_weights=PATH`"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path), device="cpu")
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):  # training checkpoints wrap the weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    filter_fn = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
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


def _reachable(url: str) -> bool:
    """A TCP connect within a few seconds: the download's retries would take minutes."""
    parts = urlparse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _missing(name: str, where: str, reason: str) -> RuntimeError:
    return RuntimeError(
        f"ImageNet weights for backbone {name!r} are not available: {reason}. Download {where} "
        f"on a machine with internet access and set `backbone_weights: PATH` in the config "
        f"(or `--set backbone_weights=PATH`), or set `backbone_pretrained: false`."
    )


def _pretrained_file(name: str) -> Path:
    """Local path of timm's default pretrained file for `name`: cached, or downloaded now."""
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
    if _offline():
        raise _missing(name, where, "HF_HUB_OFFLINE is set and they are not in the local cache")
    source = _hub_endpoint() if repo else cfg.url
    if not _reachable(source):
        raise _missing(name, where, f"{urlparse(source).hostname} cannot be reached")
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
