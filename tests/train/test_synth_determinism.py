"""A seed's AVS-Synth set is the same benchmark on every x86-64 machine.

What varies between processors, measured by generating the set below under every CPU dispatch
path one machine offers (NumPy's SIMD targets from baseline to AVX-512, OpenBLAS kernels from
Nehalem to SkylakeX, ATen's default / AVX2 / AVX-512 kernels, oneDNN capped at SSE4.1, and
oneMKL's conditional reproducibility mode): only the log-mel pickles changed, by at most 5e-7.
They hold torch's float32 STFT and mel matmul, which run through oneMKL, whose kernels (and so
their rounding) depend on the processor; an Intel Xeon with AVX-512 takes other oneMKL paths
than an AMD EPYC. Frames, masks, wavs and metadata were byte-identical under all of them.

So this test pins:
- exactly, every decision: metadata.json (categories, positions, sounding seconds, SNRs, swap
  partners), the CSV tables, every GT mask (raw pixels), and that each counterfactual version
  shows its clip's very frames;
- within stated tolerances, the signals: frames and wavs against a recorded fingerprint (a
  per-channel sum and random +-1 projections: a difference of one grey level on one pixel, or
  one PCM step on one sample, moves each number by at most 1; the tolerances allow a few such
  flips, a changed generator moves them by thousands), and every log-mel pickle against a
  float64 log-mel of its own wav (the wav is pinned, so the pickle is too);
- and the same again for a set generated in a child process on the lowest dispatch path this
  machine has, so a path that diverges shows up on any machine.

Images are stored as mode, size, palette and raw pixels (`Image.save` replaced), since zlib's
and libjpeg's compressed bytes are not what the generator decides.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image
from references import reference_log_mel

from train.data.files import load_log_mel

REPO = Path(__file__).resolve().parents[2]
FINGERPRINT_FILE = REPO / "tests" / "data" / "synth_default_fingerprint.json"
GENERATE_ARGS = dict(  # the set: seed 7, 32 px, every layout, counterfactuals, default difficulty
    seed=7,
    size=32,
    layouts=("s4", "ms3", "avss"),
    sizes={"train": 2, "val": 1, "test": 2},
    counterfactuals=True,
    workers=1,
    progress=False,
)
PROJECTIONS = 8  # random +-1 projections per image channel / per wav
PIXEL_TOLERANCE = 4.0  # grey levels, summed over the image: ~4 one-level flips
SAMPLE_TOLERANCE = 8.0  # PCM steps, summed over the wav: ~8 one-step flips
LOG_MEL_TOLERANCE = 1e-3  # max |pickle - float64 log-mel of the wav| (measured: < 2e-5)
DECISIONS_SHA256 = "b10c64e8fe8f412aa37ae2d67338590e26a8e206fa4ade20f6e27be435f6dde8"


def _raw_save(image: Image.Image, fp, *args, **kwargs) -> None:
    """Image.save replaced: mode, size, palette and pixels, no codec."""
    palette = image.getpalette() if image.mode == "P" else None
    header = f"{image.mode} {image.size} {palette}\n".encode()
    Path(fp).write_bytes(header + image.tobytes())


def _raw_pixels(path: Path) -> np.ndarray:
    data = path.read_bytes()
    return np.frombuffer(data[data.index(b"\n") + 1 :], dtype=np.uint8)


def _generate_here(out: Path) -> Path:
    from train.synth import generate

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Image.Image, "save", _raw_save)
        return Path(generate(out, **GENERATE_ARGS))


_CHILD = """
import sys
from PIL import Image
sys.path.insert(0, {test_dir!r})
import test_synth_determinism as t
Image.Image.save = t._raw_save
from train.synth import generate
generate({out!r}, **t.GENERATE_ARGS)
"""


def lowest_dispatch_env() -> dict[str, str]:
    """Environment variables that put NumPy, OpenBLAS, ATen, oneDNN and oneMKL on their most
    basic x86-64 code paths (each library reads its variable at import)."""
    env = {
        "ATEN_CPU_CAPABILITY": "default",
        "OPENBLAS_CORETYPE": "Nehalem",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "MKL_CBWR": "COMPATIBLE",
    }
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # another NumPy layout: leave its dispatch alone
        return env
    targets = [t for t in __cpu_dispatch__ if __cpu_features__.get(t)]
    if targets:
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(targets)
    return env


def _generate_in_child(out: Path, env: dict[str, str]) -> Path:
    code = _CHILD.format(test_dir=str(Path(__file__).parent), out=str(out))
    child_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=child_env, check=True, timeout=300)
    return out


# --- what the set holds -------------------------------------------------------------------
def _kind(rel: str) -> str:
    if rel.endswith((".json", ".csv")):
        return "table"
    if "/gt_masks/" in rel or "/labels_rgb/" in rel:
        return "mask"
    if "/visual_frames/" in rel or "/frames/" in rel:
        return "frame"
    return {".wav": "wav", ".pkl": "pkl"}[Path(rel).suffix]


def _files(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): _kind(p.relative_to(root).as_posix())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def decisions_sha256(root: Path) -> str:
    """sha256 over (path, NUL, bytes) of every table and mask, and of every file's path."""
    h = hashlib.sha256()
    for rel, kind in _files(root).items():
        h.update(rel.encode() + b"\0")
        if kind in ("table", "mask"):
            h.update((root / rel).read_bytes())
    return h.hexdigest()


