"""Fixtures for the demo's tests: synthetic clips, a fake SelM, a tiny real checkpoint, a server.

The fake model runs under the real `Predictor`, so the tests exercise the real reading, windowing
and rendering code. It segments what is bright, and only while there is sound: a pixel's logit is
20 * (brightness - 0.5) when the second's log-mel rises above silence (log 0.01), -8 otherwise.
The test clip shows a white rectangle (brightness 1: p ~ 1) and a grey one (brightness 0.59:
p ~ 0.85) on a dark background (0.2: p ~ 0.002), so thresholds 0.5 and 0.95 give known masks.
"""

from __future__ import annotations

import importlib.util
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from app_process import wait_until_serving

from selm.config import get_config
from selm.inference.predictor import Predictor
from selm.media.writer import open_writer
from selm.transforms.frames import IMAGENET_MEAN, IMAGENET_STD

ROOT = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 96, 64
WHITE_BOX = (slice(8, 40), slice(8, 40))  # rows, columns: 32 x 32 = 1/6 of the frame
GREY_BOX = (slice(16, 48), slice(56, 88))  # 32 x 32, brightness 150/255 = 0.59
SILENCE = math.log(0.01)  # log-mel of a zero signal (selm.transforms.log_mel.LOG_OFFSET)


def write_clip(
    path: Path,
    *,
    seconds: float = 3.0,
    fps: int = 8,
    size=(WIDTH, HEIGHT),
    audio: str | None = "tone",
    grey: bool = True,
) -> Path:
    """An mp4: dark background, a white box, optionally a grey box; a 440 Hz tone, silence or no
    audio track (audio=None)."""
    width, height = size
    frame = np.full((height, width, 3), 51, np.uint8)
    frame[WHITE_BOX] = 255
    if grey:
        frame[GREY_BOX] = 150
    rate = 16000 if audio is not None else None
    with open_writer(path, size=(width, height), fps=fps, sample_rate=rate) as out:
        if audio is not None:
            t = np.arange(round(seconds * 16000)) / 16000
            wave = 0.3 * np.sin(2 * np.pi * 440 * t) if audio == "tone" else np.zeros_like(t)
            out.write_audio(wave.astype(np.float32))
        for _ in range(round(seconds * fps)):
            out.write_frame(frame)
    return path


def reference_masks(threshold: float) -> np.ndarray:
    """(H, W) bool: what the fake model should segment at `threshold` on the test clip."""
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[WHITE_BOX] = True
    if threshold < 0.85:
        mask[GREY_BOX] = True
    return mask


class FakeSelM(torch.nn.Module):
    """SelM's forward contract with a transparent rule (see the module docstring).

    listens=False ignores the audio: a model with a full auditory illusion.
    """

    def __init__(self, *, listens: bool = True, input_size: int = 64) -> None:
        super().__init__()
        self.config = get_config("selm_tiny", input_size=input_size)
        self.listens = listens
        self.calls = 0

    def forward(self, frames, audio, frame_mask=None, return_maps=False):
        self.calls += 1
        mean = torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1)
        bright = (frames * std + mean).mean(2, keepdim=True)  # (B, T, 1, S, S)
        sounding = audio.flatten(2).amax(-1) > SILENCE + 1.0  # (B, T)
        if not self.listens:
            sounding = torch.ones_like(sounding)
        logits = torch.where(
            sounding[..., None, None, None], 20 * (bright - 0.5), torch.full_like(bright, -8.0)
        )
        b, t, _, s, _ = frames.shape

        def pooled(stride):  # (B, T, s / stride, s / stride)
            return F.avg_pool2d(bright.flatten(0, 1), stride).unflatten(0, (b, t))[:, :, 0]

        hits = [torch.stack([pooled(k), 1 - pooled(k)], 2) for k in (16, 8, 4)]
        levels = [pooled(k) for k in (4, 8, 16, 32)]
        bcsm = [
            {
                "norm_before": m,
                "norm_after": m * sounding[..., None, None],
                "gate_audio": None,
                "gate_video": None,
            }
            for m in levels
        ]
        return SimpleNamespace(logits=logits, hit_maps=hits, dam_maps=levels, bcsm=bcsm)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """Clips shared by the tests (never modified): tone, silent track, no audio track."""
    root = tmp_path_factory.mktemp("media")
    write_clip(root / "tone.mp4")
    write_clip(root / "silent.mp4", audio="silence")
    write_clip(root / "no_audio.mp4", audio=None)
    write_clip(root / "seven_seconds.mp4", seconds=7.0, fps=4)
    return root


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """This file's helpers for the test modules: `from conftest import ...` would be ambiguous,
    since other test folders have a conftest.py too."""
    return SimpleNamespace(
        write_clip=write_clip,
        reference_masks=reference_masks,
        FakeSelM=FakeSelM,
        width=WIDTH,
        height=HEIGHT,
    )


@pytest.fixture(scope="session")
def app_main():
    """The launcher `app.py`, loaded from its file (`import app` finds the package)."""
    spec = importlib.util.spec_from_file_location("selm_demo_main", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_predictor() -> Predictor:
    return Predictor(FakeSelM())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> list[Path]:
    """Two real selm_tiny checkpoints at input 64 (random weights, different seeds)."""
    from selm.build import build_selm
    from selm.weights.checkpoint import save_pretrained

    root = tmp_path_factory.mktemp("checkpoints")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(
            save_pretrained(build_selm("selm_tiny", input_size=64), root / f"selm-tiny-{seed}")
        )
    return paths


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory, tiny_checkpoints):
    """`python app.py` in a subprocess on a free port with the tiny checkpoints and one 5 s
    example -> (url, examples dir). Stopped (by its own pid) when the session ends."""
    examples = tmp_path_factory.mktemp("examples")
    write_clip(examples / "boxes.mp4", seconds=5.0)
    write_clip(examples / "tones.mp4", seconds=5.0, grey=False)
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "MPLBACKEND": "Agg",
        "GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("gradio")),
    }
    env.pop("SPACE_ID", None)
    log = open(tmp_path_factory.mktemp("logs") / "app.log", "w+")  # noqa: SIM115
    cache = tmp_path_factory.mktemp("app-cache") / "cache"
    cmd = [sys.executable, "app.py", "--port", str(port), "--examples-dir", str(examples)]
    cmd += ["--cache-dir", str(cache), "--max-upload-mb", "2"]
    for path in tiny_checkpoints:
        cmd += ["--checkpoint", str(path)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(proc, url, log, 180)
        yield SimpleNamespace(
            url=url,
            examples=examples,
            startup=time.perf_counter() - started,
            log=log,
            cache=cache,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
