"""BCSM: layout, the gate formula by hand, directions, clip independence, causal padding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from selm.config import SelMConfig
from selm.modeling import bcsm as bcsm_module
from selm.modeling.bcsm import BCSM, MambaLayer
from selm.modeling.mamba import Mamba

GRIDS = [(4, 4), (3, 3), (2, 2), (1, 1)]


def make_bcsm(**overrides) -> BCSM:
    torch.manual_seed(0)
    return BCSM(SelMConfig(**{"dim": 32, "bcsm_depth": 2, **overrides}))


def make_inputs(b=2, t=5, d=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    feats = [torch.randn(b, t, d, h, w, generator=g) for h, w in GRIDS]
    return feats, torch.randn(b, t, d, generator=g)


def silu(x):
    return x * torch.sigmoid(x)


def test_parameter_names_follow_the_release():
    depth, d = 3, 64
    model = BCSM(SelMConfig(dim=d, bcsm_depth=depth))
    mamba = {k: tuple(v.shape) for k, v in Mamba(d).state_dict().items()}
    expected = {}
    for s in range(4):
        for name in (f"vis_linear.{s}", f"audio_gated.{s}.0", f"video_gated.{s}.0"):
            expected[f"{name}.weight"], expected[f"{name}.bias"] = (d, d), (d,)
        for stack in ("video_encoder", "audio_encoder"):
            for i in range(depth):
                prefix = f"{stack}.{s}.layers.{i}."
                expected[prefix + "layernorm.weight"] = expected[prefix + "layernorm.bias"] = (d,)
                for key, shape in mamba.items():
                    expected[prefix + "mamba_block." + key] = shape
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected


def test_shapes_and_maps():
    model = make_bcsm()
    feats, audio = make_inputs()
    out, audio_out, maps = model(feats, audio)
    assert audio_out.shape == audio.shape and len(out) == len(maps) == 4
    for f, o, m, (h, w) in zip(feats, out, maps, GRIDS):
        assert o.shape == f.shape
        assert torch.allclose(m["norm_before"], f.norm(dim=2))
        assert torch.allclose(m["norm_after"], o.detach().norm(dim=2))
        assert m["norm_before"].shape == (2, 5, h, w)
        assert m["gate_audio"].shape == m["gate_video"].shape == (2, 5, 32)
        assert not m["gate_audio"].requires_grad


def test_gradient_reaches_every_parameter():
    model = make_bcsm()
    feats, audio = make_inputs()
    out, audio_out, _ = model(feats, audio)
    loss = sum((o * torch.randn_like(o)).sum() for o in out) + (audio_out.sin()).sum()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_gate_formula_by_hand_with_identity_stacks(monkeypatch):
    monkeypatch.setattr(bcsm_module.MambaStack, "forward", lambda self, x: x)
    model = make_bcsm()
    feats, audio = make_inputs()
    out, audio_out, maps = model(feats, audio)
    p = {k: v.detach().double() for k, v in model.state_dict().items()}
    a = audio.double()
    video_gates = []
    for s, f in enumerate(feats):
        f = f.double()
        g_a = silu(a @ p[f"audio_gated.{s}.0.weight"].T + p[f"audio_gated.{s}.0.bias"])
        pooled = f.sum(dim=(-2, -1)) / (f.shape[-1] * f.shape[-2])  # (B, T, D)
        seq = pooled @ p[f"vis_linear.{s}.weight"].T + p[f"vis_linear.{s}.bias"]
        g_v = silu(seq @ p[f"video_gated.{s}.0.weight"].T + p[f"video_gated.{s}.0.bias"])
        video_gates.append(g_v)
        assert torch.allclose(out[s].double(), f * (1 + g_a[..., None, None]), atol=1e-5)
        assert torch.allclose(maps[s]["gate_audio"].double(), g_a, atol=1e-6)
        assert torch.allclose(maps[s]["gate_video"].double(), g_v, atol=1e-6)
    mean_gate = sum(video_gates) / 4
    assert torch.allclose(audio_out.double(), a * (1 + mean_gate), atol=1e-5)


@pytest.mark.parametrize("residual", ["normed", "input"])
def test_block_residual(residual):
    torch.manual_seed(0)
    layer = MambaLayer(8, nn.Identity(), residual)  # Mamba(y) replaced by y
    with torch.no_grad():
        layer.layernorm.weight.uniform_(0.5, 1.5)
        layer.layernorm.bias.normal_()
    x = torch.randn(2, 3, 8) * 3 + 1
    mean, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    ln = (x - mean) / torch.sqrt(var + 1e-5) * layer.layernorm.weight + layer.layernorm.bias
    expected = 2 * ln if residual == "normed" else x + ln
    assert torch.allclose(layer(x), expected, atol=1e-5)
    assert make_bcsm(bcsm_residual=residual).audio_encoder[0].layers[0].residual == residual


def test_direction_a2v_leaves_audio_unchanged():
    model = make_bcsm(bcsm_direction="a2v")
    assert not any(k.startswith(("vis_linear", "video_")) for k in model.state_dict())
    feats, audio = make_inputs()
    out, audio_out, maps = model(feats, audio)
    assert torch.equal(audio_out, audio)
    assert not any(torch.allclose(o, f) for o, f in zip(out, feats))
    assert all(m["gate_video"] is None and m["gate_audio"] is not None for m in maps)


def test_direction_v2a_leaves_video_unchanged():
    model = make_bcsm(bcsm_direction="v2a")
    assert not any(k.startswith("audio_") for k in model.state_dict())
    feats, audio = make_inputs()
    out, audio_out, maps = model(feats, audio)
    assert all(torch.equal(o, f) for o, f in zip(out, feats))
    assert not torch.allclose(audio_out, audio)
    assert all(m["gate_audio"] is None and m["gate_video"] is not None for m in maps)


def test_clips_are_independent():
    model = make_bcsm()
    feats, audio = make_inputs(b=3)
    changed_feats = [f.clone() for f in feats]
    changed_audio = audio.clone()
    for f in changed_feats:
        f[1] = torch.randn_like(f[1])
    changed_audio[1] = torch.randn_like(audio[1])
    out, audio_out, _ = model(feats, audio)
    out2, audio_out2, _ = model(changed_feats, changed_audio)
    for b in (0, 2):
        assert torch.allclose(audio_out[b], audio_out2[b], atol=1e-6)
        assert all(torch.allclose(o[b], o2[b], atol=1e-6) for o, o2 in zip(out, out2))
    assert not torch.allclose(audio_out[1], audio_out2[1], atol=1e-3)


def test_frames_padded_at_the_end_leave_earlier_frames_alone():
    model = make_bcsm()
    feats, audio = make_inputs(t=5)
    real = 3
    padded_feats = [f.clone() for f in feats]
    padded_audio = audio.clone()
    for f in padded_feats:
        f[:, real:] = 0  # padding as the model applies it: pixels and audio tokens times 0
    padded_audio[:, real:] = 0
    out, audio_out, _ = model(feats, audio)
    out2, audio_out2, _ = model(padded_feats, padded_audio)
    assert torch.allclose(audio_out[:, :real], audio_out2[:, :real], atol=1e-6)
    assert all(torch.allclose(o[:, :real], o2[:, :real], atol=1e-6) for o, o2 in zip(out, out2))


def test_bad_inputs_say_what_is_wrong():
    model = make_bcsm()
    feats, audio = make_inputs()
    with pytest.raises(ValueError, match="4 feature levels"):
        model(feats[:3], audio)
    with pytest.raises(ValueError, match="audio must be"):
        model(feats, audio[..., :16])
    with pytest.raises(ValueError, match=r"feats\[2\]"):
        model(feats[:2] + [feats[2][:1]] + feats[3:], audio)
    with pytest.raises(ValueError, match="bcsm_depth"):
        make_bcsm(bcsm_depth=0)


def release_bcsm_reference(m: BCSM, feats: list[torch.Tensor], audio: torch.Tensor, avss: bool):
    """The release's BCSM.forward written out step by step (avs_s4 / avss `model/BCSM.py`), on
    our module's weights: frames flattened (b, t); pooled video viewed as (BT/5, 5, D); audio as
    (B, 5, D) (S4/MS3) or one (1, BT, D) sequence (AVSS); audio gate 1 reshaped, gates 2-4 and
    all video gates transposed first. -> (4 x (BT, D, h, w), (BT, D))."""
    xs = [f.flatten(0, 1) for f in feats]
    bt, d = xs[0].shape[:2]
    pooled = [x.mean(dim=(-2, -1)).view(bt // 5, 5, -1) for x in xs]
    audio_rnn_input = audio.reshape(1, bt, d) if avss else audio.reshape(-1, 5, d)
    audio_flat = audio_rnn_input.reshape(-1, d)
    pooled = [m.vis_linear[i](x) for i, x in enumerate(pooled)]
    audio_gates = [m.audio_gated[i](m.audio_encoder[i](audio_rnn_input)) for i in range(4)]
    video_gates = [m.video_gated[i](m.video_encoder[i](pooled[i])) for i in range(4)]
    audio_gates = [audio_gates[0].reshape(bt, d, 1, 1)] + [
        g.transpose(1, 0).reshape(bt, d, 1, 1) for g in audio_gates[1:]
    ]
    video_gates = [g.transpose(1, 0).reshape(bt, d) for g in video_gates]
    out = [x + g * x for x, g in zip(xs, audio_gates)]
    video_gate = (video_gates[0] + video_gates[1] + video_gates[2] + video_gates[3]) / 4
    return out, audio_flat + video_gate * audio_flat


@pytest.mark.parametrize("setting, t", [("s4", 5), ("avss", 10)])
def test_release_batch_gates_match_the_release_on_a_two_clip_batch(setting, t):
    feats, audio = make_inputs(b=2, t=t)
    ours, theirs = make_bcsm(release_batch_gates=True), make_bcsm()
    with torch.no_grad():
        ref_feats, ref_audio = release_bcsm_reference(ours, feats, audio, setting == "avss")
        got_feats, got_audio, _ = ours(feats, audio)
        per_clip_feats, per_clip_audio, _ = theirs(feats, audio)
    for got, ref in zip(got_feats, ref_feats):
        torch.testing.assert_close(got.flatten(0, 1), ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(got_audio.flatten(0, 1), ref_audio, rtol=0, atol=1e-5)
    # the release's order differs from ours at B = 2: clips mix
    assert (per_clip_audio.flatten(0, 1) - ref_audio).abs().max() > 1e-2
    assert (per_clip_feats[1].flatten(0, 1) - ref_feats[1]).abs().max() > 1e-2
    if setting == "s4":  # per clip (b, t) for the first audio gate in both
        torch.testing.assert_close(per_clip_feats[0], got_feats[0], rtol=0, atol=1e-5)


def test_release_batch_gates_at_one_clip():
    """S4 (T = 5) at B = 1: the release's order is ours. AVSS (T = 10) at B = 1: its video runs
    in two 5-frame scans read out interleaved, so even one clip differs from ours."""
    ours, release = make_bcsm(), make_bcsm(release_batch_gates=True)
    with torch.no_grad():
        feats, audio = make_inputs(b=1, t=5)
        for a, b in zip(ours(feats, audio)[:2], release(feats, audio)[:2]):
            for x, y in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
                torch.testing.assert_close(x, y, rtol=0, atol=1e-6)
        feats, audio = make_inputs(b=1, t=10)
        assert (ours(feats, audio)[1] - release(feats, audio)[1]).abs().max() > 1e-2
        with pytest.raises(ValueError, match="runs of 5"):
            release(*make_inputs(b=1, t=3))
