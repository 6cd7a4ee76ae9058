"""Checkpoints as `config.json` + `model.safetensors` (the timm / Hugging Face layout).

Writes are atomic (temporary files renamed into place, the weights and the config together);
loads are strict, never unpickle, and refuse weights with NaN or infinite values.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from selm.config import SelMConfig
from selm.files import atomic_path, remove_stale_temporaries
from selm.modeling.model import SelM
from selm.weights.state_dict import CheckpointError, load_state_strict

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# what else a checkpoint folder may hold: its evaluation row (`python -m train.run_family --ship`)
# and its model card (Hugging Face front matter)
EVALUATION_NAME = "evaluation.json"
CARD_NAME = "README.md"
# keys of a config.json written before weight sources left SelMConfig (always scrubbed there)
_LEGACY_WEIGHT_KEYS = ("backbone_pretrained", "backbone_weights", "vggish_weights")
# the SelMConfig fields `load_checkpoint(**overrides)` may change: how trained weights run at test
# time, not what they compute or which inputs (num_frames, sizes, padding) they were trained on
# (release_batch_gates: the release's BCSM batch order, for `train.evaluate --release-protocol`)
RUNTIME_FIELDS = (
    "gumbel_at_eval",
    "release_batch_gates",
    "dropout",
    "freeze_vggish",
    "freeze_backbone",
)


def is_checkpoint(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds a checkpoint's config and weights."""
    return all((Path(folder) / name).is_file() for name in (CONFIG_NAME, WEIGHTS_NAME))


def save_pretrained(model: torch.nn.Module, directory: str | os.PathLike, **extra_config) -> Path:
    """Write `model`'s config and weights into `directory` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(directory)  # left by a writer killed mid-write
    payload = {"model_type": "selm", **extra_config, "config": model.config.to_dict()}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # both files are written before either replaces its old version: a failed write (a full
    # disk) leaves the old pair, never new weights beside an old config
    with (
        atomic_path(directory / WEIGHTS_NAME) as weights,
        atomic_path(directory / CONFIG_NAME) as cfg,
    ):
        save_file(state, str(weights), metadata={"format": "pt"})
        cfg.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return directory


def read_config(directory: str | os.PathLike) -> SelMConfig:
    """The SelMConfig a checkpoint folder's config.json holds (CheckpointError when it holds
    none)."""
    path = Path(directory) / CONFIG_NAME
    try:
        payload = json.loads(path.read_text())
        values = dict(payload["config"] if "config" in payload else payload)
        for key in _LEGACY_WEIGHT_KEYS:
            values.pop(key, None)
        return SelMConfig.from_dict(values)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: not a valid SelM config ({err})") from err


def load_state(directory: str | os.PathLike, map_location: str = "cpu") -> dict[str, torch.Tensor]:
    """A checkpoint folder's weights, read without unpickling anything."""
    path = Path(directory) / WEIGHTS_NAME
    try:
        return load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: unreadable or corrupted safetensors file ({err})") from err


def check_finite(state: dict[str, torch.Tensor], source: str) -> None:
    """CheckpointError naming the tensors of `state` that hold NaN or infinite values."""
    bad = [
        name
        for name, tensor in state.items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if bad:
        shown = ", ".join(bad[:5]) + (f" ... and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise CheckpointError(
            f"{source}: the checkpoint is broken: {len(bad)} weight tensor(s) hold NaN or "
            f"infinite values ({shown}); re-download or re-convert it, or use another checkpoint"
        )


def load_checkpoint(directory: str | os.PathLike, map_location: str = "cpu", **overrides):
    """Rebuild a SelM from a checkpoint folder's `config.json` (+ `overrides` of RUNTIME_FIELDS,
    e.g. gumbel_at_eval) and load its weights strictly; weights with NaN or infinite values are
    refused (CheckpointError). A spec (Hub id, official:NAME, .pth): `selm.weights.resolve`."""
    directory = Path(directory)
    config = read_config(directory)
    fixed = sorted(
        k for k, v in overrides.items() if k not in RUNTIME_FIELDS and getattr(config, k, v) != v
    )
    if fixed:
        saved = ", ".join(f"{k}={getattr(config, k)!r}" for k in fixed)
        raise CheckpointError(
            f"load_pretrained cannot change {', '.join(fixed)}: the weights in {directory} were "
            f"trained with {saved} ({CONFIG_NAME}); only {', '.join(RUNTIME_FIELDS)} may be "
            "overridden"
        )
    if overrides:
        config = config.replace(**overrides)
    model = SelM(config)
    state = load_state(directory, map_location)
    check_finite(state, str(directory / WEIGHTS_NAME))
    load_state_strict(model, state, str(directory))
    return model.to(map_location).eval()
