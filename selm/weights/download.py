"""One published file in the selm cache, fetched so that it survives real networks.

`obtain(source, places)` returns a checked copy of the file: the first of `places` that holds
it (fetched by an earlier run, or put there by hand), else a download into `places[0]`. Every
copy passes the same checks (`selm.weights.cache`): a file that is plainly not it (a web page,
not a PyTorch file, the wrong size or layout) is discarded and fetched again; one whose sha256
differs from the published or the recorded digest is refused, with what to do. A download

- starts when the host, or the proxy the environment names for it (HTTPS_PROXY, NO_PROXY, ...,
  read as `requests` reads them), accepts a connection, and goes where `requests` sends it;
- is written to `downloads/.partial/NAME-<source>/`, which outlives a dropped connection or a
  killed process: gdown resumes the bytes kept there (HTTP Range), within a call
  (`GDOWN_RETRIES`, its own short waits) and across calls (`ATTEMPTS`, waiting `RETRY_DELAYS_S`
  between them) and processes; a resumed file that fails its checks is fetched once more from
  the start;
- is renamed into place only after its checks pass; its sha256 and size are then recorded in
  downloads/checksums.json, so a later copy that differs is refused;
- is made by one process at a time per file (a lock in `downloads/.partial/`): another waits,
  then finds the file in place and checks it.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from selm.runtime import Progress
from selm.weights.cache import (
    OFFLINE_ENV,
    DownloadError,
    IntegrityError,
    check_digest,
    check_torch_file,
    locked,
    network_problem,
    offline,
    partial_dir,
    recorded,
    remember,
    sha256_of,
)

ATTEMPTS = 4  # calls to gdown per download; each resumes what the previous ones kept
RETRY_DELAYS_S = (5.0, 20.0, 60.0)  # the wait before the 2nd, 3rd, 4th call
GDOWN_RETRIES = 3  # gdown's own retries within a call (it waits up to 1, 2, 4 s)
TIMEOUT_S = (10.0, 60.0)  # (connect, between bytes)
_sleep = time.sleep


@dataclass(frozen=True)
class Source:
    """A published file: where it is and what is known about it."""

    name: str  # its file name in downloads/, and its key in checksums.json
    what: str  # what messages call it
    url: str  # what gdown requests
    page: str  # the address messages give (a Drive file's page)
    drive_id: str | None = None  # a Google Drive file: gdown requests it by id
    size: int | None = None  # published size in bytes, where known
    sha256: str | None = None  # published sha256 or its prefix, where known
    # reads a candidate file; raises DownloadError to refuse it; its value is passed on
    validate: Callable[[Path], object] | None = None


@dataclass(frozen=True)
class Obtained:
    path: Path
    sha256: str
    checked: object  # what `Source.validate` returned
    against: str | None  # the digest it matched: "published", "recorded", None (first copy)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def obtain(
    source: Source,
    places: Sequence[Path],
    *,
    progress: Progress | None = None,
    say: Callable = _say,
) -> Obtained:
    """A checked copy of `source` at one of `places` (module docstring); DownloadError, whose
    message says why and what to do, when there is none."""
    with locked(
        partial_dir() / f"{source.name}.lock",
        lambda: say(f"another process is fetching {source.what}; waiting for it"),
    ):
        for path in places:
            if not path.is_file():
                continue
            try:
                got = _accept(path, source, fresh=False)
            except IntegrityError:
                raise
            except DownloadError as err:
                path.unlink(missing_ok=True)
                say(f"discarding {path} ({err}); downloading it again")
                continue
            # the first good copy (put by hand, or cached before digests were recorded) is
            # recorded; once one is, this does nothing
            remember(source.name, sha256=got.sha256, size=path.stat().st_size, source=str(path))
            return got
        return _download(source, Path(places[0]), progress, say)


def _accept(path: Path, source: Source, *, fresh: bool) -> Obtained:
    check_torch_file(path, what=source.what, size=source.size)
    digest = sha256_of(path)
    against = check_digest(
        path, name=source.name, digest=digest, published=source.sha256, fresh=fresh
    )
    checked = source.validate(path) if source.validate is not None else None
    return Obtained(path, digest, checked, against)


def _download(source: Source, target: Path, progress: Progress | None, say: Callable) -> Obtained:
    if offline():
        raise DownloadError(f"{OFFLINE_ENV} is set, so {source.what} is not downloaded")
    problem = network_problem(source.url)
    if problem is not None:
        raise DownloadError(problem)
    folder = _partial_folder(source)
    output = folder / target.name
    say(f"downloading {source.what} from {source.page} to {target}")
    restarted = False
    while True:
        resumed = _receive(source, output, progress, say)
        try:
            got = _accept(output, source, fresh=True)
            break
        except DownloadError as err:
            shutil.rmtree(folder, ignore_errors=True)  # no base to resume from
            if not resumed or restarted:
                raise
            restarted = True
            say(f"the resumed {source.what} failed its checks ({err}); fetching it from the start")
            folder.mkdir(parents=True, exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(output, target)
    shutil.rmtree(folder, ignore_errors=True)
    remember(source.name, sha256=got.sha256, size=target.stat().st_size, source=source.url)
    return dataclasses.replace(got, path=target)


def _partial_folder(source: Source) -> Path:
    """downloads/.partial/NAME-<12 hex of the source>: bytes kept for another source (the
    registry changed) are never resumed, and are removed."""
    tag = hashlib.sha256((source.drive_id or source.url).encode()).hexdigest()[:12]
    folder = partial_dir() / f"{source.name}-{tag}"
    for other in partial_dir().glob(f"{glob.escape(source.name)}-*"):
        if other != folder and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _kept(folder: Path) -> int:
    """Bytes kept in a partial folder (gdown's `.part` file, or its finished output)."""
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def _clear(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink(missing_ok=True)


def _receive(source: Source, output: Path, progress: Progress | None, say: Callable) -> int:
    """Call gdown (resuming) until `output` holds a whole transfer -> the bytes kept from an
    earlier try when this call began (0: fetched from the start)."""
    import gdown

    expected = source.size or (recorded(source.name) or {}).get("size")
    kept = _kept(output.parent)
    if expected and kept > expected:  # longer than the file: not a part of it
        _clear(output.parent)
        kept = 0
    first = kept
    where = dict(id=source.drive_id) if source.drive_id else dict(url=source.url)
    attempt = 0
    while True:
        attempt += 1
        if kept:
            say(f"resuming {source.what} after {kept / 1e6:.0f} MB (kept in {output.parent})")
        try:
            gdown.download(
                output=str(output),
                quiet=False,
                progress=_reporter(source, progress),
                timeout=TIMEOUT_S,
                retries=GDOWN_RETRIES,
                resume=True,
                **where,
            )
        except Exception as err:  # gdown and requests raise many types; _transient sorts them
            unresumable = _unresumable(err)
            if unresumable:
                _clear(output.parent)
            kept = _kept(output.parent)
            if attempt == ATTEMPTS or not (unresumable or _transient(err)):
                raise DownloadError(_failed(err, attempt, kept, output.parent)) from err
            delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S)) - 1]
            again = f"trying again in {delay:g} s (attempt {attempt + 1} of {ATTEMPTS})"
            say(f"the download of {source.what} was interrupted ({_one_line(err)}); {again}")
            if progress is not None:
                done = min(kept / expected, 1.0) if expected else 0.0
                progress(done, f"the download of {source.what} was interrupted; {again}")
            _sleep(delay)
            continue
        if not output.is_file():
            raise DownloadError("the download produced no file")
        return first


