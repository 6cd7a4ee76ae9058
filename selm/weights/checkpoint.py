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
# keys of a config.json written before weight sources left SelMConfig (always scrubbed there)
_LEGACY_WEIGHT_KEYS = ("backbone_pretrained", "backbone_weights", "vggish_weights")
# the SelMConfig fields `load_pretrained(**overrides)` may change: how the saved weights run at
# test time, not what they compute or which inputs (num_frames, sizes, padding) they were trained on
# fields that change how trained weights are run, not what they are (release_batch_gates: the
# release's BCSM batch order, for `train.evaluate --release-protocol`)
RUNTIME_FIELDS = (
    "gumbel_at_eval",
    "release_batch_gates",
    "dropout",
    "freeze_vggish",
    "freeze_backbone",
)


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


def resolve_checkpoint(dir_or_hub_id: str | os.PathLike) -> Path:
    """A local checkpoint directory, a Hugging Face repo id downloaded to the local cache, or one
    of the authors' releases (`official:s4_pvt`, ..., or a raw `.pth`) converted into selm's
    cache on first use (selm.weights.release)."""
    from selm.weights.release import is_release_spec, resolve_release

    if is_release_spec(dir_or_hub_id):
        return resolve_release(dir_or_hub_id)
    path = Path(dir_or_hub_id).expanduser()
    if path.is_dir():
        missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (path / n).is_file()]
        if missing:
            raise CheckpointError(
                f"{path} is not a SelM checkpoint directory: {', '.join(missing)} missing "
                f"(a checkpoint holds {CONFIG_NAME} and {WEIGHTS_NAME}; `python -m selm.convert` "
                "makes one from the authors' .pth files)"
            )
        return path
    text = str(dir_or_hub_id)
    if path.exists() or text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise CheckpointError(f"{text}: no such checkpoint directory (nor a Hugging Face repo id)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(text, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME]))
    except Exception as err:  # offline, unknown repo, no access: say which and how to proceed
        raise CheckpointError(
            f"could not fetch the checkpoint {text!r} from the Hugging Face Hub "
            f"({type(err).__name__}: {err}). Offline, download it elsewhere and pass its "
            "directory instead."
        ) from err


def read_config(directory: str | os.PathLike) -> SelMConfig:
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


def load_pretrained(dir_or_hub_id: str | os.PathLike, map_location: str = "cpu", **overrides):
    """Rebuild a SelM from `config.json` (+ `overrides` of RUNTIME_FIELDS, e.g. gumbel_at_eval)
    and load strictly; weights with NaN or infinite values are refused (CheckpointError)."""
    directory = resolve_checkpoint(dir_or_hub_id)
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


EVALUATION_NAME = "evaluation.json"


def read_evaluation(directory: str | os.PathLike) -> dict | None:
    """A checkpoint folder's evaluation row (`evaluation.json`, written by
    `python -m train.run_family --ship`): {"model", "summary": {metric: {"mean", "low",
    "high"}}, "paired_vs_reference": {...}, ...}; None when the folder has none."""
    path = Path(directory) / EVALUATION_NAME
    if not path.is_file():
        return None
    try:
        row = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: unreadable evaluation row ({err})") from err
    summary = row.get("summary") if isinstance(row, dict) else None
    if not isinstance(summary, dict) or not all(
        isinstance(v, dict) and "mean" in v for v in summary.values()
    ):
        raise CheckpointError(
            f"{path}: expected {{'summary': {{metric: {{'mean', 'low', 'high'}}}}}}; rewrite it "
            "with python -m train.run_family --ship"
        )
    return row


def format_evaluation(row: dict | None) -> str:
    """One line for the demo beside a checkpoint's masks, e.g. 'M_J 0.41 [0.38, 0.44] · FPR
    silent 0.02 [...] · ... · illusion 0.55 [...]'; '' without a row."""
    if not row:
        return ""
    labels = (
        ("m_j", "M_J"),
        ("fpr_silent", "FPR silent"),
        ("fpr_noise", "FPR noise"),
        ("fpr_offscreen", "FPR off-screen"),
        ("illusion_score", "illusion"),
    )
    parts = []
    for key, label in labels:
        v = row["summary"].get(key)
        if v is None:
            continue
        low, high = v.get("low"), v.get("high")
        ci = "" if low is None or low != low else f" [{low:.2f}, {high:.2f}]"
        parts.append(f"{label} {v['mean']:.2f}{ci}")
    seeds = row.get("num_seeds")
    return " · ".join(parts) + (f" (mean [95% CI] over {seeds} seeds)" if seeds else "")
