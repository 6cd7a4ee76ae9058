"""What a demo is built with: the checkpoints on offer, the examples, the limits on what
visitors may send, and where sessions' results wait (`DemoSettings`, made by `app.py`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.examples import CheckpointInfo, Example, checkpoint_info
from app.state import Requests, ResultStore
from app.validation import Limits
from selm.weights.release import OFFICIAL_PREFIX


@dataclass(frozen=True)
class DemoSettings:
    """checkpoints: {label: dir, Hub repo id or official:NAME}, the default first; max_side:
    longest side, in pixels, of what is shown; concurrency: model runs at a time;
    allow_any_checkpoint: load any directory or repo a user types (a researcher's own machine),
    else only the listed ones and official:NAME; store: where sessions' results wait for redraws;
    cache_dir: the app's own folder for per-request files (default: the system's temp dir)."""

    checkpoints: dict[str, str]
    examples: list[Example] = field(default_factory=list)
    limits: Limits = Limits()
    max_side: int = 480
    concurrency: int = 1
    gpu: Callable[[Callable], Callable] | None = None  # e.g. spaces.GPU on Hugging Face ZeroGPU
    allow_any_checkpoint: bool = False
    store: ResultStore = field(default_factory=ResultStore)
    cache_dir: Path | None = None
    requests: Requests = field(default_factory=Requests)


def infos(settings: DemoSettings) -> dict[str, CheckpointInfo]:
    return {label: checkpoint_info(spec, label) for label, spec in settings.checkpoints.items()}


def default_compare(settings: DemoSettings) -> str:
    """The Compare tab's first choice: the checkpoint an example's description compares with
    the default, when listed; else the last local checkpoint (the authors' ones download on
    first use)."""
    local = [
        label for label, s in settings.checkpoints.items() if not s.startswith(OFFICIAL_PREFIX)
    ]
    named = [ex.compare for ex in settings.examples if ex.compare in local[1:]]
    return named[0] if named else (local or list(settings.checkpoints))[-1]
