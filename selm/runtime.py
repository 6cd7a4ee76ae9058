"""How long-running calls share the process: the OpenMP threads the command-line tools let
yield before torch starts, freed memory handed back, and the progress callback's type.

On a shared CPU (a Space, a busy workstation) OpenMP threads that spin while waiting for work
steal the cores other processes need: measured on 2 shared cores at load 8-12, one 5-s window
took 4.7 s with spinning threads and 0.40 s with `OMP_WAIT_POLICY=PASSIVE` (about 5 % slower
when the machine is quiet). The OpenMP runtime reads these variables once, when torch loads
it, so `yield_idle_threads()` must run before `import torch`; a value the user set is kept.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Callable

# progress(fraction in [0, 1], message): what long calls (a prediction, a download) report
Progress = Callable[[float, str], object]

# libgomp (torch's Linux wheels) reads OMP_WAIT_POLICY; Intel's OpenMP reads KMP_BLOCKTIME
IDLE_THREAD_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}


def yield_idle_threads(environ=None) -> dict[str, bool]:
    """Set IDLE_THREAD_ENV's variables where unset -> {name: whether it was set here}.
    Returns `{}` when torch is already imported (too late to matter: nothing is changed)."""
    environ = os.environ if environ is None else environ
    if "torch" in sys.modules:
        return {}
    applied = {}
    for name, value in IDLE_THREAD_ENV.items():
        applied[name] = name not in environ
        environ.setdefault(name, value)
    return applied


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none (macOS, musl, Windows)."""
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)
    except (OSError, TypeError):  # no C library of the process to open (Windows)
        return None


def release_freed_memory() -> bool:
    """Hand the heap memory freed so far back to the operating system (glibc `malloc_trim`);
    returns whether the C library can. The Predictor calls it after each window: decoding,
    the model and drawing free many 0.3-14 MB blocks, and glibc, which raises its mmap
    threshold as they are freed, otherwise keeps them in a fragmented heap. Measured on a 300-s
    640x360 clip (2 cores, selm-hard, overlay written): peak RSS 1179 MB against 1578 MB
    without, in the same 17.8 s."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
