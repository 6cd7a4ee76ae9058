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
    cache.release()  # this run ends (as a killed one does: its lock goes with the process)
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


HOLDER = """
import sys, time
from app.state import CacheDir
CacheDir(sys.argv[1]).reset()
print("holding", flush=True)
time.sleep(60)
"""


def test_a_live_demos_cache_folder_is_never_emptied_and_a_dead_ones_is_taken_over(tmp_path):
    """Two demos on one machine: the second start-up refuses the folder the first one holds
    (its lock), without touching a file; once the first is gone (SIGKILL), it is taken over."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from app.state import CacheDir

    root = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    first = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env=env,
    )
    try:
        assert first.stdout.readline().strip() == "holding"
        (root / "gradio").mkdir()
        (root / "gradio" / "example.mp4").write_bytes(b"the first demo's copy")
        owner = rf"in use by another running demo \(pid {first.pid}\)"
        with pytest.raises(ValueError, match=owner):
            CacheDir(root).reset()
        assert (root / "gradio" / "example.mp4").read_bytes() == b"the first demo's copy"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    second = CacheDir(root)
    assert second.reset() == root and second.files() == []  # a dead owner's folder: taken
    assert (root / CacheDir.MARK).read_text().strip() == str(os.getpid())
    second.release()


def test_a_cache_dir_that_is_a_file_is_one_clear_error(tmp_path):
    from app.state import CacheDir

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt is a file, not a folder"):
        CacheDir(tmp_path / "notes.txt").reset()
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_shutting_down_stops_requests_in_flight_and_waits_for_them(tmp_path):
    """A request that is running when the demo stops is stopped at its next progress report,
    its folder removed, before `close` returns; a new one is refused."""
    from app.state import Requests
    from app.validation import DemoError

    requests = Requests()
    started, go, seen, closed = threading.Event(), threading.Event(), [], []

    def request():
        try:
            with requests.folder(tmp_path / "requests") as workdir:
                report = requests.watch(lambda fraction, message: None)
                (workdir / "overlay.mp4").write_bytes(b"half")
                started.set()
                go.wait(10)
                report(0.5, "model: window 2/4")  # the next report: stopped here
                (workdir / "audio_heard.wav").write_bytes(b"never")
        except DemoError as err:
            seen.append(str(err))

    thread = threading.Thread(target=request)
    thread.start()
    assert started.wait(10)
    closing = threading.Thread(target=lambda: closed.append(requests.close(timeout=10)))
    closing.start()
    go.set()
    thread.join(10)
    closing.join(10)
    assert closed == [True] and seen[0].startswith("The demo is shutting down")
    assert list((tmp_path / "requests").iterdir()) == []
    with pytest.raises(DemoError, match="shutting down"), requests.folder(tmp_path):
        pass
