"""The wired model: output contract, gradients, determinism, padding, ablation switches."""

import pytest
import torch

from selm import build_selm, get_config
from selm.modeling.model import SelMOutput

SMALL = dict(input_size=64, num_frames=3)


def _inputs(b=1, t=3, size=64, embeddings=False):
    frames = torch.randn(b, t, 3, size, size)
    audio = torch.randn(b, t, 128) if embeddings else torch.randn(b, t, 1, 96, 64)
    return frames, audio


def _check_contract(out: SelMOutput, cfg, b, t, size):
    n, k = cfg.num_classes, cfg.num_tokens
    assert out.logits.shape == (b, t, n, cfg.output_size or size, cfg.output_size or size)
    assert len(out.hit_maps) == 3
    for m, g in zip(out.hit_maps, (size // 16, size // 8, size // 4)):
        assert m.shape == (b, t, k, g, g)
        assert torch.allclose(m.sum(2), torch.ones(()))  # one-hot over the K tokens
    if not cfg.bcsm:  # a model without BCSM has no BCSM maps to show
        assert out.bcsm is None
        return
    assert len(out.bcsm) == 4
    for level, stride in zip(out.bcsm, (4, 8, 16, 32)):
        assert level["norm_before"].shape == (b, t, size // stride, size // stride)
        assert level["norm_after"].shape == level["norm_before"].shape
    if out.dam_maps is not None:
        for m, stride in zip(out.dam_maps, (4, 8, 16, 32)):
            assert m.shape == (b, t, size // stride, size // stride)
            assert torch.allclose(m.sum((-1, -2)), torch.ones(b, t), atol=1e-5)


@pytest.mark.parametrize(
    "preset,embeddings",
    [("selm_tiny", False), ("selm_r50", True), ("selm_pvt_b5", True)],
)
def test_presets_forward_contract(preset, embeddings):
    overrides = (
        dict(SMALL, output_size=None, mask_upsample_steps=2)
        if preset == "selm_pvt_b5"
        else dict(SMALL)
    )
    model = build_selm(preset, **overrides).eval()
    frames, audio = _inputs(embeddings=embeddings)
    with torch.no_grad():
        out = model(frames, audio, return_maps=True)
    _check_contract(out, model.config, 1, 3, 64)
    assert out.dam_maps is not None and out.bcsm[0]["gate_audio"] is not None


def test_gradients_reach_every_trainable_parameter():
    model = build_selm("selm_tiny", **SMALL).train()
    frames, audio = _inputs(b=2)
    out = model(frames, audio)
    loss = out.logits.square().mean() + sum(m.float().mean() for m in out.hit_maps)
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not dead, dead


def test_eval_is_deterministic_and_clips_are_independent():
    model = build_selm("selm_tiny", **SMALL).eval()
    frames, audio = _inputs(b=2)
    with torch.no_grad():
        a, b = model(frames, audio), model(frames, audio)
        single = model(frames[1:], audio[1:])
    assert torch.equal(a.logits, b.logits)
    assert all(torch.equal(x, y) for x, y in zip(a.hit_maps, b.hit_maps))
    torch.testing.assert_close(a.logits[1:], single.logits, atol=1e-4, rtol=1e-4)


def test_padded_frames_never_change_real_frames():
    model = build_selm("selm_tiny", **dict(SMALL, num_frames=5)).eval()
    frames, audio = _inputs(t=5)
    mask = torch.tensor([[True, True, True, False, False]])
    frames2, audio2 = frames.clone(), audio.clone()
    frames2[:, 3:] = torch.randn_like(frames2[:, 3:]) * 5
    audio2[:, 3:] = torch.randn_like(audio2[:, 3:]) * 5
    with torch.no_grad():
        a = model(frames, audio, mask)
        b = model(frames2, audio2, mask)
    torch.testing.assert_close(a.logits[:, :3], b.logits[:, :3], atol=1e-5, rtol=1e-5)
    # and the padded frames themselves see only zeros, whatever they held
    torch.testing.assert_close(a.logits[:, 3:], b.logits[:, 3:], atol=1e-5, rtol=1e-5)


def test_mute_changes_the_output():
    model = build_selm("selm_tiny", **SMALL).eval()
    frames, audio = _inputs()
    with torch.no_grad():
        loud = model(frames, audio).logits
        mute = model(frames, torch.full_like(audio, -4.6)).logits  # log(0 + 0.01)
    assert not torch.allclose(loud, mute)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(fusion="add"),
        dict(fusion="concat"),
        dict(fusion="none"),
        dict(dam_direction="a2v"),
        dict(dam_direction="v2a"),
        dict(bcsm=False),
        dict(bcsm_direction="a2v"),
        dict(bcsm_direction="v2a"),
        dict(decoder="single_level"),
        dict(clever_cross_attention="video"),
        dict(clever_cross_attention="audio"),
        dict(num_classes=4),
        dict(output_size=32),
    ],
)
def test_ablation_switches_build_and_run(overrides):
    model = build_selm("selm_tiny", **SMALL, **overrides).eval()
    frames, audio = _inputs()
    with torch.no_grad():
        out = model(frames, audio, return_maps=True)
    _check_contract(out, model.config, 1, 3, 64)
    if (
        overrides.get("fusion") in ("add", "concat", "none")
        or overrides.get("dam_direction") == "a2v"
    ):
        assert out.dam_maps is None
    if overrides.get("bcsm") is False:
        assert out.bcsm is None


def test_display_maps_only_when_asked():
    model = build_selm("selm_tiny", **SMALL).eval()
    frames, audio = _inputs()
    with torch.no_grad():
        plain = model(frames, audio)
        shown = model(frames, audio, return_maps=True)
    assert plain.bcsm is None and len(shown.bcsm) == 4
    assert torch.equal(plain.logits, shown.logits)


def test_bad_shapes_are_explained():
    model = build_selm("selm_tiny", **SMALL).eval()
    frames, audio = _inputs()
    with pytest.raises(ValueError, match="frames must be"):
        model(frames[0], audio)
    with pytest.raises(ValueError, match="audio must start"):
        model(frames, audio[:, :2])
    with pytest.raises(ValueError, match="frame_mask"):
        model(frames, audio, torch.ones(1, 2, dtype=torch.bool))


def test_tiny_checkpoint_is_small():
    model = build_selm("selm_tiny")
    size = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    assert size < 25 * 2**20, size / 2**20


def test_build_from_config_object():
    cfg = get_config("selm_tiny", **SMALL)
    assert build_selm(cfg, dim=32).config.dim == 32
