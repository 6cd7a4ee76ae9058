"""The selm cache (selm.weights.cache): every cached file checked as a fresh one, against the
digest recorded for its first good copy (a tampered file is refused with both digests and what
to do); the network probe goes where requests would go, the proxy the environment names
included; offline flags fail at once; one download per file at a time."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from release_fakes import cache_files

import selm.weights.cache as cache
import selm.weights.download as download
import selm.weights.release as release
from selm.weights.cache import (
    locked,
    network_problem,
    read_records,
    records_path,
    remember,
    request_proxy,
    sha256_of,
)
from selm.weights.download import Source, obtain
from selm.weights.pretrained import VGGISH_URL
from selm.weights.release import REGISTRY, ReleaseError
from selm.weights.resolve import resolve_checkpoint

# --- integrity: what was recorded, and a tampered file ---


def _tamper(path):
    with open(path, "r+b") as f:  # one byte in the middle: still a zip, another digest
        f.seek(path.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_a_tampered_cached_file_is_refused_with_both_digests(fake_drive, conversions):
    resolve_checkpoint("official:s4_r50")  # the first good download: recorded
    raw = fake_drive.home / "downloads" / "SelM_S4_R50.pth"
    good = sha256_of(raw)
    assert conversions[-1]["sha256_checked_against"] == "nothing yet (recorded now)"
    resolve_checkpoint("official:s4_r50")  # again, untouched: checked against the record
    assert conversions[-1]["sha256_checked_against"] == "recorded"
    _tamper(raw)
    bad = sha256_of(raw)
    with pytest.raises(ReleaseError) as err:
        resolve_checkpoint("official:s4_r50")
    text = str(err.value)
    assert f"{raw} has sha256 {bad}, expected {good}" in text
    assert f"recorded for its first good copy in {raw.parent / 'checksums.json'}" in text
    assert f"Delete {raw} and run the same command again" in text
    assert "\n" not in text and len(conversions) == 2
    assert raw.exists() and len(fake_drive.calls) == 1  # refused: kept for the user, not fetched
    raw.unlink()  # what the message says to do
    resolve_checkpoint("official:s4_r50")
    assert sha256_of(raw) == good and len(fake_drive.calls) == 2


def test_a_cached_vggish_is_checked_against_its_published_prefix(fake_drive, conversions):
    downloads = fake_drive.home / "downloads"
    downloads.mkdir(parents=True)
    vggish = downloads / "vggish-10086976.pth"
    vggish.write_bytes(fake_drive.store.vggish().read_bytes())
    _tamper(vggish)
    with pytest.raises(ReleaseError, match="VGGish's weights: .* has sha256 ") as err:
        release.vggish_file()
    prefix = release.VGGISH_SHA256_PREFIX
    assert f"expected {prefix}... (the published digest)" in str(err.value)
    assert f"Delete {vggish}" in str(err.value) and fake_drive.calls == []
    vggish.unlink()
    assert release.vggish_file() == vggish and fake_drive.calls == [VGGISH_URL]


def test_a_good_vggish_put_by_hand_is_used_and_recorded(fake_drive):
    vggish = fake_drive.home / "downloads" / "vggish-10086976.pth"
    vggish.parent.mkdir(parents=True)
    vggish.write_bytes(fake_drive.store.vggish().read_bytes())
    assert release.vggish_file() == vggish and fake_drive.calls == []
    record = read_records()["vggish-10086976.pth"]
    assert record == dict(record, sha256=sha256_of(vggish), source=str(vggish))


def test_a_download_that_differs_from_the_recorded_one_is_refused(fake_drive, conversions):
    resolve_checkpoint("official:s4_r50")
    raw = fake_drive.home / "downloads" / "SelM_S4_R50.pth"
    good = sha256_of(raw)
    raw.unlink()  # downloads/ may be deleted; the record stays
    fake_drive.mode = "alter"
    with pytest.raises(ReleaseError, match="the downloaded SelM_S4_R50.pth has sha256 ") as err:
        resolve_checkpoint("official:s4_r50")
    assert f"expected {good} (recorded for its first good copy" in str(err.value)
    assert "nothing was kept" in str(err.value)
    assert not raw.exists() and not list((raw.parent / ".partial").glob("*/*"))


def test_records_are_written_once_atomically_and_survive_a_bad_file(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.HOME_ENV, str(tmp_path))
    assert read_records() == {}
    assert remember("a.pth", sha256="1" * 64, size=3, source="https://x/a.pth") is True
    assert remember("a.pth", sha256="2" * 64, size=4, source="elsewhere") is False  # first wins
    assert remember("b.pth", sha256="3" * 64, size=5, source="by hand") is True
    records = json.loads(records_path().read_text())
    assert records["a.pth"]["sha256"] == "1" * 64 and records["a.pth"]["size"] == 3
    assert set(records) == {"a.pth", "b.pth"} and "first_seen" in records["b.pth"]
    assert [p.name for p in records_path().parent.iterdir() if p.is_file()] == ["checksums.json"]
    records_path().write_text("{not json")  # a damaged record file reads as empty
    assert read_records() == {} and cache.recorded("a.pth") is None


# --- the network: the probe goes where requests would go ---


def test_behind_a_proxy_the_download_is_attempted(fake_drive, conversions, proxy_only, monkeypatch):
    """No direct egress: drive.google.com:443 refuses, the proxy the environment names
    accepts. The probe asks the proxy, so the download runs (through it, as requests reads
    the same variables)."""
    monkeypatch.setattr(download, "network_problem", network_problem)  # the real probe
    with pytest.raises(ConnectionRefusedError):  # the direct way is closed
        socket.create_connection(("drive.google.com", 443), timeout=1)
    proxy_only.tried.clear()
    model = REGISTRY["s4_r50"]
    resolve_checkpoint(model.spec)
    assert fake_drive.calls == [model.drive_id]
    assert fake_drive.proxies[0]["https"] == proxy_only.proxy
    assert proxy_only.tried == [proxy_only.address]  # the proxy was probed, not Drive
    assert conversions and conversions[0]["spec"] == model.spec


def test_no_proxy_for_the_host_means_a_direct_probe(fake_drive, proxy_only, monkeypatch):
    monkeypatch.setattr(download, "network_problem", network_problem)
    monkeypatch.setenv("NO_PROXY", "localhost,.google.com")
    assert request_proxy("https://drive.google.com/uc?id=x") is None
    assert request_proxy(VGGISH_URL) == proxy_only.proxy
    with pytest.raises(ReleaseError, match=r"drive\.google\.com cannot be reached \(Connection"):
        resolve_checkpoint("official:s4_r50")
    assert proxy_only.tried == [("drive.google.com", 443)] and fake_drive.calls == []


def test_an_unreachable_proxy_is_named(fake_drive, proxy_only, monkeypatch):
    monkeypatch.setattr(download, "network_problem", network_problem)
    monkeypatch.setenv("HTTPS_PROXY", "proxy.invalid:3128")  # no scheme: requests reads http
    problem = network_problem("https://drive.google.com/uc?id=x")
    assert problem.startswith(
        "the proxy proxy.invalid:3128 that the environment names for drive.google.com cannot "
        "be reached (Connection refused): check HTTPS_PROXY"
    )
    assert proxy_only.tried == [("proxy.invalid", 3128)]


def test_offline_flags_fail_at_once_without_a_connection(fake_drive, proxy_only, monkeypatch):
    monkeypatch.setattr(download, "network_problem", network_problem)
    monkeypatch.setenv(cache.OFFLINE_ENV, "1")
    with pytest.raises(ReleaseError, match="SELM_OFFLINE is set, so SelM_S4_R50.pth"):
        resolve_checkpoint("official:s4_r50")
    assert proxy_only.tried == [] and fake_drive.calls == []


# --- one download per file at a time ---


def test_a_second_caller_waits_for_the_first_and_uses_its_file(fake_drive, monkeypatch):
    """Two callers (threads here; processes alike: the lock is the system's) want the same
    file: one downloads, the other waits, then checks the file in place and uses it."""
    import gdown

    started, go_on = threading.Event(), threading.Event()

    def slow(*args, **kwargs):
        started.set()
        assert go_on.wait(30)
        return fake_drive.download(*args, **kwargs)

    monkeypatch.setattr(gdown, "download", slow)
    said, results = [], []
    source = Source(name="vggish-10086976.pth", what="VGGish", url=VGGISH_URL, page=VGGISH_URL)
    place = (cache.downloads_dir() / "vggish-10086976.pth",)

    def caller():
        results.append(obtain(source, place, say=said.append))

    first, second = threading.Thread(target=caller), threading.Thread(target=caller)
    first.start()
    assert started.wait(30)
    second.start()
    deadline = time.monotonic() + 30
    while "another process is fetching VGGish; waiting for it" not in said:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    go_on.set()
    first.join(30)
    second.join(30)
    assert fake_drive.calls == [VGGISH_URL]  # one download
    assert [r.path for r in results] == list(place) * 2
    assert results[1].against == "recorded"  # the waiter checked the file against its record
    assert cache_files(fake_drive.home) == [
        "downloads/checksums.json",
        "downloads/vggish-10086976.pth",
    ]


def test_locks_exclude_and_are_released(tmp_path):
    path = tmp_path / "x.lock"
    with locked(path):
        import fcntl

        with open(path, "ab") as other:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(path, "ab") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
