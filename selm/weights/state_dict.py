"""State dicts and the files that hold them: the one home of each shared piece.

- `read_weights(path)`: a safetensors file or a torch pickle read with `weights_only=True`;
- `unwrap_state_dict(obj, wrappers)`: the name -> tensor dict inside a training checkpoint;
- `load_state_strict(model, state, source)`: a strict load with one error listing every mismatch;
- `timm_checkpoint_filter(model)`: timm's own filter for a model's original layout (PVT-v2, ...).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or does not fit its config."""


def read_weights(path: str | os.PathLike) -> object:
    """What a weights file holds: safetensors by suffix, else a torch file read with
    `weights_only=True` (a pickle that wants to run code is refused, never executed)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    with open(path, "rb") as f:
        head = f.read(16)
    if not head.startswith(_TORCH_HEADS):
        raise ValueError(f"{path.name} is not a PyTorch weights file: {_what_it_is(head)}")
    return torch.load(path, map_location="cpu", weights_only=True)


# how the files torch.save writes begin: a zip archive (torch >= 1.6), or a pickle of
# protocol 2 or later (the legacy format)
_TORCH_HEADS = (b"PK\x03\x04", b"\x80")


def _what_it_is(head: bytes) -> str:
    """What a file that torch did not write seems to be, from its first bytes."""
    if not head:
        return "it is empty"
    if head.lstrip().startswith((b"<!DOCTYPE", b"<html", b"<HTML")):
        return "it is a web page (a download that failed?); download the file itself"
    text = head.decode("utf-8", "replace")
    if all(c.isprintable() or c.isspace() for c in text):
        return f"it holds text ({text.split(chr(10))[0][:16]!r}...); give the .pth file itself"
    return "it is neither a zip archive nor a pickle, as torch.save writes; give the .pth itself"


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


def load_state_strict(
    model: nn.Module,
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


def timm_checkpoint_filter(model: nn.Module) -> Callable | None:
    """timm's `checkpoint_filter_fn` for `model`'s family (it maps e.g. the original PVT-v2
    layout to timm's names), or None when the family has none."""
    return getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
