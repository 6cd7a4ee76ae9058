"""Downloads that survive real networks (selm.weights.download): a dropped transfer resumes
within the run and in the next one, also after the process was killed; a resumed file that
fails its checks is fetched again from the start. Against the fake Drive, and against the real
gdown talking to a server on this machine (direct, and as an HTTP proxy)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from release_fakes import clear_proxies

import selm.weights.cache as cache
import selm.weights.download as download
import selm.weights.release as release
from selm.weights.cache import read_records, sha256_of
from selm.weights.download import ATTEMPTS, RETRY_DELAYS_S, Source, obtain
from selm.weights.release import ReleaseError
from selm.weights.resolve import resolve_checkpoint

ROOT = Path(__file__).resolve().parents[3]

# --- the fake Drive: gdown's partial files, kept and resumed ---


def test_a_dropped_transfer_resumes_within_the_run(fake_drive, capsys):
    fake_drive.drops = 1
    reports = []
    release.resolve_release("official:s4_r50", progress=lambda f, m: reports.append((f, m)))
    served = fake_drive.store.official("s4_r50")
    half = served.stat().st_size // 2
    assert fake_drive.starts == [0, half, 0]  # the second call went on from the kept half
    assert fake_drive.waits == [RETRY_DELAYS_S[0]]
    err = capsys.readouterr().err
    assert "was interrupted (ConnectionResetError: Connection broken" in err
    assert f"trying again in {RETRY_DELAYS_S[0]:g} s (attempt 2 of {ATTEMPTS})" in err
    assert f"resuming SelM_S4_R50.pth (official:s4_r50) after {half / 1e6:.0f} MB" in err
    interrupted = [m for _, m in reports if "interrupted" in m]  # the demo shows it too
    assert interrupted == [
        "the download of SelM_S4_R50.pth (official:s4_r50) was interrupted; trying again in "
        f"{RETRY_DELAYS_S[0]:g} s (attempt 2 of {ATTEMPTS})"
    ]
    raw = fake_drive.home / "downloads" / "SelM_S4_R50.pth"
    assert sha256_of(raw) == sha256_of(served)
    assert not list((fake_drive.home / "downloads" / ".partial").glob("*/*"))


def test_the_next_run_resumes_what_an_interrupted_one_kept(fake_drive, conversions, capsys):
    """A run that gave up (every attempt dropped) keeps its bytes; the next one asks for the
    rest only, checks the whole file and uses it."""
    fake_drive.drops = ATTEMPTS
    with pytest.raises(ReleaseError, match="the next try resumes from there"):
        resolve_checkpoint("official:s4_r50")
    size = fake_drive.store.official("s4_r50").stat().st_size
    kept, starts = 0, []
    for _ in range(ATTEMPTS):  # each attempt got half of what was left
        starts.append(kept)
        kept += (size - kept) // 2
    assert fake_drive.starts == starts
    capsys.readouterr()
    fake_drive.starts.clear()
    resolve_checkpoint("official:s4_r50")
    assert fake_drive.starts == [kept]  # the rest only
    assert f"after {kept / 1e6:.0f} MB" in capsys.readouterr().err
    (converted,) = conversions  # the whole file, checked, went on to the conversion
    assert converted["sha256"] == sha256_of(fake_drive.store.official("s4_r50"))
    assert not list(cache.partial_dir().glob("*/*"))


def test_a_resumed_file_that_fails_its_checks_is_fetched_again_from_the_start(
    fake_drive, conversions, capsys
):
    fake_drive.drops = ATTEMPTS
    with pytest.raises(ReleaseError):
        resolve_checkpoint("official:s4_r50")
    (part,) = (fake_drive.home / "downloads" / ".partial").glob("*/*.part")
    with open(part, "r+b") as f:  # the kept bytes went bad meanwhile
        f.seek(100)
        f.write(b"\0" * 100)
    kept = part.stat().st_size
    fake_drive.starts.clear()
    resolve_checkpoint("official:s4_r50")
    assert fake_drive.starts == [kept, 0]  # resumed, refused, then again from byte 0
    assert "failed its checks" in capsys.readouterr().err
    raw = fake_drive.home / "downloads" / "SelM_S4_R50.pth"
    assert sha256_of(raw) == sha256_of(fake_drive.store.official("s4_r50"))


# --- the real gdown against a server on this machine ---


class Served:
    """What the local server sends: `data`; the next `drops` responses stop halfway through
    their body and close the connection; with `stall` set, a response sends half its body and
    then waits for the event. `requests` lists (request target, Range header)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.drops, self.stall = data, 0, None
        self.requests: list[tuple[str, str | None]] = []


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        served = self.server.served
        wanted = self.headers.get("Range")
        served.requests.append((self.path, wanted))
        start = int(re.fullmatch(r"bytes=(\d+)-", wanted)[1]) if wanted else 0
        body = served.data[start:]
        self.send_response(206 if wanted else 200)
        if wanted:
            self.send_header(
                "Content-Range", f"bytes {start}-{len(served.data) - 1}/{len(served.data)}"
            )
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        cut = served.drops > 0 or served.stall is not None
        self.wfile.write(body[: len(body) // 2] if cut else body)
        self.wfile.flush()
        if served.drops > 0:
            served.drops -= 1
        elif served.stall is not None:
            served.stall.wait(60)
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A 4 MiB PyTorch-looking file served over HTTP on 127.0.0.1; SELM_HOME in tmp_path; no
    proxy; the waits between attempts recorded, not slept."""
    data = b"PK\x03\x04" + os.urandom(4 * 2**20 - 4)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.served = Served(data)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    clear_proxies(monkeypatch)
    monkeypatch.setenv(cache.HOME_ENV, str(tmp_path / "selm-home"))
    monkeypatch.delenv(cache.OFFLINE_ENV, raising=False)
    waits = []
    monkeypatch.setattr(download, "_sleep", waits.append)
    host, port = httpd.server_address[:2]
    httpd.url, httpd.waits = f"http://{host}:{port}/weights.pth", waits
    yield httpd
    if httpd.served.stall is not None:
        httpd.served.stall.set()
    httpd.shutdown()
    httpd.server_close()


def _source(url: str) -> Source:
    return Source(name="weights.pth", what="weights.pth", url=url, page=url)


def _target() -> Path:
    return cache.downloads_dir() / "weights.pth"


def test_gdown_resumes_a_dropped_transfer_within_a_call(server):
    served = server.served
    served.drops = 1
    got = obtain(_source(server.url), (_target(),))
    assert got.path.read_bytes() == served.data and server.waits == []  # gdown's own retry
    half = len(served.data) // 2
    assert served.requests[0] == ("/weights.pth", None)
    (resumed_at,) = [int(r[6:-1]) for _, r in served.requests[1:]]  # "bytes=N-"
    assert 0 < resumed_at <= half  # from the bytes kept, not from zero
    assert read_records()["weights.pth"]["sha256"] == sha256_of(got.path)


def test_gdown_resumes_in_the_next_attempt_when_its_retries_ran_out(server, monkeypatch):
    monkeypatch.setattr(download, "GDOWN_RETRIES", 0)
    served = server.served
    served.drops = 1
    said = []
    got = obtain(_source(server.url), (_target(),), say=said.append)
    assert got.path.read_bytes() == served.data
    assert server.waits == [RETRY_DELAYS_S[0]]  # the first call gave up, the second finished
    assert served.requests[0] == ("/weights.pth", None)
    resumed_at = int(served.requests[-1][1][6:-1])  # "bytes=N-"
    assert 0 < resumed_at < len(served.data)
    assert f"resuming weights.pth after {resumed_at / 1e6:.0f} MB" in " ".join(said)


def _partial_bytes() -> int:
    return sum(p.stat().st_size for p in cache.partial_dir().glob("*/*") if p.is_file())


def test_a_killed_process_leaves_a_partial_file_the_next_one_resumes(server):
    """A process is killed (SIGKILL: nothing of it runs after) while the server is half way;
    the next process finds what it kept, asks for the rest only, and checks the whole."""
    served = server.served
    served.stall = threading.Event()
    script = (
        "import sys\n"
        "from selm.weights.cache import downloads_dir\n"
        "from selm.weights.download import Source, obtain\n"
        "url = sys.argv[1]\n"
        "obtain(Source(name='weights.pth', what='weights.pth', url=url, page=url),"
        " (downloads_dir() / 'weights.pth',))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    child = subprocess.Popen(
        [sys.executable, "-c", script, server.url],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    half = len(served.data) // 2
    deadline = time.monotonic() + 120
    try:
        while _partial_bytes() < half:  # gdown writes what it received as it comes
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline, "the child received nothing"
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait(30)
        child.stderr.close()
    assert not _target().exists() and _partial_bytes() == half
    served.stall.set()
    served.stall = None
    said = []
    got = obtain(_source(server.url), (_target(),), say=said.append)  # the next process
    assert got.path.read_bytes() == served.data
    assert served.requests[-1] == ("/weights.pth", f"bytes={half}-")
    assert f"resuming weights.pth after {half / 1e6:.0f} MB" in " ".join(said)
    assert _partial_bytes() == 0 and got.against is None  # the first copy, recorded now
    assert json.loads(cache.records_path().read_text())["weights.pth"]["size"] == len(served.data)


def test_the_real_gdown_goes_through_the_proxy_the_environment_names(
    server, proxy_only, monkeypatch
):
    """No direct way out (the host does not even resolve), HTTP_PROXY names the local server:
    the probe asks the proxy and gdown (requests) sends the request through it."""
    host, port = server.server_address[:2]
    monkeypatch.setenv("HTTP_PROXY", f"http://{host}:{port}")
    proxy_only.address = (host, port)
    url = "http://files.invalid/weights.pth"
    got = obtain(_source(url), (_target(),))
    assert got.path.read_bytes() == server.served.data
    assert proxy_only.tried == [(host, port)]  # the probe asked the proxy
    assert server.served.requests == [(url, None)]  # an absolute target: a proxy request
