import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def release_store(tmp_path_factory):
    """The fake Drive's files (random weights in the published layouts), made once a session."""
    from release_fakes import FileStore

    return FileStore(tmp_path_factory.mktemp("release-files"))


@pytest.fixture
def fake_drive(monkeypatch, release_store, tmp_path):
    """gdown.download served by a FakeDrive; SELM_HOME is a fresh folder (fake_drive.home)."""
    from release_fakes import install

    return install(monkeypatch, release_store, tmp_path / "selm-home")
