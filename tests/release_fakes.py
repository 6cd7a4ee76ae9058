"""A fake Google Drive for the authors' releases: random-weight files in the six published layouts
(names and shapes from tests/data/official/*.tsv: `published`) and a random VGGish,
served by a monkeypatched `gdown.download` that keeps and resumes partial files as gdown does.
Nothing touches the network."""

from __future__ import annotations

import glob
import math
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import requests.utils
import torch

import selm.weights.cache as downloads
import selm.weights.download as download
import selm.weights.release as release
from selm.modeling.vggish import VGGish

LAYOUTS = Path(__file__).parent / "data" / "official"
_UNIFORM = torch.rand(1 << 23, generator=torch.Generator().manual_seed(0))  # 8M values
_WEIGHTS, _VECTORS = 0.04 * _UNIFORM - 0.02, 0.5 + _UNIFORM  # U(-0.02, 0.02), U(0.5, 1.5)

NAMES = list(release.REGISTRY)


# published name -> ours, written out by hand (independent of selm.weights.release_layout's rules)
SPOTS = {
    "r50": {
        "resnet.conv1.weight": "encoder.backbone.model.conv1.weight",
        "resnet.layer2.3.bn3.num_batches_tracked": "encoder.backbone.model.layer2.3.bn3.num_batches_tracked",
        "resnet.layer3_1.5.conv2.weight": "encoder.backbone.model.layer3.5.conv2.weight",
        "resnet.layer4_1.0.downsample.1.running_var": "encoder.backbone.model.layer4.0.downsample.1.running_var",
        "DAM_Fusion4.fusion.audio_visual_att.align_audio.f_key.0.weight": "encoder.dam.3.v2a_key.weight",
        "DAM_Fusion2.fusion.audio_visual_att.align_vis.query_conv2.0.bias": "encoder.dam.1.a2v_query2.bias",
        "DAM_Fusion1.gate.2.weight": "encoder.dam.0.gate.2.weight",
        "in_proj3.1.bias": "proj.2.1.bias",
        "BCSM.audio_encoder.2.layers.1.mamba_block.A_log": "bcsm.audio_encoder.2.layers.1.mamba_block.A_log",
        "BCSM.vis_linear.3.weight": "bcsm.vis_linear.3.weight",
        "audio_norm.weight": "encoder.audio_norm.weight",
    },
    "pvt": {
        "encoder_backbone.patch_embed1.proj.weight": "encoder.backbone.model.patch_embed.proj.weight",
        "encoder_backbone.patch_embed3.norm.bias": "encoder.backbone.model.stages.2.downsample.norm.bias",
        "encoder_backbone.block3.39.mlp.dwconv.dwconv.weight": "encoder.backbone.model.stages.2.blocks.39.mlp.dwconv.weight",
        "encoder_backbone.block1.2.attn.sr.weight": "encoder.backbone.model.stages.0.blocks.2.attn.sr.weight",
        "encoder_backbone.norm4.weight": "encoder.backbone.model.stages.3.norm.weight",
        "encoder_backbone.DAM_Fusion2.fusion.audio_visual_att.vis_out.0.bias": "encoder.dam.1.a2v_out.bias",
        "encoder_backbone.DAM_Fusion3.audio_out_conv.0.weight": "encoder.dam.2.audio_out_conv.weight",
        "tem_att.video_gated.3.0.weight": "bcsm.video_gated.3.0.weight",
        "in_proj1.0.weight": "proj.0.0.weight",
        "audio_proj.bias": "encoder.audio_proj.bias",
    },
    "both": {
        "decoder.layers.2.positional_embedding": "decoder.layers.2.positional_embedding",
        "decoder.layers.0.loadtoken.normk.weight": "decoder.layers.0.loadtoken.normk.weight",
        "decoder.cgattention3.tau": "decoder.cgattention3.tau",
        "decoder.fuses.1.fusion.4.bias": "decoder.fuses.1.fusion.4.bias",
        "decoder.proj.vis.1.0.weight": "decoder.proj.vis.1.0.weight",
        "decoder.proj.audio_linear.weight": "decoder.proj.audio_linear.weight",
    },
}


def shapes(setting: str, backbone: str) -> dict[str, tuple[int, ...]]:
    lines = (LAYOUTS / f"{setting}_selm_{backbone}.tsv").read_text().splitlines()
    count = int(lines[0].split(": ")[1].split()[0])  # "# official ...: 1078 tensors, ..."
    rows = [line.split("\t") for line in lines[1:]]
    assert len(rows) == count
    return {k: tuple(int(s) for s in v.strip("()").split(",") if s.strip()) for k, v in rows}


def published(setting: str, backbone: str) -> dict[str, torch.Tensor]:
    """A state dict with the published names and shapes. Values: views into a random pool at an
    offset per name (distinct per tensor, no copies): weights U(-0.02, 0.02), vectors (norms,
    biases, BatchNorm statistics) U(0.5, 1.5)."""
    state = {}
    for i, (key, shape) in enumerate(shapes(setting, backbone).items()):
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(i)
            continue
        pool, n = _WEIGHTS if len(shape) > 1 else _VECTORS, math.prod(shape)
        offset = zlib.crc32(key.encode()) % (len(pool) - n)
        state[key] = pool[offset : offset + n].view(shape)
    return state


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


QUOTA_PAGE = (
    b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title>"
    b"</head><body>Too many users have viewed or downloaded this file recently."
    b"</body></html>"
)


