import pytest
import torch

from selm.modeling.vggish import VGGish


@pytest.fixture(scope="module")
def official():
    """An official-variant VGGish with seeded random weights, in eval mode."""
    torch.manual_seed(0)
    return VGGish("official").eval()
