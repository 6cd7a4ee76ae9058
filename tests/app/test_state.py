"""app.state: the shared pool of loaded predictors."""

from __future__ import annotations

import threading
import time

import numpy as np
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


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_result_store_is_bounded_in_bytes_lru_first():
    from app.state import ResultStore

    store = ResultStore(max_bytes=3000, ttl=100, clock=FakeClock())
    keys = [store.put({"frames": np.zeros(1000, np.uint8)}) for _ in range(3)]
    assert store.nbytes == 3000 and len(store) == 3 and len(set(keys)) == 3
    assert store.get(keys[0]) is not None  # now the most recently used
    fourth = store.put([np.zeros(1000, np.uint8)])
    assert store.get(keys[1]) is None  # the least recently used went
    assert store.get(keys[0]) is not None and store.get(fourth) is not None
    assert store.nbytes == 3000
    again = store.put(np.zeros(500, np.uint8), keys[0])  # a session's new result replaces
    assert again == keys[0] and store.nbytes == 2500 and store.get(keys[0]).size == 500
    with pytest.raises(DemoError, match="more than this demo keeps"):
        store.put(np.zeros(4000, np.uint8))
    assert store.get(None) is None and store.get("never-issued") is None


def test_result_store_drops_results_after_their_ttl():
    from app.state import ResultStore

    clock = FakeClock()
    store = ResultStore(max_bytes=10_000, ttl=10, clock=clock)
    old, kept = store.put(np.zeros(100)), store.put(np.zeros(100))
    clock.now = 8
    assert store.get(kept) is not None  # used: its age restarts
    clock.now = 15
    assert store.get(old) is None and store.get(kept) is not None
    assert len(store) == 1 and store.nbytes == 800


def test_footprint_counts_the_arrays_of_a_prediction(fake_predictor, media_dir):
    from app.state import footprint

    pred = fake_predictor.predict(str(media_dir / "tone.mp4"))
    expected = pred.frames.nbytes + pred.probs.nbytes + pred.waveform.nbytes + pred.times.nbytes
    expected += sum(h.nbytes for h in pred.hit_maps) + sum(d.nbytes for d in pred.dam_maps)
    expected += sum(v.nbytes for level in pred.bcsm for v in level.values() if v is not None)
    assert footprint(pred) == expected
    assert footprint((pred, pred, ("a", "b"))) == 2 * expected


def test_cache_dir_is_emptied_at_start_and_never_a_foreign_folder(tmp_path):
    from app.state import CacheDir

    cache = CacheDir(tmp_path / "cache")
    root = cache.reset()
    (root / "sub").mkdir()
    (root / "sub" / "upload.mp4").write_bytes(b"x")
    (root / "left.wav").write_bytes(b"x")
    assert len(cache.files()) == 2
    CacheDir(root).reset()  # the next start-up: what the last run left is gone
    assert cache.files() == [] and root.is_dir()
    (root / "out.mp4").write_bytes(b"x")
    cache.clear()
    assert cache.files() == [] and list(root.iterdir()) == [root / CacheDir.MARK]
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="holds files this app did not make"):
        CacheDir(home).reset()
    CacheDir(home).clear()
    assert (home / "thesis.tex").read_text() == "precious"
