import pytest
import torch
from fake_selm import make_video

from selm.modeling.vggish import VGGish


@pytest.fixture(scope="module")
def official():
    """An official-variant VGGish with seeded random weights, in eval mode."""
    torch.manual_seed(0)
    return VGGish("official").eval()


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """7 s at 4 fps, 64 x 48, a 440 Hz tone (fake_selm.make_video)."""
    return make_video(tmp_path_factory.mktemp("media") / "scene.mp4")


@pytest.fixture(scope="module")
def silent_video(tmp_path_factory):
    """3 s without an audio track."""
    return make_video(tmp_path_factory.mktemp("media") / "silent.mp4", seconds=3, audio=False)
