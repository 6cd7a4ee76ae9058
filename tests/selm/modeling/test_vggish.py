"""VGGish: torchvggish's parameter layout, the (H, W, C) flatten, strict weight loading."""

import pytest
import torch

from selm.modeling.vggish import VGGish

# torchvggish's VGGish state dict (vggish-10086976.pth): name -> shape
PORT_LAYOUT = {
    "features.0.weight": (64, 1, 3, 3),
    "features.0.bias": (64,),
    "features.3.weight": (128, 64, 3, 3),
    "features.3.bias": (128,),
    "features.6.weight": (256, 128, 3, 3),
    "features.6.bias": (256,),
    "features.8.weight": (256, 256, 3, 3),
    "features.8.bias": (256,),
    "features.11.weight": (512, 256, 3, 3),
    "features.11.bias": (512,),
    "features.13.weight": (512, 512, 3, 3),
    "features.13.bias": (512,),
    "embeddings.0.weight": (4096, 12288),
    "embeddings.0.bias": (4096,),
    "embeddings.2.weight": (4096, 4096),
    "embeddings.2.bias": (4096,),
    "embeddings.4.weight": (128, 4096),
    "embeddings.4.bias": (128,),
}


def _examples(n=2):
    return torch.randn(n, 1, 96, 64)  # (n, 1, 96, 64) log-mel examples


def test_official_layout_matches_the_pytorch_port(official):
    layout = {k: tuple(v.shape) for k, v in official.state_dict().items()}
    assert layout == PORT_LAYOUT
    with torch.no_grad():
        out = official(_examples())
    assert out.shape == (2, 128)
    assert (out >= 0).all()  # ReLU after the last linear too


def _reference_embedding(model, x):
    """Conv features flattened by explicit (h, w, c) loops, then the linears in float64."""
    with torch.no_grad():
        f = model.features(x).double()  # (N, C, 6, 4)
    n, c, h, w = f.shape
    flat = torch.zeros(n, h * w * c, dtype=torch.float64)
    for i in range(h):
        for j in range(w):
            for k in range(c):
                flat[:, (i * w + j) * c + k] = f[:, k, i, j]
    y = flat
    for layer in model.embeddings:
        if isinstance(layer, torch.nn.Linear):
            y = torch.relu(y @ layer.weight.double().T + layer.bias.double())
    return y


@pytest.mark.parametrize("variant", ["slim", "official"])
def test_flatten_is_height_width_channels(variant, official):
    model = official if variant == "official" else VGGish("slim").eval()
    x = _examples()
    with torch.no_grad():
        out = model(x)
    ref = _reference_embedding(model, x)
    torch.testing.assert_close(out.double(), ref, atol=1e-4, rtol=1e-4)


def test_flatten_order_with_one_hot_weights():
    """Hand-built: one FC input picks feature (c=5, h=2, w=3); only (H, W, C) order finds it."""
    model = VGGish("slim").eval()
    c, h, w, channels = 5, 2, 3, 64
    with torch.no_grad():
        for p in model.embeddings.parameters():
            p.zero_()
        model.embeddings[0].weight[0, (h * 4 + w) * channels + c] = 1.0
        model.embeddings[2].weight[0, 0] = 1.0  # slim: 1536 -> 128 -> 128
        x = _examples(1)
        feature = model.features(x)[0, c, h, w]
        assert feature > 0  # the test needs a live unit
        assert torch.allclose(model(x)[0, 0], feature)


def test_bad_input_shape_and_variant():
    with pytest.raises(ValueError, match=r"\(N, 1, 96, 64\)"):
        VGGish("slim")(torch.zeros(2, 96, 64))
    with pytest.raises(ValueError, match="official"):
        VGGish("large")
