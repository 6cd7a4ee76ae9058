"""Checkpoints as `config.json` + `model.safetensors` (the timm / Hugging Face layout).

Writes are atomic (a temporary file renamed into place); loads are strict and never unpickle.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from selm.config import SelMConfig

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or does not fit its config."""


def unwrap_state_dict(obj: object, wrappers: tuple[str, ...]) -> dict | None:
    """The name -> tensor dict in `obj`, itself or nested under one of `wrappers` keys, with a
    DataParallel `module.` prefix removed; None when there is none."""
    while isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in wrappers if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(v, torch.Tensor) for v in obj.values())
    ):
        return None
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_pretrained(model: torch.nn.Module, directory: str | os.PathLike, **extra_config) -> Path:
    """Write `model`'s config and weights into `directory` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    # the weights are in the file: building from this config must not fetch or load others
    config.update(backbone_pretrained=False, backbone_weights=None, vggish_weights=None)
    payload = {"model_type": "selm", **extra_config, "config": config}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _atomic_write(
        directory / WEIGHTS_NAME, lambda p: save_file(state, p, metadata={"format": "pt"})
    )
    _atomic_write(
        directory / CONFIG_NAME,
        lambda p: Path(p).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n"),
    )
    return directory


def resolve_checkpoint(dir_or_hub_id: str | os.PathLike) -> Path:
    """A local checkpoint directory, or a Hugging Face repo id downloaded to the local cache."""
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
        values = payload["config"] if "config" in payload else payload
        return SelMConfig.from_dict(values)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: not a valid SelM config ({err})") from err


def load_state(directory: str | os.PathLike, map_location: str = "cpu") -> dict[str, torch.Tensor]:
    path = Path(directory) / WEIGHTS_NAME
    try:
        return load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: unreadable or corrupted safetensors file ({err})") from err


def load_state_strict(
    model: torch.nn.Module,
    state: dict[str, torch.Tensor],
    source: str,
    what: str = "the model its config describes",
) -> None:
    """`load_state_dict(strict=True)` with one clear error listing every mismatch."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    if missing or unexpected or shapes:

        def listing(title: str, items: list[str]) -> str:
            more = f" ... and {len(items) - 20} more" if len(items) > 20 else ""
            return f"\n  {title} ({len(items)}): " + ", ".join(items[:20]) + more if items else ""

        raise CheckpointError(
            f"{source} does not fit {what}:"
            + listing("missing", missing)
            + listing("unexpected", unexpected)
            + listing("shape mismatch", shapes)
        )
    model.load_state_dict(state, strict=True)


def load_pretrained(dir_or_hub_id: str | os.PathLike, map_location: str = "cpu", **overrides):
    """Rebuild a SelM from `config.json` (+ `overrides`, e.g. gumbel_at_eval) and load strictly."""
    from selm.model import SelM

    directory = resolve_checkpoint(dir_or_hub_id)
    config = read_config(directory)
    if overrides:
        config = config.replace(**overrides)
    config = config.replace(backbone_pretrained=False, backbone_weights=None, vggish_weights=None)
    model = SelM(config)
    load_state_strict(model, load_state(directory, map_location), str(directory))
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
