"""Stage-by-stage backbones vs timm's own features, and the fused encoder."""

import re

import pytest
import timm
import torch

from selm.config import SelMConfig
from selm.modeling.encoder import AudioVisualEncoder, Backbone

SIZE = 64


def _cfg(**overrides):
    base = dict(backbone="resnet18", input_size=SIZE, vggish="slim", dim=32, dropout=0.0)
    return SelMConfig(**{**base, **overrides})


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "pvt_v2_b0"])
def test_stages_match_timm_features_only(name):
    bb = Backbone(name).eval()
    ref = timm.create_model(name, features_only=True, out_indices=(-4, -3, -2, -1)).eval()
    state = {re.sub(r"^stages\.(\d)", r"stages_\1", k): v for k, v in bb.model.state_dict().items()}
    ref.load_state_dict(state)
    assert bb.channels == ref.feature_info.channels()
    assert bb.reductions == ref.feature_info.reduction() == [4, 8, 16, 32]
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = ref(x)
        y = bb.stem(x)
        for s in range(4):
            y = bb.stage(s, y)
            assert y.shape == (
                2,
                bb.channels[s],
                SIZE // bb.reductions[s],
                SIZE // bb.reductions[s],
            )
            torch.testing.assert_close(y, expected[s], atol=1e-5, rtol=1e-5)


def test_unsupported_backbones_are_named():
    with pytest.raises(ValueError, match="stage by stage"):
        Backbone("vit_tiny_patch16_224")
    with pytest.raises(ValueError, match="unknown timm model 'resnet_fifty'"):
        Backbone("resnet_fifty")


@pytest.mark.parametrize("name", ["resnet18", "pvt_v2_b0"])
@pytest.mark.parametrize("embeddings", [False, True])
def test_encoder_shapes(name, embeddings):
    enc = AudioVisualEncoder(_cfg(backbone=name)).eval()
    frames = torch.randn(3, 3, SIZE, SIZE)
    audio = torch.randn(3, 128) if embeddings else torch.randn(3, 1, 96, 64)
    with torch.no_grad():
        feats, tokens, maps = enc(frames, audio)
    assert enc.channels == enc.backbone.channels and len(enc.dam) == 4
    assert tokens.shape == (3, 32)
    for f, m, c, r in zip(feats, maps, enc.channels, (4, 8, 16, 32)):
        assert f.shape == (3, c, SIZE // r, SIZE // r)
        assert m.shape == (3, (SIZE // r) ** 2)
        torch.testing.assert_close(m.sum(-1), torch.ones(3))


def test_embeddings_bypass_vggish():
    enc = AudioVisualEncoder(_cfg()).eval()
    frames, mel = torch.randn(2, 3, SIZE, SIZE), torch.randn(2, 1, 96, 64)
    with torch.no_grad():
        from_mel = enc(frames, mel)
        from_embeddings = enc(frames, enc.vggish(mel))
    for x, y in zip(from_mel[0] + [from_mel[1]], from_embeddings[0] + [from_embeddings[1]]):
        assert torch.equal(x, y)


def test_bad_audio_and_frame_shapes():
    enc = AudioVisualEncoder(_cfg())
    frames = torch.randn(2, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match=r"\(2, 1, 96, 64\).*\(2, 128\)"):
        enc(frames, torch.randn(2, 96, 64))
    with pytest.raises(ValueError, match="audio"):
        enc(frames, torch.randn(3, 128))  # one token per frame
    with pytest.raises(ValueError, match="frames"):
        enc(torch.randn(2, 1, SIZE, SIZE), torch.randn(2, 128))
    with pytest.raises(ValueError, match="frame_mask"):
        enc(frames, torch.randn(2, 128), torch.ones(3, dtype=torch.bool))


def _loss(feats, tokens, maps):
    return (
        sum(f.square().mean() for f in feats)
        + tokens.square().mean()
        + sum((m * torch.arange(m.shape[-1])).mean() for m in maps)
    )


@pytest.mark.parametrize("name", ["resnet18", "pvt_v2_b0"])
def test_gradients_reach_every_trainable_parameter(name):
    enc = AudioVisualEncoder(_cfg(backbone=name, freeze_vggish=False)).train()
    _loss(*enc(torch.randn(2, 3, SIZE, SIZE), torch.randn(2, 1, 96, 64))).backward()
    dead = [n for n, p in enc.named_parameters() if p.grad is None]
    assert not dead, dead


def test_frozen_parts_get_no_gradient_and_stay_in_eval():
    enc = AudioVisualEncoder(_cfg(freeze_vggish=True, freeze_backbone=True)).train()
    assert not enc.backbone.training and enc.dam.training
    _loss(*enc(torch.randn(2, 3, SIZE, SIZE), torch.randn(2, 1, 96, 64))).backward()
    for n, p in enc.named_parameters():
        frozen = n.startswith(("vggish.", "backbone."))
        assert p.requires_grad != frozen, n
        assert (p.grad is None) == frozen, n


def test_padded_frames_change_nothing_real_and_carry_zero_tokens():
    enc = AudioVisualEncoder(_cfg(backbone="pvt_v2_b0")).eval()
    mask = torch.tensor([True, False, True])
    frames, audio = torch.randn(3, 3, SIZE, SIZE), torch.randn(3, 1, 96, 64)
    frames2, audio2 = frames.clone(), audio.clone()
    frames2[1], audio2[1] = 5 * torch.randn(3, SIZE, SIZE), 5 * torch.randn(1, 96, 64)
    with torch.no_grad():
        a, b = enc(frames, audio, mask), enc(frames2, audio2, mask)
        real = enc(frames[mask], audio[mask])
    for fa, fb, fr in zip(a[0], b[0], real[0]):
        assert torch.equal(fa, fb)  # padded content is multiplied by 0 before anything sees it
        torch.testing.assert_close(fa[mask], fr, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a[1][mask], real[1], atol=1e-5, rtol=1e-5)
    assert torch.equal(a[1][1], torch.zeros(32))
    for ma, mr in zip(a[2], real[2]):
        torch.testing.assert_close(ma[mask], mr, atol=1e-6, rtol=1e-5)


class _Probe(torch.nn.Module):
    """A fusion block that zeroes the map and adds 1 to the audio token."""

    def forward(self, x, a):
        return torch.zeros_like(x), a + 1.0, None


def test_early_fusion_feeds_the_next_stage_and_carries_the_token():
    enc = AudioVisualEncoder(_cfg(fusion="none")).eval()
    enc.dam[1] = _Probe()
    enc.dam[2] = _Probe()
    frames, audio = torch.randn(2, 3, SIZE, SIZE), torch.randn(2, 128)
    with torch.no_grad():
        feats, tokens, maps = enc(frames, audio)
        after_zero = enc.backbone.stage(3, torch.zeros_like(feats[2]))
        torch.testing.assert_close(feats[3], after_zero)  # stage 4 ran on DAM_3's output
        torch.testing.assert_close(tokens, enc.audio_tokens(audio, 2) + 2.0)
    assert maps is None  # no fusion block has a V2A half


def test_fusion_ablations_build():
    for fusion in ("add", "concat"):
        enc = AudioVisualEncoder(_cfg(fusion=fusion, dam_direction="a2v")).eval()
        with torch.no_grad():
            feats, tokens, maps = enc(torch.randn(1, 3, SIZE, SIZE), torch.randn(1, 128))
        assert maps is None and len(feats) == 4