def _reporter(source: Source, progress: Progress | None) -> Callable[[int, int | None], None]:
    def report(done: int, total: int | None) -> None:
        if progress is not None:
            total = total or source.size
            mb = f"{done / 1e6:.0f}" + (f" / {total / 1e6:.0f} MB" if total else " MB")
            progress(done / total if total else 0.0, f"downloading {source.what}: {mb}")

    return report


def _one_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())}"


def _failed(err: BaseException, attempts: int, kept: int, folder: Path) -> str:
    tries = f"{attempts} attempt" + ("s" if attempts > 1 else "")
    message = f"the download failed after {tries} ({_one_line(err)})"
    if kept:
        message += (
            f"; the {kept / 1e6:.0f} MB received are kept in {folder} and the next try resumes "
            "from there"
        )
    return message


def _unresumable(err: BaseException) -> bool:
    """gdown's refusal to append when the server ignored the byte range it asked for."""
    from gdown.exceptions import DownloadError as GdownError

    return isinstance(err, GdownError) and "byte range" in str(err)


def _transient(err: BaseException) -> bool:
    """Whether another call may succeed: dropped or refused connections, timeouts, an
    incomplete body, HTTP 429 and 5xx. Not: TLS and proxy errors (settings), Drive refusing
    the file (permissions, quota: its page is checked afterwards), anything else."""
    import requests
    from gdown.exceptions import DownloadError as GdownError
    from gdown.exceptions import FileURLRetrievalError

    exceptions = requests.exceptions
    if isinstance(err, exceptions.SSLError | exceptions.ProxyError | FileURLRetrievalError):
        return False
    if isinstance(err, exceptions.HTTPError):
        status = err.response.status_code if err.response is not None else None
        return status is None or status == 429 or status >= 500
    network = (exceptions.ConnectionError, exceptions.Timeout, exceptions.ChunkedEncodingError)
    return isinstance(err, network + (GdownError, ConnectionError, TimeoutError))