def gdown_part(output: Path) -> Path | None:
    """The partial file gdown keeps for `output` (its name, 8 random characters, `.part`)."""
    found = [
        p
        for p in output.parent.glob(glob.escape(output.name) + "*.part")
        if len(p.name) == len(output.name) + 8 + len(".part")
    ]
    return found[0] if found else None


def copy_range(src: Path, out: Path, start: int, count: int) -> None:
    """Append `count` bytes of `src` from byte `start` to `out`, a block at a time."""
    with open(src, "rb") as f, open(out, "ab") as dst:
        f.seek(start)
        while count > 0 and (block := f.read(min(count, 1 << 22))):
            dst.write(block)
            count -= len(block)


@dataclass
class FakeDrive:
    """What the fake served; `mode` changes how: "ok", "html" (Drive's quota page), "offline"
    (no network: the reachability probe fails), "refused" (reachable, but every request fails),
    "alter" (the right file with one byte changed), "swap:NAME" (serves NAME's file for every
    spec). `drops`: the next that many calls drop the connection halfway through what is left
    of the file, keeping what came (gdown's `.part`), then raise."""

    store: FileStore
    mode: str = "ok"
    drops: int = 0
    calls: list[str] = field(default_factory=list)
    starts: list[int | None] = field(default_factory=list)  # byte each call began at (None:
    # gdown found the file finished and skipped it)
    options: list[dict] = field(default_factory=list)  # resume, retries, timeout per call
    proxies: list[dict] = field(default_factory=list)  # what requests would use per call
    waits: list[float] = field(default_factory=list)  # the backoff between attempts
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

    def probe(self, url: str) -> str | None:
        return f"{urlparse(url).hostname} cannot be reached" if self.mode == "offline" else None

    def download(
        self, url=None, output=None, quiet=False, id=None, progress=None, resume=False, **kw
    ):
        self.calls.append(id or url)
        self.options.append(dict(kw, resume=resume))
        address = url or f"https://drive.google.com/uc?id={id}"
        self.proxies.append(requests.utils.get_environ_proxies(address))
        if self.mode in ("offline", "refused"):
            raise ConnectionError("[Errno -3] Temporary failure in name resolution")
        out = Path(output)
        if resume and out.is_file():  # gdown: "Skipping already downloaded file"
            self.starts.append(None)
            return output
        part = gdown_part(out) if resume else None
        if part is None:
            part = out.with_name(f"{out.name}{uuid.uuid4().hex[:8]}.part")
            part.write_bytes(b"")
        start = part.stat().st_size
        self.starts.append(start)
        if self.mode == "html" and id is not None:
            part.write_bytes(QUOTA_PAGE)
            part.rename(out)
            return output
        src = self.source(url, id)
        size = src.stat().st_size
        if self.drops:
            self.drops -= 1
            copy_range(src, part, start, (size - start) // 2)
            raise ConnectionResetError("Connection broken: IncompleteRead")
        copy_range(src, part, start, size - start)
        if self.mode == "alter" and id is not None:
            with open(part, "r+b") as f:
                f.seek(size // 2)
                byte = f.read(1)
                f.seek(size // 2)
                f.write(bytes([byte[0] ^ 0xFF]))
        if progress is not None:
            progress(size // 2, size)
            progress(size, size)
            self.progress.append(1.0)
        part.rename(out)
        return output


def install(monkeypatch, store: FileStore, home: Path, mode: str = "ok") -> FakeDrive:
    """Route every download to a FakeDrive, the cache to `home`, the reachability probe to the
    fake's mode and the waits between attempts to `fake.waits`."""
    import gdown

    fake = FakeDrive(store, mode, home=home)
    monkeypatch.setenv(downloads.HOME_ENV, str(home))
    monkeypatch.delenv(downloads.OFFLINE_ENV, raising=False)
    monkeypatch.setattr(gdown, "download", fake.download)
    monkeypatch.setattr(download, "network_problem", fake.probe)
    monkeypatch.setattr(download, "_sleep", fake.waits.append)
    digest = downloads.sha256_of(store.vggish())
    monkeypatch.setattr(release, "VGGISH_SHA256_PREFIX", digest[:8])
    return fake


PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


def clear_proxies(monkeypatch) -> None:
    """No proxy settings in the environment, either case, for the test."""
    for name in PROXY_VARIABLES:
        for variant in (name, name.lower()):
            monkeypatch.setenv(variant, "")  # recorded, so the old value comes back
            monkeypatch.delenv(variant)


def cache_files(home: Path) -> list[str]:
    """Every file under the cache, relative, sorted (to see what a failure left behind); the
    download locks (empty files in downloads/.partial/ that stay) are left out."""
    if not home.exists():
        return []
    return sorted(
        str(p.relative_to(home))
        for p in home.rglob("*")
        if p.is_file() and not (p.parent.name == ".partial" and p.suffix == ".lock")
    )


def stub_conversion(monkeypatch) -> list[dict]:
    """release._convert_into records what it was given (the model card's source, the number
    of tensors, setting and backbone) instead of converting: for tests about which file is
    used, not the conversion."""
    seen = []

    def convert(folder, state, setting, backbone, source, progress, say):
        seen.append(dict(source, tensors=len(state), setting=setting, backbone=backbone))
        return folder

    monkeypatch.setattr(release, "_convert_into", convert)
    return seen
