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


def release_reference(m: BCSM, feats, audio, flags=None, avss=False):
    """What the authors' current release computes in its BCSM (and, for AVSS, just before it),
    re-derived frame by frame on our module's weights. Frames are numbered i = b * T + t, the
    order in which the release flattens a batch of B clips.

    - AVSS only: its SelM.forward multiplies every projected map by the frame flag before the
      BCSM, so a padded frame's map is all zeros there (its pixels were zeroed earlier too, but
      the backbone and the projection make them non-zero again).
    - Video: each map is averaged over its pixels and put through vis_linear; the flat sequence
      of frames is cut into consecutive runs of 10 frames (AVSS code) or 5 (S4/MS3 code), one
      clip per run at the released T, and each run is scanned by the level's video stack.
    - Audio: S4/MS3 scan each clip's 5 tokens; AVSS scans the B*T tokens of the whole batch as
      one sequence, so a second clip's scan starts where the first clip's padding left it.
    - Read-out: the gates of a level form a (runs, positions) grid. The level-1 audio gate is
      read run by run, in flat order. The level-2..4 audio gates and all video gates are read
      position by position: frame i receives the gate at run i % runs, position i // runs, so at
      B >= 2 a frame takes another clip's gate, and in AVSS clip 2's real frames take gates from
      padded positions. (AVSS audio is one run: both read-outs agree.)
    - Selection: f_i * (1 + g_a,i); audio a_i * (1 + mean over levels of g_v,i).

    feats 4 x (B, T, D, h, w), audio (B, T, D), flags (B, T) or None ->
    (4 x (B*T, D, h, w), (B*T, D)).
    """
    b, t, d = audio.shape
    n = b * t
    maps = [f.reshape(n, *f.shape[2:]) for f in feats]
    if avss and flags is not None:
        maps = [x * flags.reshape(n, 1, 1, 1).to(x.dtype) for x in maps]
    tokens = audio.reshape(n, d)
    video_run = 10 if avss else 5
    audio_run = n if avss else 5

    def scan(stack, gate, seq, run):  # (n, D) -> list of per-run gates, each (run, D)
        assert n % run == 0
        return [gate(stack(seq[k * run : (k + 1) * run].unsqueeze(0)))[0] for k in range(n // run)]

    def read(runs, i, by_position):
        if by_position:
            return runs[i % len(runs)][i // len(runs)]
        run = runs[0].shape[0]
        return runs[i // run][i % run]

    out, video_gates = [], []
    for s, x in enumerate(maps):
        pooled = m.vis_linear[s](x.mean(dim=(-2, -1)))  # (n, D)
        v_runs = scan(m.video_encoder[s], m.video_gated[s], pooled, video_run)
        a_runs = scan(m.audio_encoder[s], m.audio_gated[s], tokens, audio_run)
        g_v = torch.stack([read(v_runs, i, True) for i in range(n)])
        g_a = torch.stack([read(a_runs, i, s > 0) for i in range(n)])
        out.append(x + g_a[:, :, None, None] * x)
        video_gates.append(g_v)
    return out, tokens + (sum(video_gates) / 4) * tokens


def padded_flags(b: int, t: int = 10, real: int = 5) -> torch.Tensor:
    """(B, T) frame flags of AVSS v1 clips: `real` frames, then padding."""
    return (torch.arange(t) < real).expand(b, t).clone()


RELEASE_CASES = [  # (setting, clips, padded)
    ("s4", 1, False),
    ("s4", 2, False),
    ("avss", 1, False),
    ("avss", 1, True),
    ("avss", 2, False),
    ("avss", 2, True),
]


@pytest.mark.parametrize("setting, b, padded", RELEASE_CASES)
def test_release_batch_gates_follow_the_current_release(setting, b, padded):
    avss = setting == "avss"
    t = 10 if avss else 5
    feats, audio = make_inputs(b=b, t=t)  # padded positions non-zero, as the projection makes them
    flags = padded_flags(b) if padded else None
    model = make_bcsm(release_batch_gates=True, num_classes=71 if avss else 1)
    with torch.no_grad():
        ref_feats, ref_audio = release_reference(model, feats, audio, flags, avss)
        got_feats, got_audio, maps = model(feats, audio, frame_mask=flags)
    for got, ref in zip(got_feats, ref_feats):
        torch.testing.assert_close(got.flatten(0, 1), ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(got_audio.flatten(0, 1), ref_audio, rtol=0, atol=1e-5)
    assert maps[0]["gate_video"].shape == (b, t, 32)


@pytest.mark.parametrize("setting", ["s4", "avss"])
def test_the_release_mixes_clips_at_two(setting):
    """At B = 2 the release's read-out puts other clips' gates on a clip's frames; at B = 1 its
    order is ours (AVSS: one clip per video run, one audio sequence)."""
    avss, t = setting == "avss", 10 if setting == "avss" else 5
    ours = make_bcsm(num_classes=71 if avss else 1)
    with torch.no_grad():
        feats, audio = make_inputs(b=2, t=t)
        ref_feats, ref_audio = release_reference(ours, feats, audio, None, avss)
        per_clip_feats, per_clip_audio, _ = ours(feats, audio)
        assert (per_clip_audio.flatten(0, 1) - ref_audio).abs().max() > 1e-2
        assert (per_clip_feats[1].flatten(0, 1) - ref_feats[1]).abs().max() > 1e-2
        if not avss:  # the level-1 audio gate is read per clip in S4/MS3
            torch.testing.assert_close(
                per_clip_feats[0].flatten(0, 1), ref_feats[0], atol=1e-5, rtol=0
            )
        feats, audio = make_inputs(b=1, t=t)
        ref_feats, ref_audio = release_reference(ours, feats, audio, None, avss)
        per_clip_feats, per_clip_audio, _ = ours(feats, audio)
        torch.testing.assert_close(per_clip_audio.flatten(0, 1), ref_audio, rtol=0, atol=1e-5)
        for got, ref in zip(per_clip_feats, ref_feats):
            torch.testing.assert_close(got.flatten(0, 1), ref, rtol=0, atol=1e-5)


def test_release_reads_gates_from_padded_positions():
    """AVSS, 2 clips of 5 real + 5 padded frames: clip 2's real frames take their video gates
    from padded positions, so what the padded maps hold (the release: zeros) changes them; at
    B = 1 it does not (the scans are causal and the padding comes last)."""
    model = make_bcsm(release_batch_gates=True, num_classes=71)
    with torch.no_grad():
        for b, changes in ((2, True), (1, False)):
            feats, audio = make_inputs(b=b, t=10)
            flags = padded_flags(b)
            _, masked_audio, _ = model(feats, audio, frame_mask=flags)
            _, unmasked_audio, _ = model(feats, audio)  # padded maps left as they are
            real = flags.reshape(-1)
            diff = (masked_audio.flatten(0, 1) - unmasked_audio.flatten(0, 1))[real].abs().max()
            assert (diff > 1e-2) == changes, (b, diff)


def test_release_batch_gates_need_the_releases_runs():
    release = make_bcsm(release_batch_gates=True)
    with pytest.raises(ValueError, match="runs of 5"):
        release(*make_inputs(b=1, t=3))
    with pytest.raises(ValueError, match="runs of 10"):
        make_bcsm(release_batch_gates=True, num_classes=71)(*make_inputs(b=1, t=5))


def test_the_model_hands_the_frame_mask_to_the_release_gates():
    """A whole AVSS model under release_batch_gates, 2 clips of 5 real + 5 padded frames: its
    logits are those of the same weights with the BCSM replaced by the re-derivation above.
    (D = 64: GroupNorm(32) then has two channels a group, so a padded frame's projected map,
    constant over pixels, is not normalised to 0 and zeroing it matters.)"""
    from selm import build_selm

    torch.manual_seed(0)
    options = dict(input_size=64, num_frames=10, num_classes=4, dim=64, bcsm_depth=1)
    model = build_selm("selm_tiny", release_batch_gates=True, **options).eval()
    flags = padded_flags(2)

    def reference(feats, audio, return_maps=True, frame_mask=None):
        b, t = audio.shape[:2]
        out, tokens = release_reference(model.bcsm, feats, audio, flags, avss=True)
        return [o.unflatten(0, (b, t)) for o in out], tokens.unflatten(0, (b, t)), None

    frames, audio = torch.randn(2, 10, 3, 64, 64), torch.randn(2, 10, 1, 96, 64)
    with torch.no_grad():
        got = model(frames, audio, flags).logits
        model.bcsm.forward = reference
        want = model(frames, audio, flags).logits
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
