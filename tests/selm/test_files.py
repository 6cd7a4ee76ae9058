"""selm.files: a writer's temporary is locked while it lives, so that cleaning a folder removes
what killed writers left and never what a live one is writing; a full disk is recognised in
the errors of libraries that hide the errno (safetensors)."""

import os
import signal
import subprocess
import sys

import pytest
import torch
from safetensors import SafetensorError

from selm.files import DiskFullError, atomic_path, held, is_temporary, remove_stale_temporaries

# what a process killed while writing leaves: a temporary that nobody holds
HOLD = """
import sys, time
from selm.files import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half")
    print(tmp, flush=True)
    time.sleep(60)
"""


def writer(target):
    """A process in the middle of writing `target` -> (process, its temporary)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(target)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    tmp = proc.stdout.readline().strip()
    assert tmp, "the writer did not start"
    return proc, tmp


def test_a_live_writers_temporary_stays_and_a_killed_ones_goes(tmp_path):
    proc, tmp = writer(tmp_path / "overlay.mp4")
    try:
        assert is_temporary(tmp) and held(tmp)
        assert remove_stale_temporaries(tmp_path) == []  # the writer runs: kept
        assert os.path.exists(tmp)
        with atomic_path(tmp_path / "mine.json") as own:  # this process's own, too
            own.write_text("{}")
            assert held(own) and remove_stale_temporaries(tmp_path) == []
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert os.path.exists(tmp) and not held(tmp)  # SIGKILL: the lock went, the file stayed
    assert [p.name for p in remove_stale_temporaries(tmp_path)] == [os.path.basename(tmp)]
    assert sorted(os.listdir(tmp_path)) == ["mine.json"]


def test_cleaning_can_be_limited_to_the_files_about_to_be_written(tmp_path):
    stale = [tmp_path / ".out.0123456789ab.tmp.mp4", tmp_path / ".other.abcdef012345.tmp.json"]
    for path in stale:
        path.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path, ["out.mp4"]) == [stale[0]]
    assert [p.name for p in tmp_path.iterdir()] == [stale[1].name]


def test_sigterm_and_ctrl_c_remove_the_temporary(tmp_path):
    for exit_kind in (SystemExit(143), KeyboardInterrupt()):
        with pytest.raises(type(exit_kind)), atomic_path(tmp_path / "o.mp4") as tmp:
            tmp.write_bytes(b"half")
            raise exit_kind
        assert list(tmp_path.iterdir()) == []


def test_a_full_disk_in_safetensors_names_the_folder(tmp_path, monkeypatch):
    """safetensors hides ENOSPC in a SafetensorError; saving `best/` on a full disk is the same
    DiskFullError as any other full disk, and the old checkpoint stays."""
    from selm.build import build_selm
    from selm.weights.checkpoint import save_pretrained

    model = build_selm("selm_tiny", input_size=64, num_frames=2)
    target = save_pretrained(model, tmp_path / "best")
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def full(*args, **kwargs):
        raise SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    monkeypatch.setattr("selm.weights.checkpoint.save_file", full)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with pytest.raises(DiskFullError, match=f"no space left on {target}"):
        save_pretrained(model, target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
