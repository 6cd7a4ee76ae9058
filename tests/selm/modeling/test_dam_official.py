"""The released DAM block: the release's equations in float64, its degenerate A2V half shown
numerically, and its parameter layout against the published files."""

import math
from pathlib import Path

import pytest
import torch

from selm.config import SelMConfig
from selm.modeling.dam import build_fusion
from selm.modeling.dam_official import RELEASE_NAMES, OfficialDAM, our_key, release_key
from selm.modeling.model import SelM

C, D = 8, 32
LAYOUTS = Path(__file__).parents[2] / "data" / "official"


def _block(channels=C, dim=D, dtype=torch.float64) -> OfficialDAM:
    m = OfficialDAM(channels=channels, dim=dim).to(dtype).eval()
    with torch.no_grad():  # biases and the two scalar logits away from their defaults
        for name, p in m.named_parameters():
            if name.endswith("bias") or name.endswith("_mix"):
                p.copy_(torch.randn_like(p))
    return m


def _inputs(bt=2, h=3, w=5, dtype=torch.float64):
    return 3 * torch.randn(bt, C, h, w, dtype=dtype), torch.randn(bt, D, dtype=dtype)


def _gelu(t):
    return 0.5 * t * (1.0 + torch.erf(t / math.sqrt(2.0)))


def _aff(conv, t):
    """A 1x1 Conv1d applied to (in, L) -> (out, L)."""
    return conv.weight[:, :, 0] @ t + conv.bias[:, None]


def _inorm(t):
    """nn.InstanceNorm1d on one frame: (C, L) normalised over L, biased variance, eps 1e-5."""
    mean = t.mean(1, keepdim=True)
    var = ((t - mean) ** 2).mean(1, keepdim=True)
    return (t - mean) / torch.sqrt(var + 1e-5)


def _softmax(t, dim):
    e = torch.exp(t - t.max(dim, keepdim=True).values)
    return e / e.sum(dim, keepdim=True)


def _release(m: OfficialDAM, x, a):
    """The released DAM_Fusion_Block, one frame at a time, from its published equations."""
    bt, c, h, w = x.shape
    xs, as_, atts = [], [], []
    mix_v = _softmax(m.a2v_mix, 0)  # the release's softmax over its one-element vis_weight
    mix_a = _softmax(m.v2a_mix, 0)
    for b in range(bt):
        pix, tok = x[b].reshape(c, h * w), a[b][:, None]  # (C, N), (D, 1)
        # Audio_Sim + audio half: the audio token queries the pixels
        q = _aff(m.v2a_query2, _aff(m.v2a_query, tok))  # (D, 1)
        k = _inorm(_aff(m.v2a_key, pix))  # (D, N)
        att = _softmax((q.T @ k) / math.sqrt(c), 1) * mix_a  # (1, N)
        pooled = _inorm(_aff(m.v2a_value, pix)) @ att.T  # (D, 1)
        as_.append(a[b] + _gelu(_aff(m.audio_out_conv, _aff(m.v2a_out, pooled)))[:, 0])
        atts.append(att[0])
        # Visual_Sim + visual half: the pixels query the single audio token
        qv = _inorm(_aff(m.a2v_query2, _inorm(_aff(m.a2v_query, pix))))  # (C, N)
        sim = _softmax(qv.T @ _aff(m.a2v_key, tok) / math.sqrt(c), 1) * mix_v  # (N, 1)
        weight = _inorm(_aff(m.a2v_out, _aff(m.a2v_value, tok) @ sim.T))  # (C, N)
        r = _gelu(_aff(m.out_conv, _gelu(_aff(m.vis_project, pix)) * weight))  # (C, N)
        g1, g2 = m.gate[0].weight, m.gate[2].weight
        xs.append((pix + torch.tanh(g2 @ torch.relu(g1 @ r)) * r).reshape(c, h, w))
    return torch.stack(xs), torch.stack(as_), torch.stack(atts)


def test_matches_the_release_equations_in_float64():
    m = _block()
    x, a = _inputs()
    with torch.no_grad():
        got = m(x, a)
        want = _release(m, x, a)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(got[2].sum(-1), torch.ones(2, dtype=torch.float64))


def test_a2v_weight_is_zero_for_any_input():
    """One audio token: the softmax over the token axis is exactly 1, so W is the instance norm
    of a map constant over the pixels, i.e. ~0 (float32 rounding noise only)."""
    m = _block(dtype=torch.float32)
    for scale in (0.1, 1.0, 30.0):
        x, a = _inputs(bt=3, h=4, w=6, dtype=torch.float32)
        with torch.no_grad():
            weight = m.a2v_weight(scale * x.flatten(2), scale * a[:, :, None])
        assert weight.shape == (3, C, 24)
        assert weight.abs().max() < 1e-3
    # the same computation with two distinct audio tokens is far from 0: the single token is
    # what makes the release's A2V weight vanish
    with torch.no_grad():
        two = m.a2v_weight(x.flatten(2), torch.randn(3, D, 2))
    assert two.abs().max() > 0.5


