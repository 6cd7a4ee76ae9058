import os
import subprocess
import sys
from pathlib import Path

import pytest

from selm.runtime import IDLE_THREAD_ENV, yield_idle_threads

ROOT = Path(__file__).resolve().parents[2]
PROBE = (  # `app.py` is run as a file (the `app` package shadows it as a module name)
    "import os, runpy, sys; {load}; "
    "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('KMP_BLOCKTIME'))"
)
LOADS = {"selm.predict": "import selm.predict", "app.py": "runpy.run_path('app.py')"}


def test_yield_idle_threads_keeps_the_users_values():
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    if "torch" in sys.modules:  # in this test process torch is loaded: nothing changes
        assert yield_idle_threads(env) == {} and env == {"OMP_WAIT_POLICY": "ACTIVE"}
    probe = (
        "from selm.runtime import yield_idle_threads as y; "
        "e = {'OMP_WAIT_POLICY': 'ACTIVE'}; print(y(e), e)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert "'OMP_WAIT_POLICY': False, 'KMP_BLOCKTIME': True" in out.stdout
    assert "'OMP_WAIT_POLICY': 'ACTIVE', 'KMP_BLOCKTIME': '0'" in out.stdout


@pytest.mark.parametrize("module", list(LOADS))
def test_cli_and_app_set_passive_threads_before_torch(module):
    env = {k: v for k, v in os.environ.items() if k not in IDLE_THREAD_ENV}
    env["PYTHONPATH"] = str(ROOT)
    check = PROBE.format(load=LOADS[module])
    out = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert out.stdout.split() == ["PASSIVE", "0"], out.stderr
    env["OMP_WAIT_POLICY"] = "ACTIVE"  # the user's choice wins
    out = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert out.stdout.split() == ["ACTIVE", "0"], out.stderr


def test_release_freed_memory_trims_the_heap_where_glibc_has_malloc_trim(monkeypatch):
    from selm import runtime

    calls = []
    monkeypatch.setattr(runtime, "_malloc_trim", lambda: lambda pad: calls.append(pad) or 1)
    assert runtime.release_freed_memory() is True and calls == [0]
    monkeypatch.setattr(runtime, "_malloc_trim", lambda: None)  # macOS, musl: nothing to do
    assert runtime.release_freed_memory() is False
    if sys.platform == "linux" and os.path.exists("/lib/x86_64-linux-gnu/libc.so.6"):
        monkeypatch.undo()
        assert runtime.release_freed_memory() is True  # the real glibc call runs
