"""`python app.py` as a test server: wait until it answers on loopback, or fail with its log."""

import time
import urllib.request

import pytest


def wait_until_serving(proc, url: str, log, limit_s: float) -> None:
    """Poll `url` until the app answers; fail with the log's tail if it exits or takes longer
    than `limit_s` seconds."""
    started = time.perf_counter()
    while True:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"app.py exited with {proc.returncode}:\n{log.read()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if time.perf_counter() - started > limit_s:
                pytest.fail(f"app.py did not answer within {limit_s:g} s")
            time.sleep(0.5)
