"""Load: 8 concurrent clients against `python app.py` on 127.0.0.1 (tiny real checkpoints).

Bounded: 8 clients x 2 rounds of (run, redraw), 120 s per round at most (SELM_LOAD_ROUNDS=N
for more). Asserts that no client sees another's result (each has its own clip length and
audio), that no request fails, that the server's memory grows by less than a bound after a
warm-up, and that SIGTERM leaves no file in the app's cache folder. Slow (~35 s on 2 cores):
`pytest -m slow tests/reliability`.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from app_process import wait_until_serving

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 8
KINDS = ("original", "mute", "noise")
MEMORY_GROWTH_MB = 400  # a bound: the store's budget is 64 MB, models and caches are loaded
ROUNDS = int(os.environ.get("SELM_LOAD_ROUNDS", "2"))  # run + redraw pairs per client

pytestmark = pytest.mark.slow


def write_clip(path: Path, seconds: int) -> Path:
    from selm.media.writer import open_writer

    frame = np.full((48, 64, 3), 51, np.uint8)
    frame[8:30, 8:30] = 255
    t = np.arange(seconds * 16000) / 16000
    with open_writer(path, size=(64, 48), fps=4, sample_rate=16000) as out:
        out.write_audio((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
        for _ in range(seconds * 4):
            out.write_frame(frame)
    return path


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.fixture
def server(tmp_path):
    import torch

    from selm.build import build_selm
    from selm.weights.checkpoint import save_pretrained

    torch.manual_seed(0)
    checkpoint = save_pretrained(build_selm("selm_tiny", input_size=64), tmp_path / "tiny")
    examples = tmp_path / "examples"
    examples.mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cache = tmp_path / "cache"
    log = open(tmp_path / "app.log", "w+")  # noqa: SIM115
    cmd = [
        sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port),
        "--checkpoint", str(checkpoint), "--examples-dir", str(examples),
        "--cache-dir", str(cache), "--session-mb", "64", "--concurrency", "2", "--no-warmup",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    env.pop("SPACE_ID", None)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(proc, url, log, 120)
        yield proc, url, cache, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_eight_clients_no_mixing_bounded_memory_clean_cache(server, tmp_path):
    from gradio_client import Client, handle_file

    proc, url, cache, log = server
    clips = [write_clip(tmp_path / f"clip_{n}s.mp4", n) for n in range(1, CLIENTS + 1)]
    deadline = time.perf_counter() + 120 * ROUNDS

    def session(index: int) -> list[str]:
        seconds, kind = index + 1, KINDS[index % len(KINDS)]
        client = Client(url, verbose=False, download_files=False)  # results stay URLs
        args = (handle_file(str(clips[index])), kind, None, None, "tiny", "")
        problems = []
        for step in range(ROUNDS):
            *_, second, _, summary = client.predict(*args, 0.5, 0, api_name="/run")
            if f"**{seconds} s**" not in summary or second["maximum"] != max(seconds - 1, 1):
                problems.append(f"client {index} run {step}: got {summary!r}")
            words = {"original": "its own audio", "mute": "silence", "noise": "white noise"}
            if words[kind] not in summary:
                problems.append(f"client {index}: heard {summary!r}, asked for {kind}")
            *_, summary = client.predict(0.3, 0, 0, api_name="/redraw")  # the session's own
            if f"**{seconds} s**" not in summary:
                problems.append(f"client {index} redraw: got {summary!r}")
            if time.perf_counter() > deadline:
                problems.append(f"client {index}: past the time bound")
                break
        return problems

    first = session(0)  # warm-up: the model, gradio's caches
    assert first == []
    before = rss_mb(proc.pid)
    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(session, range(CLIENTS)))
    elapsed = time.perf_counter() - started
    after = rss_mb(proc.pid)
    print(
        f"\n{CLIENTS} clients x {2 * ROUNDS} requests in {elapsed:.1f} s; "
        f"server RSS {before:.0f} -> {after:.0f} MB"
    )
    assert [p for r in results for p in r] == []
    assert after - before < MEMORY_GROWTH_MB
    uploads = [p for p in cache.rglob("*") if p.is_file() and p.name != ".selm-demo-cache"]
    assert uploads  # the cache was in use
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    left = [p for p in cache.rglob("*") if p.is_file() and p.name != ".selm-demo-cache"]
    assert left == [], f"left in the cache after SIGTERM: {left[:5]}"
    log.seek(0)
    text = log.read()
    assert not re.search(r"Traceback|Something went wrong", text), text[-3000:]
