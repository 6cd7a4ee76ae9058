"""A fake Google Drive for the authors' releases: random-weight files in the six published layouts
(names and shapes from tests/data/official/*.tsv, via test_convert.published) and a random VGGish,
served by a monkeypatched `gdown.download`. Nothing touches the network."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent / "selm"))
from test_convert import published  # noqa: E402  (the layouts' random-weight helper)

import selm.downloads as downloads  # noqa: E402
import selm.official_release as release  # noqa: E402
from selm.modeling.vggish import VGGish  # noqa: E402

NAMES = list(release.REGISTRY)


class FileStore:
    """The files the fake Drive serves, written once per test session (they are large)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def official(self, name: str) -> Path:
        path = self.root / f"{name}.pth"
        if not path.exists():
            setting, backbone = name.split("_")
            state = {k: v.clone() for k, v in published(setting, backbone).items()}
            torch.save(state, path)  # own storage per tensor, as a real state dict
        return path

    def vggish(self) -> Path:
        path = self.root / "vggish.pth"
        if not path.exists():
            with torch.device("meta"):
                shapes = {k: v.shape for k, v in VGGish("official").state_dict().items()}
            gen = torch.Generator().manual_seed(1)
            state = {
                k: torch.empty(s).uniform_(-0.01, 0.01, generator=gen) for k, s in shapes.items()
            }
            torch.save(state, path)
        return path


@dataclass
class FakeDrive:
    """What the fake served; `mode` changes how: "ok", "die" (half the bytes, then a dropped
    connection), "html" (Drive's quota page), "offline" (no network), "refused" (reachable, but
    the request fails), "swap:NAME" (serves
    NAME's file for every spec)."""

    store: FileStore
    mode: str = "ok"
    calls: list[str] = field(default_factory=list)
    progress: list[float] = field(default_factory=list)
    home: Path | None = None

    def source(self, url: str | None, drive_id: str | None) -> Path:
        if drive_id is None:
            assert url == release.VGGISH_URL, url
            return self.store.vggish()
        name = next(n for n, m in release.REGISTRY.items() if m.drive_id == drive_id)
        if self.mode.startswith("swap:"):
            name = self.mode.split(":", 1)[1]
        return self.store.official(name)

    def download(self, url=None, output=None, quiet=False, id=None, progress=None, **kw):
        self.calls.append(id or url)
        if self.mode in ("offline", "refused"):
            raise ConnectionError("[Errno -3] Temporary failure in name resolution")
        if self.mode == "html" and id is not None:
            Path(output).write_bytes(
                b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title>"
                b"</head><body>Too many users have viewed or downloaded this file recently."
                b"</body></html>"
            )
            return output
        src = self.source(url, id)
        size = src.stat().st_size
        if self.mode == "die" and id is not None:
            with open(src, "rb") as f, open(output, "wb") as out:
                out.write(f.read(size // 2))
            raise ConnectionResetError("Connection broken: IncompleteRead")
        shutil.copyfile(src, output)
        if progress is not None:
            progress(size // 2, size)
            progress(size, size)
            self.progress.append(1.0)
        return output


def install(monkeypatch, store: FileStore, home: Path, mode: str = "ok") -> FakeDrive:
    """Route every download to a FakeDrive and the cache to `home`."""
    import gdown

    fake = FakeDrive(store, mode, home=home)
    monkeypatch.setenv(downloads.HOME_ENV, str(home))
    monkeypatch.delenv(downloads.OFFLINE_ENV, raising=False)
    monkeypatch.setattr(gdown, "download", fake.download)
    monkeypatch.setattr(downloads, "reachable", lambda url: fake.mode != "offline")
    digest = downloads.sha256_of(store.vggish())
    monkeypatch.setattr(release, "VGGISH_SHA256_PREFIX", digest[:8])
    return fake


def cache_files(home: Path) -> list[str]:
    """Every file under the cache, relative, sorted (to see what a failure left behind)."""
    if not home.exists():
        return []
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