def _signs(n: int, k: int) -> np.ndarray:
    """(k, n) fixed random +-1 vectors."""
    return np.random.default_rng(n).choice([-1.0, 1.0], size=(k, n))


def fingerprint(root: Path) -> dict[str, list[float]]:
    """Per frame (outside the counterfactual copies) and per wav: the channel sums and
    PROJECTIONS random +-1 projections of the raw values."""
    out = {}
    for rel, kind in _files(root).items():
        if kind == "frame" and not rel.startswith("counterfactual/"):
            pixels = _raw_pixels(root / rel).astype(np.float64).reshape(-1, 3).T  # (3, H*W)
            signs = _signs(pixels.shape[1], PROJECTIONS)
            out[rel] = [*pixels.sum(1), *(pixels @ signs.T).ravel()]
        elif kind == "wav":
            pcm, _ = soundfile.read(root / rel, dtype="int16")
            pcm = pcm.astype(np.float64)
            out[rel] = [pcm.sum(), *(_signs(pcm.size, PROJECTIONS) @ pcm)]
    return out


# --- the checks ---------------------------------------------------------------------------
def check_set(root: Path) -> None:
    assert decisions_sha256(root) == DECISIONS_SHA256, "a decision of the generator changed"
    files = _files(root)
    for rel, kind in files.items():  # counterfactual versions show their clip's frames
        if kind == "frame" and rel.startswith("counterfactual/"):
            original = rel.split("/", 2)[2]
            assert (root / rel).read_bytes() == (root / original).read_bytes(), rel
    recorded = json.loads(FINGERPRINT_FILE.read_text())
    now = fingerprint(root)
    assert sorted(now) == sorted(recorded)
    for rel, values in now.items():
        tolerance = PIXEL_TOLERANCE if files[rel] == "frame" else SAMPLE_TOLERANCE
        diff = np.abs(np.asarray(values) - np.asarray(recorded[rel])).max()
        assert diff <= tolerance, f"{rel}: fingerprint moved by {diff}"
    for rel, kind in files.items():
        if kind == "pkl":
            _check_log_mel(root, rel)


def _check_log_mel(root: Path, rel: str) -> None:
    """The pickle is VGGish's log-mel of the clip's own wav (one 0.96-s example a second)."""
    wav = rel.replace("/audio_log_mel/", "/audio_wav/").replace(".pkl", ".wav")
    wave, rate = soundfile.read(root / wav, dtype="float32")
    assert rate == 16000
    examples = load_log_mel(root / rel).numpy()  # (T, 1, 96, 64)
    for i, example in enumerate(examples[:, 0]):
        ref = reference_log_mel(wave[i * 15360 : i * 15360 + 15600])[:96]
        if ref.shape[0] < 96:  # the clip ends inside this example: padded by the loader's rule
            continue
        diff = np.abs(example - ref).max()
        assert diff <= LOG_MEL_TOLERANCE, f"{rel} example {i}: {diff}"


@pytest.fixture(scope="module")
def native_set(tmp_path_factory) -> Path:
    return _generate_here(tmp_path_factory.mktemp("synth") / "set")


def test_the_set_is_the_recorded_benchmark(native_set):
    check_set(native_set)


def test_the_lowest_dispatch_path_gives_the_same_benchmark(tmp_path, native_set):
    child = _generate_in_child(tmp_path / "set", lowest_dispatch_env())
    check_set(child)
    assert decisions_sha256(child) == decisions_sha256(native_set)


@pytest.mark.parametrize(
    "kind, message", [("frame", "fingerprint moved"), ("mask", "a decision"), ("wav", "moved")]
)
def test_the_check_can_fail(native_set, tmp_path, kind, message):
    """36 values of one train-split file changed (a frame's pixels by 3 grey levels, a wav's
    samples by 768 PCM steps, a mask's pixels flipped) fail the check."""
    import shutil

    copy = tmp_path / "set"
    shutil.copytree(native_set, copy)
    rel = next(r for r, k in _files(copy).items() if k == kind and "train" in r)
    data = bytearray((copy / rel).read_bytes())
    start = data.index(b"\n") + 1 if kind != "wav" else 44 + 2 * 8000  # past the header
    step = 2 if kind == "wav" else 1  # 16-bit samples: lower the high byte
    for offset in range(start + step - 1, start + step * 36, step):
        data[offset] = max(0, data[offset] - 3) if kind != "mask" else data[offset] ^ 1
    (copy / rel).write_bytes(bytes(data))
    with pytest.raises(AssertionError, match=message):
        check_set(copy)


if __name__ == "__main__":  # record the fingerprint and print the decisions' hash
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        root = _generate_here(Path(work) / "set")
        rows = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in fingerprint(root).items()]
        FINGERPRINT_FILE.write_text("{\n" + ",\n".join(rows) + "\n}\n")
        print(decisions_sha256(root))