def test_a2v_half_only_adds_a_learned_per_channel_bias():
    """x_out - x = gate(g) * g at every pixel, g = GELU(out_conv.bias): no pixel and no audio
    dependence, while the audio update does depend on both."""
    m = _block(dtype=torch.float32)
    x, a = _inputs(dtype=torch.float32)
    with torch.no_grad():
        x1, a1, att1 = m(x, a)
        x2, a2, att2 = m(x, torch.randn_like(a))  # other audio
        g = torch.nn.functional.gelu(m.out_conv.bias)  # (C,)
        bias = m.gate(g) * g
    expected = x + bias[None, :, None, None]
    torch.testing.assert_close(x1, expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(x2, expected, atol=1e-4, rtol=0)
    assert not torch.allclose(a1, a2, atol=1e-3)
    assert not torch.allclose(att1, att2, atol=1e-4)


def test_a2v_similarity_gets_no_gradient():
    """softmax over one element has derivative 0: the release's A2V query/key never learn."""
    m = _block(dtype=torch.float32).train()
    x, a = _inputs(dtype=torch.float32)
    x1, a1, att = m(x.requires_grad_(), a)
    (x1.square().sum() + a1.square().sum() + att.square().sum()).backward()
    for name in (
        "a2v_query.weight",
        "a2v_query.bias",
        "a2v_query2.weight",
        "a2v_key.weight",
        "a2v_key.bias",
        "a2v_mix",
        "v2a_mix",
    ):
        assert torch.count_nonzero(m.get_parameter(name).grad) == 0, name
    for name in (
        "v2a_query.weight",
        "v2a_key.weight",
        "v2a_value.weight",
        "out_conv.bias",
        "gate.0.weight",
        "audio_out_conv.weight",
    ):
        assert m.get_parameter(name).grad.abs().max() > 0, name


def _tsv(name):
    lines = (LAYOUTS / name).read_text().splitlines()[1:]
    rows = (line.split("\t") for line in lines)
    return {k: tuple(int(s) for s in v.strip("()").split(",") if s.strip()) for k, v in rows}


@pytest.mark.parametrize(
    "file,prefix,channels",
    [
        ("s4_selm_r50.tsv", "DAM_Fusion1.", 256),
        ("s4_selm_r50.tsv", "DAM_Fusion4.", 2048),
        ("ms3_selm_pvt.tsv", "encoder_backbone.DAM_Fusion3.", 320),
    ],
)
def test_layout_is_the_released_one(file, prefix, channels):
    released = {k[len(prefix) :]: v for k, v in _tsv(file).items() if k.startswith(prefix)}
    with torch.device("meta"):
        ours = OfficialDAM(channels=channels, dim=256).state_dict()
    assert {release_key(k): tuple(v.shape) for k, v in ours.items()} == released
    assert {our_key(k) for k in released} == set(ours)


def test_name_tables_are_inverse():
    for ours, theirs in RELEASE_NAMES.items():
        assert our_key(release_key(ours + ".weight")) == ours + ".weight"
        assert release_key(our_key(theirs)) == theirs
    with pytest.raises(KeyError):
        release_key("branch_v.weight")
    with pytest.raises(KeyError):
        our_key("fusion.unknown.0.weight")


def test_build_fusion_and_directions():
    cfg = SelMConfig(dim=D, dam_variant="official")
    assert isinstance(build_fusion(cfg, C), OfficialDAM)
    with pytest.raises(ValueError, match="dam_variant='paper'"):
        build_fusion(SelMConfig(dam_variant="official", dam_direction="a2v"), C)


def test_selm_runs_with_the_official_block():
    cfg = SelMConfig(
        backbone="pvt_v2_b0",
        dim=64,
        input_size=64,
        vggish="slim",
        dam_variant="official",
        audio_attn_min_side=14,
    )
    model = SelM(cfg).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 2, 3, 64, 64), torch.randn(1, 2, 128))
    assert out.logits.shape == (1, 2, 1, 64, 64) and torch.isfinite(out.logits).all()
    assert [m.shape for m in out.dam_maps] == [(1, 2, 64 // s, 64 // s) for s in (4, 8, 16, 32)]
    for m in out.dam_maps:  # V2A attention: a softmax over each frame's pixels
        torch.testing.assert_close(m.sum((-2, -1)), torch.ones(1, 2))
