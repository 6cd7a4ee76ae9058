"""Writing files so that a reader never sees half of one: `atomic_path(path)`,
`atomic_write(path, write)` and `write_text(path, text)` write a temporary file beside `path`
and rename it into place only when the write succeeded; a full disk is a `DiskFullError` ("no
space left on <folder>"); `remove_stale_temporaries(folder)` removes the temporaries a killed
writer left behind. Every file selm, the demo and training write goes through here.

A writer holds a lock (flock) on its temporary file while it writes: the lock goes with the
process, so a temporary whose lock is free belongs to a writer that died (SIGKILL, a crash)
and is removed, while a live writer's is left alone."""

from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


class DiskFullError(OSError):
    """A write failed because its file system is full; `str()` says where and what to do.
    Built as `DiskFullError(errno.ENOSPC, message)`, like any OSError (so it pickles)."""

    def __str__(self) -> str:
        return str(self.strerror)


_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
LOW_SPACE = 4 * 2**20  # bytes: less free space than this after a failed write means a full disk
# what `atomic_path` names its temporaries: .STEM.<12 hex>.tmpSUFFIX (for the file STEMSUFFIX)
_TEMPORARY = re.compile(r"^\.(?P<stem>.*)\.[0-9a-f]{12}\.tmp(?P<suffix>\.[^.]*)?$")
# how libraries that hide the errno in their own error (safetensors' SafetensorError) word it
_FULL_WORDS = ("no space left on device", "os error 28", "storagefull", "disk quota exceeded")

try:
    import fcntl
except ImportError:  # Windows has none: every temporary there is taken for a dead writer's
    fcntl = None


def _free_bytes(path: Path) -> int | None:
    for folder in (path, *path.parents):
        if folder.is_dir():
            try:
                return shutil.disk_usage(folder).free
            except OSError:
                return None
    return None


def disk_full(err: BaseException, path: str | os.PathLike) -> DiskFullError | None:
    """A `DiskFullError` naming `path` when `err` (raised while writing under `path`) comes from a
    full disk, else None. ENOSPC / EDQUOT say so; libraries that hide the errno behind their own
    error (torch's zip writer, libsndfile's "System error") are recognised by the folder having
    (almost) no free space left, so call this before the partial output is removed."""
    path = Path(path)
    full = isinstance(err, OSError) and err.errno in _FULL_ERRNOS
    full = full or any(words in str(err).lower() for words in _FULL_WORDS)
    if not full and isinstance(err, OSError | RuntimeError):
        free = _free_bytes(path)
        full = free is not None and free < LOW_SPACE
    if not full:
        return None
    return DiskFullError(
        errno.ENOSPC,
        f"no space left on {path}: free some space there (or write elsewhere) and retry",
    )


def _hold(tmp: Path) -> int:
    """Create `tmp` and lock it for this process (the mark of a live writer) -> the open
    descriptor that holds the lock until it is closed."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a file system without locks: the temporary is written unmarked
            pass
    return fd


def held(path: str | os.PathLike) -> bool:
    """Whether a live writer holds the temporary `path` (its `atomic_path` lock is taken)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:  # taken (BlockingIOError): its writer runs
        return True
    finally:
        os.close(fd)
    return False


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix); on success it replaces `path`.

    The temporary exists, empty and locked by this process, before the writer opens it (it may
    truncate it, not replace it). The file gets the usual permissions, 0666 less the umask,
    whatever its writer chose (safetensors writes 0600); on any error, SIGTERM's SystemExit and
    Ctrl-C included, the temporary file is removed and `path` is left as it was (a full disk
    raises `DiskFullError` naming the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")
    lock = _hold(tmp)
    try:
        yield tmp
        if tmp.is_file():
            os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except Exception as err:  # OSError, RuntimeError, a library's own (SafetensorError)
        full = disk_full(err, path.parent)
        if full is None:
            raise
        raise full from err
    finally:
        try:
            if tmp.exists():
                tmp.unlink()
        finally:
            os.close(lock)


def current_umask() -> int:
    """The process's umask, read without changing it where Linux tells (/proc), else by setting
    and restoring it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether `path` is named as `atomic_path` names its temporary files."""
    return bool(_TEMPORARY.match(Path(path).name))


def remove_stale_temporaries(
    folder: str | os.PathLike, targets: Iterable[str] | None = None
) -> list[Path]:
    """Remove the temporary files (and folders) `atomic_path`-style writers left in `folder` when
    they were killed mid-write; returns what was removed. A temporary file a live writer still
    holds (`held`) is left; `targets`: only the temporaries of these file names (e.g. the
    output a command line is about to write), default all. Temporary folders carry no lock:
    call it on a folder with them when no other process writes there."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    wanted = None if targets is None else {Path(t).name for t in targets}
    removed = []
    for entry in folder.iterdir():
        found = _TEMPORARY.match(entry.name)
        if found is None:
            continue
        if wanted is not None and found["stem"] + (found["suffix"] or "") not in wanted:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        elif held(entry):
            continue
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` to a temporary file beside `path`, then rename it to `path`."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """`text` into `path` (UTF-8), atomically: a reader sees the old file or the whole new one."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
