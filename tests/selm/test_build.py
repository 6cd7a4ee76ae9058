"""The builder: constructs, then loads the weight sources it is given; configs never name them."""

import json

import pytest
import timm
import torch

from selm.build import WeightSources, build_selm
from selm.modeling.vggish import VGGish
from selm.weights.checkpoint import CONFIG_NAME, save_pretrained

SMALL = dict(input_size=64, num_frames=2)


def test_weights_reach_the_model(tmp_path):
    src = timm.create_model("pvt_v2_b0", num_classes=0)
    torch.save(src.state_dict(), tmp_path / "pvt.pth")
    vggish = VGGish("official")
    torch.save(vggish.state_dict(), tmp_path / "vggish.pth")
    model = build_selm(
        "selm_tiny",
        backbone_weights=tmp_path / "pvt.pth",
        vggish_weights=tmp_path / "vggish.pth",
        vggish="official",
        **SMALL,
    )
    for k, v in src.state_dict().items():
        assert torch.equal(model.encoder.backbone.model.state_dict()[k], v), k
    assert torch.equal(model.encoder.vggish.features[0].weight, vggish.features[0].weight)
    fresh = build_selm("selm_tiny", vggish="official", **SMALL)  # no sources: random init
    assert not torch.equal(fresh.encoder.vggish.features[0].weight, vggish.features[0].weight)


def test_saved_config_names_no_weight_file(tmp_path):
    model = build_selm("selm_tiny", **SMALL)
    save_pretrained(model, tmp_path / "ckpt")
    values = json.loads((tmp_path / "ckpt" / CONFIG_NAME).read_text())["config"]
    assert not set(values) & set(WeightSources.field_names())


def test_missing_weight_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="none.pth"):
        build_selm("selm_tiny", backbone_weights=tmp_path / "none.pth", **SMALL)
