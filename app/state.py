"""What the demo keeps between requests: loaded models, sessions' results, its cache folder.

`PredictorPool` holds predictors by checkpoint and is only read while a model runs.
`ResultStore` keeps what a session needs to redraw (its display-size predictions) under a
random key, bounded in bytes and in age: a session's `gr.State` holds only the key, so users
never see each other's results and memory stays within the budget however many visit.
`CacheDir` is the folder the app owns for gradio's uploads and outputs, emptied at start-up
and at shutdown, and locked while the app runs; `Requests` are the requests in flight, each in
a folder of its own, which shutting down stops and waits for before the folder is emptied.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from app.validation import DemoError
from selm.runtime import Progress

try:
    import fcntl
except ImportError:  # Windows: the cache folder is not locked there
    fcntl = None


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


def footprint(value) -> int:
    """Bytes held by the numpy arrays inside `value` (dataclasses, dicts, lists, tuples)."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(footprint(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, dict):
        return sum(footprint(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(footprint(v) for v in value)
    return 0


class ResultStore:
    """Sessions' results by random key, least recently used dropped first.

    Bounded by `max_bytes` (their arrays' total, see `footprint`) and by `ttl` seconds since a
    result was last used; `clock` is injectable for tests. A result bigger than the whole budget
    is refused with a message."""

    def __init__(
        self,
        *,
        max_bytes: int = 1 << 30,
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes, self.ttl, self._clock = int(max_bytes), float(ttl), clock
        self._items: OrderedDict[str, tuple[object, int, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def _drop(self, key: str) -> None:
        _, size, _ = self._items.pop(key)
        self._bytes -= size

    def _expire(self, now: float) -> None:
        for key in [k for k, (_, _, used) in self._items.items() if now - used > self.ttl]:
            self._drop(key)

    def put(self, value, key: str | None = None) -> str:
        """Store `value` (replacing `key`'s old value when given) -> its key."""
        size = footprint(value)
        if size > self.max_bytes:
            raise DemoError(
                f"This result needs {size / 2**20:.0f} MB to keep for redrawing, more than this "
                f"demo keeps per session ({self.max_bytes / 2**20:.0f} MB); try a shorter clip."
            )
        with self._lock:
            now = self._clock()
            self._expire(now)
            if key in self._items:
                self._drop(key)
            key = key or secrets.token_urlsafe(16)
            while self._items and self._bytes + size > self.max_bytes:
                self._drop(next(iter(self._items)))
            self._items[key] = (value, size, now)
            self._bytes += size
            return key

    def get(self, key: str | None):
        """The value stored under `key`, or None when there is none (never run, or dropped)."""
        if not key:
            return None
        with self._lock:
            now = self._clock()
            self._expire(now)
            if key not in self._items:
                return None
            value, size, _ = self._items.pop(key)
            self._items[key] = (value, size, now)  # most recently used
            return value


class CacheDir:
    """The app's own folder for uploads and outputs (gradio's GRADIO_TEMP_DIR).

    `reset()` takes the folder for this process (a lock on its mark file, which holds the
    owner's pid), empties it (at start-up: what a killed run left) and marks it as the app's;
    `clear()` removes what is in it (at shutdown); `release()` gives it up. A folder that
    another live process holds is never emptied (its lock goes when that process dies, so a
    killed run's folder is taken over), nor one that holds files but not the mark:
    `--cache-dir ~` must not wipe a home folder."""

    MARK = ".selm-demo-cache"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).absolute()
        self._lock: int | None = None

    def reset(self) -> Path:
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(
                f"--cache-dir {self.path} is a file, not a folder; give a folder (it is "
                "created when missing)"
            )
        if self.path.is_dir() and any(self.path.iterdir()) and not (self.path / self.MARK).exists():
            raise ValueError(
                f"the cache folder {self.path.name!r} holds files this app did not make; give "
                "--cache-dir an empty or new folder"
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._take()
        except PermissionError as err:
            raise ValueError(
                f"--cache-dir {self.path} cannot be written ({err.strerror}); give a folder "
                "this user may write"
            ) from err
        self.clear()
        return self.path

    def _take(self) -> None:
        """Lock the mark file for this process, or ValueError naming the live owner."""
        if self._lock is not None:
            return
        fd = os.open(self.path / self.MARK, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is None:
            self._lock = fd
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise ValueError(
                f"the cache folder {self.path} is in use by another running demo (pid "
                f"{owner}); stop that one, or give this one its own --cache-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock = fd

    def release(self) -> None:
        """Give the folder up (the lock; the mark stays)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def clear(self) -> None:
        """Remove everything in the folder but its mark."""
        if (self.path / self.MARK).exists():
            for child in self.path.iterdir():
                if child.name == self.MARK:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)

    def files(self) -> list[Path]:
        if not self.path.is_dir():
            return []
        return [p for p in self.path.rglob("*") if p.is_file() and p.name != self.MARK]


@contextmanager
def request_dir(root: Path | None = None) -> Iterator[Path]:
    """A fresh temporary folder for one request (under `root` when given), removed when the
    request ends."""
    if root is not None:
        Path(root).mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="selm-demo-", dir=root))
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


SHUTTING_DOWN = "The demo is shutting down; nothing was kept. Try again when it is back."


class Requests:
    """The requests in flight. Each runs in its own folder (`folder`) and reports progress
    through `watch`; `close()` (at shutdown) refuses new ones, stops those in flight at their
    next progress report (their folders and partial outputs removed as on any error) and
    waits for them, so that nothing is written once the cache folder is emptied."""

    def __init__(self) -> None:
        self._closing = threading.Event()
        self._done = threading.Condition()
        self._active = 0

    def check(self) -> None:
        if self._closing.is_set():
            raise DemoError(SHUTTING_DOWN)

    @contextmanager
    def folder(self, root: Path | None = None) -> Iterator[Path]:
        """`request_dir(root)`, counted as in flight until it is removed."""
        self.check()
        with self._done:
            self._active += 1
        try:
            with request_dir(root) as workdir:
                yield workdir
        finally:
            with self._done:
                self._active -= 1
                self._done.notify_all()

    def watch(self, progress: Progress) -> Progress:
        """`progress` that first stops the request when the demo is shutting down."""

        def report(fraction: float, message: str) -> None:
            self.check()
            progress(fraction, message)

        return report

    def close(self, timeout: float) -> bool:
        """Refuse new requests and wait up to `timeout` s for those in flight -> whether none
        is left."""
        self._closing.set()
        deadline = time.monotonic() + timeout
        with self._done:
            while self._active and (left := deadline - time.monotonic()) > 0:
                self._done.wait(left)
            return self._active == 0
