"""What the inference and drawing code wrote before the package tree was redrawn, as hashes, and
the helpers that compare today's outputs with them (tests/data/golden_outputs.json).

Bytes are only comparable on the toolchain that recorded them (torch, PyAV's FFmpeg and x264,
OpenCV, numpy) and on the same kind of processor (the model's float results, and so a pixel at
the threshold, depend on the CPU's oneMKL / oneDNN kernels): elsewhere the comparison is skipped
with what differs. Recorded from
selm-hard on the bundled examples and on `long_video` (three windows of T = 5 s).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORD = Path(__file__).resolve().parent / "data" / "golden_outputs.json"
CHECKPOINT = ROOT / "assets" / "checkpoints" / "selm-hard"
EXAMPLES = ROOT / "assets" / "examples"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def processor() -> str:
    """The CPU's model name and the instruction sets that choose torch's float kernels."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    name = fields.get("model name", "unknown")
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return f"{name} ({' '.join(isa)})"


def toolchain() -> dict[str, str]:
    import av
    import cv2
    import torch

    return {
        "torch": torch.__version__,
        "av": av.__version__,
        "cv2": cv2.__version__,
        "numpy": np.__version__,
        "ffmpeg": str(av.library_versions.get("libavcodec")),
        "cpu": processor(),
    }


def expected(key: str):
    """The recorded value of `key`; skips the test on another toolchain."""
    record = json.loads(RECORD.read_text())
    differ = {k: v for k, v in toolchain().items() if record["versions"].get(k) != v}
    if differ:
        pytest.skip(f"recorded with {record['versions']}; here {differ}: bytes not comparable")
    return record[key]


def long_video(path: Path) -> Path:
    """12 s at 8 fps, 96 x 64, a yellow box moving over a brightening background; a 440 Hz tone
    in seconds 1, 2, 4, 5, 7, 8, 10, 11 (silent every third second)."""
    from selm.media.writer import open_writer

    width, height, fps, seconds = 96, 64, 8, 12
    with open_writer(path, size=(width, height), fps=fps, sample_rate=44100) as out:
        t = np.arange(seconds * 44100) / 44100
        out.write_audio(0.5 * np.sin(2 * np.pi * 440 * t) * (np.floor(t) % 3 != 0))
        for i in range(seconds * fps):
            image = np.full((height, width, 3), 10 + 8 * (i // fps), np.uint8)
            x = (4 + 3 * i) % (width - 24)
            image[16:40, x : x + 24] = (240, 200, 40)
            out.write_frame(image)
    return path
