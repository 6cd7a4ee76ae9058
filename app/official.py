"""The authors' six published SelM models in the demo: listed next to ours, fetched on first pick.

Picking one downloads and converts it once (selm.weights.release, with the progress shown in the
UI), then loads it into the shared pool. Offline, or when Google Drive refuses, the pick gets a
message saying why and what to do; every other checkpoint keeps working.
"""

from __future__ import annotations

import logging

from app.state import PredictorPool
from app.validation import DemoError
from selm.runtime import Progress
from selm.weights.checkpoint import CheckpointError
from selm.weights.release import REGISTRY, is_release_spec, resolve_release

log = logging.getLogger("selm.demo")


def official_checkpoints() -> dict[str, str]:
    """{label: spec} of the six published models, e.g. "authors' SelM-PVTv2, S4"."""
    return {m.label: m.spec for m in REGISTRY.values()}


def label_of(spec: str) -> str | None:
    return next((m.label for m in REGISTRY.values() if m.spec == spec), None)


def with_official(checkpoints: dict[str, str]) -> dict[str, str]:
    """`checkpoints` ({label: spec}, the default first) with official specs given there
    relabelled, and the six published models appended after them."""
    listed = {label_of(spec) or label: spec for label, spec in checkpoints.items()}
    for label, spec in official_checkpoints().items():
        if spec not in listed.values():
            listed[label] = spec
    return listed


def prepare_checkpoint(spec: str | None, pool: PredictorPool, progress: Progress | None = None):
    """Fetch, convert and load a release spec the user picked -> a Markdown status line ("" for
    our own checkpoints, which load when they first run)."""
    spec = (spec or "").strip()
    if not spec or not is_release_spec(spec):
        return ""
    name = label_of(spec) or spec
    if spec in pool:
        return f"**{name}** is loaded."
    try:
        folder = resolve_release(spec, progress=progress, say=log.info)
        if progress is not None:
            progress(1.0, f"loading {name}")
        pool.get(spec)
    except (CheckpointError, DemoError) as err:
        log.warning("cannot load %s: %s", spec, err)
        return (
            f"**{name} cannot be loaded here.** The other checkpoints still work.\n\n"
            f"```\n{err}\n```"
        )
    return f"**{name}** is loaded (converted once, kept in the cache as `{folder.name}`)."
