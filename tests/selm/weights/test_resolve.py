"""selm.weights.resolve: what a checkpoint spec names, and a clear error for what it cannot be
(official:NAME and .pth specs: tests/selm/weights/test_release.py)."""

import pytest

from selm.weights.resolve import resolve_checkpoint
from selm.weights.state_dict import CheckpointError


def test_not_a_checkpoint_directory(tmp_path):
    with pytest.raises(CheckpointError, match="not a SelM checkpoint directory"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        resolve_checkpoint(tmp_path / "missing")


def test_hub_id_offline_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="Hugging Face Hub"):
        resolve_checkpoint("someone/selm-nonexistent")


def test_a_folder_is_its_own_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert resolve_checkpoint(tmp_path) == tmp_path
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        resolve_checkpoint("./not/a/repo/id")
