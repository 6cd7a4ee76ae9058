"""DAM against the paper's formulas in float64, its directions, and the fusion ablations."""

import math

import pytest
import torch

from selm.config import SelMConfig
from selm.modeling.dam import DAM, AddFusion, ConcatFusion, NoFusion, build_fusion
from selm.modeling.dam_official import OfficialDAM

C, D = 8, 32


def _inputs(bt=2, h=3, w=5):
    return torch.randn(bt, C, h, w, dtype=torch.float64), torch.randn(bt, D, dtype=torch.float64)


def _gelu(t):
    return 0.5 * t * (1.0 + torch.erf(t / math.sqrt(2.0)))


def _affine(conv, t):
    """A 1x1 Conv1d / Linear applied to one vector t (in,) -> (out,)."""
    w = conv.weight.reshape(conv.weight.shape[0], -1)
    return w @ t + (conv.bias if conv.bias is not None else 0.0)


def _paper_dam(m: DAM, x, a):
    """docs/model.md, section 'Encoder and DAM', written out per frame and per pixel, from the
    module's own weights."""
    bt, c, h, w = x.shape
    x_out, a_out, att_out = x.clone(), a.clone(), torch.zeros(bt, h * w, dtype=x.dtype)
    for b in range(bt):
        pix = x[b].reshape(c, h * w)  # (C, HW)
        if m.v2a:
            q = _affine(m.q, a[b])
            logits = torch.stack([q @ _affine(m.k, pix[:, n]) for n in range(h * w)]) / math.sqrt(D)
            att = torch.exp(logits - logits.max())
            att = att / att.sum()
            pooled = sum(att[n] * _affine(m.v, pix[:, n]) for n in range(h * w))
            r_a = _affine(m.conv_r_a, pooled)
            a_out[b] = a[b] + _gelu(_affine(m.conv_a, r_a))
            att_out[b] = att
        if m.a2v:
            branch_a = _gelu(_affine(m.branch_a[0], a[b]))  # (C,)
            for n in range(h * w):
                branch_v = _gelu(_affine(m.branch_v[0], pix[:, n]))
                weight = branch_v * branch_a  # W at pixel n
                r = _gelu(_affine(m.conv_r, branch_v * weight))
                g1, g2 = m.tanh_gate[0].weight, m.tanh_gate[2].weight
                gate = torch.tanh(g2 @ torch.relu(g1 @ r))
                x_out[b].view(c, h * w)[:, n] = pix[:, n] + gate * r
    return x_out, a_out, att_out


@pytest.mark.parametrize("direction", ["both", "a2v", "v2a"])
def test_dam_matches_the_paper_formulas(direction):
    m = DAM(channels=C, dim=D, dropout=0.3, direction=direction).double().eval()
    x, a = _inputs()
    with torch.no_grad():
        x1, a1, att = m(x, a)
        ref_x, ref_a, ref_att = _paper_dam(m, x, a)
    torch.testing.assert_close(x1, ref_x, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(a1, ref_a, atol=1e-12, rtol=1e-10)
    if direction == "a2v":
        assert att is None and torch.equal(a1, a)  # audio untouched without V2A
        assert not hasattr(m, "q")
    else:
        torch.testing.assert_close(att, ref_att, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(att.sum(-1), torch.ones(2, dtype=torch.float64))
    if direction == "v2a":
        assert torch.equal(x1, x) and not hasattr(m, "branch_v")
    else:
        assert not torch.allclose(x1, x)


def test_halves_are_independent_of_each_other():
    """'both' = the a2v module's x and the v2a module's (a, att), with shared weights."""
    both = DAM(channels=C, dim=D, direction="both").double().eval()
    a2v = DAM(channels=C, dim=D, direction="a2v").double().eval()
    v2a = DAM(channels=C, dim=D, direction="v2a").double().eval()
    a2v.load_state_dict(both.state_dict(), strict=False)
    v2a.load_state_dict(both.state_dict(), strict=False)
    assert set(a2v.state_dict()) | set(v2a.state_dict()) == set(both.state_dict())
    x, a = _inputs()
    with torch.no_grad():
        xb, ab, attb = both(x, a)
        assert torch.equal(a2v(x, a)[0], xb)
        _, av, attv = v2a(x, a)
    assert torch.equal(av, ab) and torch.equal(attv, attb)


def test_dropout_is_active_in_training_only():
    m = DAM(channels=C, dim=D, dropout=0.5).double()
    x, a = _inputs()
    with torch.no_grad():
        assert not torch.equal(m.train()(x, a)[0], m(x, a)[0])
        assert torch.equal(m.eval()(x, a)[0], m(x, a)[0])


def test_add_concat_none():
    x, a = _inputs()
    add = AddFusion(channels=C, dim=D).double()
    y, a1, att = add(x, a)
    ref = x + (a @ add.proj.weight.T + add.proj.bias)[:, :, None, None]
    torch.testing.assert_close(y, ref)
    assert torch.equal(a1, a) and att is None

    cat = ConcatFusion(channels=C, dim=D).double()
    y, a1, att = cat(x, a)
    w = cat.proj.weight[:, :, 0, 0]  # (C, C + D)
    ref = torch.einsum("oc,bchw->bohw", w[:, :C], x) + (a @ w[:, C:].T)[:, :, None, None]
    torch.testing.assert_close(y, ref + cat.proj.bias[None, :, None, None])
    assert torch.equal(a1, a) and att is None

    y, a1, att = NoFusion()(x, a)
    assert y is x and a1 is a and att is None


@pytest.mark.parametrize(
    "fusion,direction,kind",
    [
        ("dam", "both", DAM),
        ("dam", "v2a", DAM),
        ("add", "both", AddFusion),
        ("concat", "both", ConcatFusion),
        ("none", "both", NoFusion),
    ],
)
def test_build_fusion_follows_the_config(fusion, direction, kind):
    cfg = SelMConfig(dim=D, fusion=fusion, dam_direction=direction, dropout=0.25)
    m = build_fusion(cfg, C)
    assert type(m) is kind
    if kind is DAM:
        assert (m.a2v, m.v2a) == (direction != "v2a", True)
        assert all(d.p == 0.25 for d in m.modules() if isinstance(d, torch.nn.Dropout))


def test_official_variant_is_dispatched():
    m = build_fusion(SelMConfig(dim=D, dam_variant="official"), C)
    assert isinstance(m, OfficialDAM) and m.a2v_key.in_channels == D
    assert m.vis_project.in_channels == C


def test_bad_direction():
    with pytest.raises(ValueError, match="direction"):
        DAM(channels=C, dim=D, direction="sideways")
