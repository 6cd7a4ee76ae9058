"""The selm cache folder, the checks a file in it passes, and what was recorded about it.

    SELM_HOME (default: the user cache dir, e.g. ~/.cache/selm)
        downloads/    the files as published (the authors' .pth, torchvggish's VGGish)
            checksums.json   the sha256 and size of each file's first good copy
            .partial/        downloads under way or interrupted (resumed by the next try)
        checkpoints/  converted checkpoints: config.json + model.safetensors + README.md

Every file in `downloads/` is checked the same way whether it was just fetched, fetched by an
earlier run or put there by hand (`selm.weights.download`): not an HTML page, a PyTorch file,
the published size and sha256 where known, the sha256 recorded for its first good copy where
there is one. A digest that differs is refused (`IntegrityError`) with the file, both digests
and what to do. `SELM_OFFLINE=1` forbids downloads: a missing file is then reported at once.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from selm.files import write_text

HOME_ENV = "SELM_HOME"
OFFLINE_ENV = "SELM_OFFLINE"
RECORDS_NAME = "checksums.json"  # in downloads/: {file name: {sha256, size, source, first_seen}}
PARTIAL_NAME = ".partial"  # in downloads/: interrupted downloads and the per-file locks
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
_PICKLE_MAGIC = b"\x80"  # torch.save(..., _use_new_zipfile_serialization=False): a pickle
_PROBE_TIMEOUT_S = 3.0
_PROXY_PORTS = {"http": 80, "https": 443, "socks4": 1080, "socks5": 1080, "socks5h": 1080}


class DownloadError(OSError):
    """A file that could not be fetched or failed its checks; the message says what to do."""


class IntegrityError(DownloadError):
    """A PyTorch file whose sha256 (or size) differs from the published or recorded one."""


def selm_home() -> Path:
    """The cache root: $SELM_HOME, else the platform's user cache dir for selm."""
    given = os.environ.get(HOME_ENV, "").strip()
    if given:
        return Path(given).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("selm", appauthor=False))


def downloads_dir() -> Path:
    return selm_home() / "downloads"


def checkpoints_dir() -> Path:
    return selm_home() / "checkpoints"


def partial_dir() -> Path:
    return downloads_dir() / PARTIAL_NAME


def records_path() -> Path:
    return downloads_dir() / RECORDS_NAME


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_torch_file(path: Path, *, what: str, size: int | None = None) -> None:
    """Raise DownloadError unless `path` looks like the PyTorch file it should be: not a web
    page, a zip or pickle as torch.save writes them, `size` bytes where given."""
    actual_size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(1024)
    if b"<html" in head.lower() or head.lstrip().startswith(b"<"):
        quota = b"quota" in head.lower() or b"too many users" in head.lower()
        raise DownloadError(
            f"the server sent a web page instead of {what}"
            + (" (Google Drive's 'quota exceeded' page)" if quota else "")
            + ": Google Drive refuses large downloads for a while after many users fetched a "
            "file; try again later, or download it in a browser"
        )
    if not head.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
        raise DownloadError(f"{what} is not a PyTorch file (it starts with {head[:8]!r})")
    if size is not None and actual_size != size:
        raise DownloadError(f"{what} has {actual_size} bytes, expected {size}: incomplete")


# --- what was recorded about each file's first good copy ---


def read_records() -> dict[str, dict]:
    """{file name: {"sha256", "size", "source", "first_seen"}} from downloads/checksums.json;
    an unreadable file counts as empty (a later record rewrites it)."""
    try:
        records = json.loads(records_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return records if isinstance(records, dict) else {}


def recorded(name: str) -> dict | None:
    entry = read_records().get(name)
    return entry if isinstance(entry, dict) and isinstance(entry.get("sha256"), str) else None


def remember(name: str, *, sha256: str, size: int, source: str) -> bool:
    """Record `name`'s digest unless one is recorded already -> whether this call wrote it.
    Atomic, and serialised across processes (another file may be recorded at the same time)."""
    with locked(partial_dir() / f"{RECORDS_NAME}.lock"):
        records = read_records()
        if isinstance(records.get(name), dict) and records[name].get("sha256"):
            return False
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        records[name] = dict(sha256=sha256, size=size, source=source, first_seen=now)
        write_text(records_path(), json.dumps(records, indent=2, sort_keys=True) + "\n")
    return True


def check_digest(
    path: Path, *, name: str, digest: str, published: str | None, fresh: bool
) -> str | None:
    """Raise IntegrityError when `digest` (of `path`, the file called `name`) is not the
    published one (`published` may be a prefix, as torch hub names files) or the one recorded
    for `name`'s first good copy. `fresh`: `path` was just downloaded (nothing of it is kept).
    Returns what it was checked against: "published", "recorded" or None (nothing known)."""
    entry = recorded(name)
    if published is not None and not digest.startswith(published.lower()):
        full = len(published) == 64
        expected, why = published + ("" if full else "..."), "the published digest"
    elif entry is not None and digest != entry["sha256"]:
        expected = entry["sha256"]
        why = f"recorded for its first good copy in {records_path()}"
    else:
        return "published" if published is not None else "recorded" if entry else None
    if fresh:
        raise IntegrityError(
            f"the downloaded {name} has sha256 {digest}, expected {expected} ({why}): the "
            "transfer was corrupted or the published file changed, and nothing was kept. Run "
            "the same command again; if it fails the same way and you trust the new file, "
            f"delete the entry for {name} in {records_path()}"
        )
    raise IntegrityError(
        f"{path} has sha256 {digest}, expected {expected} ({why}): the file is corrupted or "
        f"was replaced. Delete {path} and run the same command again to fetch it afresh"
    )


# --- processes sharing the cache ---


@contextmanager
def locked(path: Path, waiting: Callable[[], object] | None = None) -> Iterator[None]:
    """Hold an exclusive advisory lock on `path` (created if missing, never removed) while the
    block runs; another process or thread waits. `waiting()` is called when it must wait.
    Released by the system when the process dies. Where there is no `fcntl` (Windows) the block
    runs unlocked."""
    try:
        import fcntl
    except ImportError:
        fcntl = None
    if fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- the network ---


def request_proxy(url: str) -> str | None:
    """The proxy a request for `url` goes through, read from the environment as `requests` (and
    so gdown and the Hub) reads it: HTTPS_PROXY / HTTP_PROXY / ALL_PROXY, either case, and
    NO_PROXY; None for a direct connection."""
    import requests.utils

    proxies = requests.utils.get_environ_proxies(url)
    return requests.utils.select_proxy(url, proxies) or None


def network_problem(url: str) -> str | None:
    """None when a TCP connection opens within a few seconds to where a request for `url`
    goes (the proxy the environment names for it, else its host), else why not in one line.
    A download's own timeouts and retries take minutes; this fails at once with no network."""
    parts = urlparse(url)
    proxy = request_proxy(url)
    if proxy is not None:
        given = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        address = (given.hostname, given.port or _PROXY_PORTS.get(given.scheme, 80))
    else:
        address = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    try:
        with socket.create_connection(address, timeout=_PROBE_TIMEOUT_S):
            return None
    except OSError as err:
        reason = err.strerror or str(err) or type(err).__name__
        if proxy is not None:
            return (
                f"the proxy {proxy} that the environment names for {parts.hostname} cannot be "
                f"reached ({reason}): check HTTPS_PROXY / HTTP_PROXY / NO_PROXY"
            )
        return (
            f"{parts.hostname} cannot be reached ({reason}; no network? behind a proxy, set "
            "HTTPS_PROXY)"
        )
