"""app.state: the shared pool of loaded predictors."""

from __future__ import annotations

import threading
import time

import pytest

from app.state import PredictorPool
from app.validation import DemoError


def test_pinned_loaded_once_and_least_recent_dropped():
    loads = []

    def loader(spec):
        loads.append(spec)
        return f"predictor:{spec}"

    pool = PredictorPool(loader, pinned={"default": "the default"}, capacity=2)
    assert pool.get("default") == "the default" and loads == []
    assert pool.get("a") == "predictor:a" and pool.get("a") == "predictor:a"
    pool.get("b")
    pool.get("a")  # a is now the most recent
    pool.get("c")  # drops b
    assert loads == ["a", "b", "c"] and "b" not in pool and "a" in pool and "default" in pool


def test_failed_load_is_a_message():
    def loader(spec):
        raise ValueError(f"{spec} is not a SelM checkpoint directory: config.json missing")

    with pytest.raises(DemoError, match="Could not load the checkpoint 'x'.*config.json missing"):
        PredictorPool(loader).get("x")


def test_concurrent_requests_load_once():
    loads = []

    def loader(spec):
        loads.append(spec)
        time.sleep(0.2)
        return object()

    pool = PredictorPool(loader)
    got = []
    threads = [threading.Thread(target=lambda: got.append(pool.get("m"))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == ["m"] and len({id(p) for p in got}) == 1
