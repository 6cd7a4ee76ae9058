"""Converting the published checkpoints: for each of the six released layouts (names and shapes
from tests/data/official/*.tsv, values random), every tensor lands where it should, the model
loads strictly and runs; mismatches give one clear error."""

import pytest
import torch
from release_fakes import SPOTS, published

from selm.config import get_config
from selm.presets import official_preset_name
from selm.weights.release_layout import (
    ConversionError,
    convert_official,
    describe,
    detect_layout,
)

NAMES = [(s, b) for s in ("s4", "ms3", "avss") for b in ("r50", "pvt")]


@pytest.mark.parametrize("setting,backbone", NAMES)
def test_every_published_tensor_lands_where_it_should(setting, backbone):
    state = published(setting, backbone)
    cfg = get_config(official_preset_name(setting, backbone))
    assert describe(state) == dict(
        backbone=backbone,
        grid=cfg.grids[0],
        steps=cfg.mask_upsample_steps,
        classes=cfg.num_classes,
    )
    conversion = convert_official(state, setting=setting, backbone=backbone, embeddings_only=True)
    model = conversion.model
    assert model.config == cfg and not model.training
    ours = model.state_dict()
    vggish = {k for k in ours if k.startswith("encoder.vggish.")}
    # both directions: each of ours from exactly one published tensor and vice versa
    assert set(conversion.sources) == set(ours) - vggish
    dropped = sorted(k for k in state if k.startswith(("resnet.layer3_2.", "resnet.layer4_2.")))
    assert conversion.dropped == dropped and len(dropped) == (174 if backbone == "r50" else 0)
    assert sorted(conversion.sources.values()) == sorted(set(state) - set(dropped))
    for mine, theirs in conversion.sources.items():  # the very tensor, not a copy
        assert ours[mine].data_ptr() == state[theirs].data_ptr(), (mine, theirs)
    for theirs, mine in {**SPOTS[backbone], **SPOTS["both"]}.items():
        assert torch.equal(ours[mine], state[theirs]), (theirs, mine)
    assert not any(t.is_meta for t in ours.values())

    t = 2 if setting == "avss" else 1  # AVSS: a real frame, then a padded one
    frames, audio = torch.randn(1, t, 3, 32, 32), torch.randn(1, t, 128)  # (B, T, ...), tiny
    mask = torch.tensor([[True, False]]) if setting == "avss" else None
    with torch.no_grad():
        out = model(frames, audio, mask)
    assert out.logits.shape == (1, t, cfg.num_classes, 224, 224)
    assert torch.isfinite(out.logits).all() and out.logits.std() > 0


def _convert(state, **kw):
    return convert_official(
        state, **{**dict(setting="s4", backbone="r50", embeddings_only=True), **kw}
    )


def test_mismatches_give_one_clear_error():
    state = published("s4", "r50")
    with pytest.raises(ConversionError, match="not --backbone pvt"):
        detect_layout(state, "s4", "pvt")
    with pytest.raises(ConversionError, match="not the released ms3 .* fits --setting s4"):
        detect_layout(state, "ms3", "r50")
    assert detect_layout(state) == detect_layout(state, "s4", "r50") == ("s4", "r50")
    with pytest.raises(ConversionError, match="--vggish-weights .* --embeddings-only"):
        _convert(state, embeddings_only=False)
    with pytest.raises(ConversionError, match=r"no place .*\n  head\.weight"):
        _convert({**state, "head.weight": torch.zeros(2)})
    with pytest.raises(ConversionError, match=r"unexpected \(1\): decoder\.extra\.weight"):
        _convert({**state, "decoder.extra.weight": torch.zeros(2)})
    missing = {k: v for k, v in state.items() if k != "decoder.cgattention2.tau"}
    with pytest.raises(ConversionError, match=r"missing \(1\): decoder\.cgattention2\.tau"):
        _convert(missing)
    bad = {**state, "in_proj2.0.weight": torch.zeros(256, 500, 1, 1)}
    with pytest.raises(ConversionError, match=r"shape mismatch \(1\): proj\.1\.0\.weight"):
        _convert(bad)
    with pytest.raises(ConversionError, match="neither `resnet"):
        detect_layout({"foo.weight": torch.zeros(1)})


@pytest.mark.parametrize("setting", ["s4", "ms3", "avss"])
@pytest.mark.parametrize("backbone", ["r50", "pvt"])
def test_layout_detection_on_the_six_layouts(setting, backbone):
    assert detect_layout(published(setting, backbone)) == (setting, backbone)


def test_layout_detection_on_files_that_fit_none():
    with pytest.raises(ConversionError, match="fits none of the six released layouts"):
        detect_layout({"backbone.conv.weight": torch.zeros(2, 2)})
    state = published("s4", "r50")
    partial = {k: v for k, v in state.items() if not k.startswith("decoder.layers.0.")}
    with pytest.raises(ConversionError, match=r"setting cannot be read off \(grid missing\)") as e:
        detect_layout(partial)
    assert "--setting {s4,ms3,avss} --backbone r50" in str(e.value)
    odd = {**state, "decoder.layers.0.positional_embedding": torch.zeros(20 * 20, 256)}
    with pytest.raises(ConversionError, match="fits none of the three released settings"):
        detect_layout(odd)
