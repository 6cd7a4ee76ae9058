"""The selm cache folder and checked, atomic downloads into it (gdown: Google Drive and plain URLs).

    SELM_HOME (default: the user cache dir, e.g. ~/.cache/selm)
        downloads/    the files as published (the authors' .pth, torchvggish's VGGish)
        checkpoints/  converted checkpoints: config.json + model.safetensors + README.md

A download goes into a private temporary folder inside `downloads/` and is renamed into place
only after its checks pass (not an HTML page, a PyTorch file, expected size and sha256 where
known), so an interrupted or refused download leaves nothing a later run would trust.
`SELM_OFFLINE=1` forbids downloads: a missing file is then reported at once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from selm.runtime import Progress

HOME_ENV = "SELM_HOME"
OFFLINE_ENV = "SELM_OFFLINE"
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
_PICKLE_MAGIC = b"\x80"  # torch.save(..., _use_new_zipfile_serialization=False): a pickle
_TIMEOUT_S = (10.0, 60.0)  # (connect, between bytes)
_PROBE_TIMEOUT_S = 3.0


class DownloadError(OSError):
    """A file that could not be fetched or failed its checks; the message says what to do."""


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


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_torch_file(
    path: Path, *, what: str, size: int | None = None, sha256: str | None = None
) -> str:
    """Raise DownloadError unless `path` looks like the PyTorch file it should be; returns its
    sha256. `sha256` may be a prefix (torch hub names files by the first 8 hex digits)."""
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
    digest = sha256_of(path)
    if sha256 is not None and not digest.startswith(sha256.lower()):
        raise DownloadError(f"{what} has sha256 {digest}, expected {sha256}...: corrupted")
    return digest


def reachable(url: str) -> bool:
    """A TCP connect within a few seconds: a download's own timeouts and retries take minutes."""
    parts = urlparse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def fetch(
    *,
    url: str,
    target: Path,
    what: str,
    size: int | None = None,
    sha256: str | None = None,
    progress: Progress | None = None,
    drive_id: str | None = None,
    validate: Callable[[Path], object] | None = None,
) -> tuple[str, object]:
    """Download `url` (a Google Drive file when `drive_id` is given) to `target`, checked and
    atomic -> (its sha256, what `validate(partial_path)` returned). `validate` may raise to
    refuse the file. Raises DownloadError with the reason; nothing is left behind on failure."""
    import gdown

    if offline():
        raise DownloadError(f"{OFFLINE_ENV} is set, so {what} is not downloaded")
    if not reachable(url):
        raise DownloadError(f"{url.split('/')[2]} cannot be reached (no network?)")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    partial = scratch / target.name
    try:

        def report(done: int, total: int | None) -> None:
            if progress is not None:
                total = total or size
                mb = f"{done / 1e6:.0f}" + (f" / {total / 1e6:.0f} MB" if total else " MB")
                progress(done / total if total else 0.0, f"downloading {what}: {mb}")

        try:
            kwargs = dict(id=drive_id) if drive_id else dict(url=url)
            gdown.download(
                output=str(partial), quiet=False, progress=report, timeout=_TIMEOUT_S, **kwargs
            )
        except Exception as err:  # gdown and requests raise many types; all mean "not fetched"
            raise DownloadError(f"the download failed ({type(err).__name__}: {err})") from err
        if not partial.is_file():
            raise DownloadError("the download produced no file")
        digest = check_torch_file(partial, what=what, size=size, sha256=sha256)
        checked = validate(partial) if validate is not None else None
        os.replace(partial, target)
        return digest, checked
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
