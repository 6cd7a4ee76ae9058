"""The one place that reads a checkpoint spec and says where its weights are, then loads them.

    spec                      where the weights are
    official:NAME             the authors' published model, fetched and converted once into the
                              selm cache (selm.weights.release)
    PATH.pth                  a published-layout file, converted once into the selm cache
    a folder                  config.json + model.safetensors in it (selm.weights.checkpoint)
    OWNER/NAME                a Hugging Face Hub repo, downloaded into the Hub's cache

Anything else is refused with what was expected. Loading is then layered: resolve (here), fetch
and convert (release), read and check (checkpoint), load strictly (state_dict).
"""

from __future__ import annotations

import os
from pathlib import Path

from selm.weights.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_checkpoint
from selm.weights.release import is_release_spec, resolve_release
from selm.weights.state_dict import CheckpointError


def resolve_checkpoint(spec: str | os.PathLike) -> Path:
    """The local checkpoint folder of a spec (module docstring), fetched or converted on first
    use; CheckpointError saying why when there is none."""
    if is_release_spec(spec):
        return resolve_release(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (path / n).is_file()]
        if missing:
            raise CheckpointError(
                f"{path} is not a SelM checkpoint directory: {', '.join(missing)} missing "
                f"(a checkpoint holds {CONFIG_NAME} and {WEIGHTS_NAME}; `python -m selm.convert` "
                "makes one from the authors' .pth files)"
            )
        return path
    text = str(spec)
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


def load_pretrained(spec: str | os.PathLike, map_location: str = "cpu", **overrides):
    """The SelM a checkpoint spec names (module docstring), rebuilt from its config (+ runtime
    `overrides`, see selm.weights.checkpoint.RUNTIME_FIELDS) and loaded strictly."""
    return load_checkpoint(resolve_checkpoint(spec), map_location, **overrides)
