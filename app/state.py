"""Loaded models, shared by every session.

The pool is the demo's only process-wide object: it holds predictors by checkpoint (a directory
or a Hugging Face repo id) and is only read while a model runs. Everything a request produces
lives in that session's `gr.State` or in its own temporary folder, so users never see each
other's results.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from app.validation import DemoError


class PredictorPool:
    """Predictors by checkpoint spec, loaded on first use, least recently used dropped first.

    `pinned` predictors (the default model, loaded at start-up) are never dropped; `capacity`
    bounds the others (checkpoints picked for comparison).
    """

    def __init__(
        self,
        loader: Callable[[str], object],
        *,
        pinned: dict[str, object] | None = None,
        capacity: int = 2,
    ) -> None:
        self._loader = loader
        self._pinned = dict(pinned or {})
        self._loaded: OrderedDict[str, object] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def get(self, spec: str):
        """The predictor for `spec`; DemoError (with the loader's reason) when it cannot load."""
        if spec in self._pinned:
            return self._pinned[spec]
        with self._lock:  # one load at a time; a second request for it waits and reuses it
            if spec in self._loaded:
                self._loaded.move_to_end(spec)
                return self._loaded[spec]
            try:
                predictor = self._loader(spec)
            except Exception as err:  # any failure to load is the user's pick, not a crash
                raise DemoError(f"Could not load the checkpoint {spec!r}: {err}") from err
            self._loaded[spec] = predictor
            while len(self._loaded) > self._capacity:
                self._loaded.popitem(last=False)
            return predictor

    def __contains__(self, spec: str) -> bool:
        return spec in self._pinned or spec in self._loaded
