"""The default difficulty of AVS-Synth stays byte-identical for a fixed seed: a hash of a small
set, recorded before the `hard` difficulty was added (issue 10)."""

import hashlib
from pathlib import Path

from train.synth import generate

# sha256 over (relative path, NUL, bytes) of every file, in sorted path order, computed from
# the generator at commit b19462d (before --difficulty existed) with the arguments below.
DEFAULT_SET_SHA256 = "21499a40025f2643e4be5a00f7f2d623b08901596de8feae5e674f6d2491c1d0"


def _tree_sha256(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(b"\0")
            h.update(p.read_bytes())
    return h.hexdigest()


def test_default_difficulty_is_byte_identical_to_before_hard_existed(tmp_path):
    out = generate(
        tmp_path / "set",
        seed=7,
        size=32,
        layouts=("s4", "ms3", "avss"),
        sizes={"train": 2, "val": 1, "test": 2},
        counterfactuals=True,
        workers=1,
        progress=False,
    )
    assert _tree_sha256(Path(out)) == DEFAULT_SET_SHA256
