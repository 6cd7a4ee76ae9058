"""CLEVER decoder (docs/model.md, section 'CLEVER'): shapes, gradients, float64 references,
switches, release layout."""

import math
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from selm.config import SelMConfig
from selm.modeling.clever import AudioLayer, CleverDecoder, VideoCrossAttention, gather_assigned
from selm.modeling.mask_head import MaskHead

TINY = dict(input_size=64, dim=32, num_tokens=2)
OFFICIAL = Path(os.environ.get("SELM_OFFICIAL_LAYOUTS", "/work/shared/official"))


def _feats(cfg: SelMConfig, bt: int = 2, size: int | None = None) -> list[torch.Tensor]:
    size = size or cfg.input_size
    return [torch.randn(bt, cfg.dim, size // s, size // s) for s in (4, 8, 16, 32)]


def _audio(cfg: SelMConfig, bt: int = 2) -> torch.Tensor:
    return torch.randn(bt, 1, cfg.dim)


def _randomise_norms(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm)):
            with torch.no_grad():
                m.weight.copy_(1 + 0.2 * torch.randn_like(m.weight))
                m.bias.copy_(0.2 * torch.randn_like(m.bias))


@pytest.mark.parametrize(
    "overrides",
    [
        dict(input_size=224, dim=32, num_tokens=2),  # grids 14 / 28 / 56
        dict(TINY, num_classes=1),
        dict(TINY, num_classes=3),
        dict(TINY, mask_upsample_steps=1),
        dict(TINY, output_size=96, num_tokens=3),
        dict(TINY, input_size=128, output_size=64, mask_upsample_steps=1),
    ],
)
def test_output_shapes(overrides):
    cfg = SelMConfig(**overrides)
    decoder = CleverDecoder(cfg).eval()
    with torch.no_grad():
        logits, hits = decoder(_feats(cfg, bt=1), _audio(cfg, bt=1))
    assert logits.shape == (1, cfg.num_classes, cfg.out_size, cfg.out_size)
    assert [h.shape for h in hits] == [(1, cfg.num_tokens, g, g) for g in cfg.grids]
    for h in hits:  # hard assignment: exactly one token per pixel
        assert set(h.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(h.sum(1), torch.ones_like(h[:, 0]))


def test_every_trainable_parameter_gets_a_gradient():
    cfg = SelMConfig(**TINY)
    decoder = CleverDecoder(cfg).train()
    logits, hits = decoder(_feats(cfg), _audio(cfg), torch.tensor([[True], [True]]))
    loss = logits.square().mean() + sum((h * torch.randn_like(h)).sum() for h in hits)
    loss.backward()
    missing = [n for n, p in decoder.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing
    # the only frozen tensors: the release's unused `loadtoken.norm` / `loadtoken.mlp`
    frozen = {n for n, p in decoder.named_parameters() if not p.requires_grad}
    assert frozen and all(".loadtoken.norm." in n or ".loadtoken.mlp." in n for n in frozen)


def test_tau_gradient_flows_through_the_straight_through_assignment():
    attention = VideoCrossAttention(dim=32, dropout=0.0, gumbel_at_eval=False).train()
    tokens, v, pos = torch.randn(2, 2, 32), torch.randn(2, 32, 4, 4), torch.randn(16, 32)
    _, hit = attention(tokens, v, pos)
    (hit * torch.randn_like(hit)).sum().backward()
    # tau = 1 sits on the flat side of min(tau, 0): a gradient tensor, and it is exactly 0
    assert attention.tau.grad is not None and attention.tau.grad.item() == 0.0
    assert attention.q_proj.weight.grad.abs().sum() > 0  # straight-through reaches q and k
    assert attention.k_proj.weight.grad.abs().sum() > 0
    attention.zero_grad()
    with torch.no_grad():
        attention.tau.fill_(-0.5)
    _, hit = attention(tokens, v, pos)
    (hit * torch.randn_like(hit)).sum().backward()
    assert attention.tau.grad.abs().item() > 0


def test_eval_is_deterministic_and_gumbel_at_eval_is_not():
    cfg = SelMConfig(**TINY)
    feats, audio = _feats(cfg), _audio(cfg)
    decoder = CleverDecoder(cfg).eval()
    with torch.no_grad():
        a, hits_a = decoder(feats, audio)
        b, hits_b = decoder(feats, audio)
    assert torch.equal(a, b) and all(torch.equal(x, y) for x, y in zip(hits_a, hits_b))
    noisy = CleverDecoder(cfg.replace(gumbel_at_eval=True)).eval()
    with torch.no_grad():
        hits_1 = noisy(feats, audio)[1]
        hits_2 = noisy(feats, audio)[1]
    assert not torch.equal(hits_1[-1], hits_2[-1])


@torch.no_grad()
def _ln64(x, norm):
    mu = x.mean(-1, keepdim=True)
    var = (x - mu).square().mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + norm.eps) * norm.weight.double() + norm.bias.double()


@torch.no_grad()
def _lin64(x, linear):
    out = x @ linear.weight.double().T
    return out if linear.bias is None else out + linear.bias.double()


def _mlp64(x, mlp):
    hidden = _lin64(x, mlp.fc1)
    return _lin64(0.5 * hidden * (1 + torch.erf(hidden / math.sqrt(2))), mlp.fc2)


def test_video_cross_attention_matches_a_float64_loop():
    torch.manual_seed(1)
    d, k, h, w = 32, 3, 3, 4
    attention = VideoCrossAttention(dim=d, dropout=0.1, gumbel_at_eval=False)
    _randomise_norms(attention)
    attention.eval()
    tokens, v, pos = torch.randn(2, k, d), torch.randn(2, d, h, w), torch.randn(h * w, d)
    with torch.no_grad():
        new_tokens, hit = attention(tokens, v, pos)

    t64, pos64 = tokens.double(), pos.double()
    ref_tokens, ref_hit = torch.zeros(2, k, d, dtype=torch.float64), torch.zeros(2, k, h * w)
    for b in range(2):
        pixels = v[b].double().reshape(d, h * w).T + pos64  # (hw, D), row-major pixels
        vis = _ln64(pixels, attention.norm_v)
        q = _lin64(_ln64(t64[b], attention.norm_t), attention.q_proj)
        keys, values = _lin64(vis, attention.k_proj), _lin64(vis, attention.v_proj)
        q = q / q.norm(dim=-1, keepdim=True)
        keys = keys / keys.norm(dim=-1, keepdim=True)
        gathered = torch.zeros(k, d, dtype=torch.float64)
        for p in range(h * w):
            scores = [float(q[j] @ keys[p]) for j in range(k)]
            ref_hit[b, scores.index(max(scores)), p] = 1.0
        for j in range(k):
            count = ref_hit[b, j].sum().item()
            for p in range(h * w):
                gathered[j] += ref_hit[b, j, p].item() * values[p] / (count + 1)
        new = _lin64(gathered, attention.proj)
        ref_tokens[b] = _mlp64(_ln64(new + t64[b], attention.norm), attention.mlp)
    assert torch.equal(hit, ref_hit.reshape(2, k, h, w))
    torch.testing.assert_close(new_tokens.double(), ref_tokens, rtol=1e-4, atol=1e-5)


def test_gather_assigned_divides_by_pixel_count_plus_one():
    hit = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]])  # token 0 wins pixels 0, 2
    values = torch.tensor([[[1.0, 10.0], [2.0, 20.0], [4.0, 40.0]]])
    expected = torch.tensor([[[5 / 3, 50 / 3], [2 / 2, 20 / 2]]])
    torch.testing.assert_close(gather_assigned(hit, values), expected)
    nobody = gather_assigned(torch.zeros(1, 1, 3), values)  # a token that wins nothing: zero
    assert torch.equal(nobody, torch.zeros(1, 1, 2))


def _bilinear64(grid, out_h, out_w):
    """Half-pixel-centre bilinear resampling of (g, g) with edge clamping, by hand."""
    g = grid.shape[0]
    out = torch.zeros(out_h, out_w, dtype=torch.float64)

    def taps(i, scale):
        src = min(max((i + 0.5) * scale - 0.5, 0.0), g - 1.0)
        lo = int(math.floor(src))
        return lo, min(lo + 1, g - 1), src - lo

    for y in range(out_h):
        y0, y1, fy = taps(y, g / out_h)
        for x in range(out_w):
            x0, x1, fx = taps(x, g / out_w)
            top = grid[y0, x0] * (1 - fx) + grid[y0, x1] * fx
            bottom = grid[y1, x0] * (1 - fx) + grid[y1, x1] * fx
            out[y, x] = top * (1 - fy) + bottom * fy
    return out


def test_positional_embedding_is_resampled_when_the_grid_differs():
    layer = AudioLayer(dim=32, grid=4, dropout=0.0)
    assert layer.position(4, 4) is layer.positional_embedding
    pos = layer.position(6, 8)
    assert pos.shape == (48, 32)
    table = layer.positional_embedding.detach().double().reshape(4, 4, 32)  # row-major (y, x)
    for c in (0, 17):
        expected = _bilinear64(table[:, :, c], 6, 8).reshape(48)
        torch.testing.assert_close(pos[:, c].detach().double(), expected, rtol=1e-5, atol=1e-6)
    # a decoder whose input grid differs from its configured grids still runs
    cfg = SelMConfig(**TINY, pos_grid=(3, 6, 12))
    logits, hits = CleverDecoder(cfg).eval()(_feats(cfg), _audio(cfg))
    assert [h.shape[-1] for h in hits] == [4, 8, 16] and logits.shape[-1] == 64


def test_audio_step_matches_a_float64_reference_with_masked_keys():
    torch.manual_seed(2)
    d = 32
    layer = AudioLayer(dim=d, grid=2, dropout=0.1)
    _randomise_norms(layer)
    layer.eval()
    tokens, audio = torch.randn(3, 2, d), torch.randn(3, 2, d)
    valid = torch.tensor([[True, True], [True, False], [False, False]])
    with torch.no_grad():
        out = layer(tokens, audio, valid)
    assert torch.isfinite(out).all()
    load, attn = layer.loadtoken, layer.loadtoken.cross_attn
    ref = tokens.double().clone()
    for b in range(3):
        keep = valid[b].nonzero().flatten().tolist()
        if keep:  # frames with no valid audio token keep their last token as it was
            q = _lin64(_ln64(ref[b, -1], load.normq), attn.q_proj)
            key = _ln64(audio[b, keep].double(), load.normk)
            weights = torch.softmax(_lin64(key, attn.k_proj) @ q / math.sqrt(d), dim=0)
            ref[b, -1] = ref[b, -1] + _lin64(weights @ _lin64(key, attn.v_proj), attn.proj)
    ref = _mlp64(_ln64(ref, layer.norm), layer.mlp)
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-5)


def test_all_masked_audio_equals_a_zero_audio_update():
    cfg = SelMConfig(**TINY)
    decoder = CleverDecoder(cfg).eval()
    feats = _feats(cfg)
    none_valid = torch.zeros(2, 1, dtype=torch.bool)
    with torch.no_grad():
        masked, _ = decoder(feats, _audio(cfg), none_valid)
        other_audio, _ = decoder(feats, 100 * _audio(cfg), none_valid)
        for layer in decoder.layers:  # the audio update forced to zero, audio valid
            layer.loadtoken.cross_attn.proj.weight.zero_()
            layer.loadtoken.cross_attn.proj.bias.zero_()
        silent, _ = decoder(feats, _audio(cfg), None)
    assert torch.isfinite(masked).all()
    torch.testing.assert_close(masked, other_audio, rtol=0, atol=0)
    torch.testing.assert_close(masked, silent, rtol=1e-5, atol=1e-6)


def _unused(cfg: SelMConfig) -> set[str]:
    decoder = CleverDecoder(cfg).train()
    logits, hits = decoder(_feats(cfg), _audio(cfg))
    (logits.square().mean() + sum((h * torch.randn_like(h)).sum() for h in hits)).backward()
    return {n for n, p in decoder.named_parameters() if p.requires_grad and p.grad is None}


def _named(patterns: list[str], cfg: SelMConfig) -> set[str]:
    names = [n for n, p in CleverDecoder(cfg).named_parameters() if p.requires_grad]
    return {n for n in names if any(n.startswith(p) for p in patterns)}


AUDIO_STEP = ["loadtoken.", "norm.", "mlp."]
TOKEN_UPDATE = ["v_proj.", "proj.", "norm.", "mlp."]


@pytest.mark.parametrize(
    "overrides,unused",
    [
        (dict(), []),
        (
            dict(decoder="single_level"),
            [f"layers.{i}.{p}" for i in (0, 1) for p in AUDIO_STEP]
            + [f"cgattention{i}.{p}" for i in (1, 2) for p in TOKEN_UPDATE],
        ),
        (
            dict(clever_cross_attention="video"),
            [f"layers.{i}.{p}" for i in range(3) for p in AUDIO_STEP],
        ),
        (
            dict(clever_cross_attention="audio"),
            [f"cgattention{i}.{p}" for i in (1, 2, 3) for p in TOKEN_UPDATE],
        ),
        (dict(audio_attn_min_side=8), [f"layers.0.{p}" for p in AUDIO_STEP]),  # grids 4, 8, 16
    ],
)
def test_switches_decide_which_parameters_are_used(overrides, unused):
    cfg = SelMConfig(**TINY, **overrides)
    assert _unused(cfg) == _named(unused, cfg)


def test_dynamic_convolution_heads_match_hand_loops():
    torch.manual_seed(3)
    d, bt = 32, 2
    v, token = torch.randn(bt, d, 3, 3), torch.randn(bt, d)
    binary = MaskHead(dim=d, num_classes=1, upsample_steps=1).eval()
    with torch.no_grad():
        logits = binary(v, token)
        x, params = binary.vis(v), binary.audio_linear(token)
        # the release's grouped convolution: one 1x1 kernel (D weights + 1 bias) per frame
        grouped = F.conv2d(
            x.reshape(1, bt * d, 6, 6),
            params[:, :d].reshape(bt, d, 1, 1),
            bias=params[:, d],
            groups=bt,
        ).transpose(0, 1)
    assert logits.shape == (bt, 1, 6, 6)
    torch.testing.assert_close(logits, grouped, rtol=1e-5, atol=1e-5)

    semantic = MaskHead(dim=d, num_classes=3, upsample_steps=0).eval()
    assert semantic.audio_linear.out_features == 3 * d  # no per-class bias, as released
    with torch.no_grad():
        logits = semantic(v, token)
        x, params = semantic.vis(v).double(), semantic.audio_linear(token).double()
    ref = torch.zeros(bt, 3, 3, 3, dtype=torch.float64)
    for b in range(bt):
        for n in range(3):
            for c in range(d):
                ref[b, n] += params[b, n * d + c] * x[b, c]
    torch.testing.assert_close(logits.double(), ref, rtol=1e-5, atol=1e-5)


def _bilinear_float64(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bilinear upsampling by `scale` with align_corners=False by its definition: output pixel i
    samples the input at (i + 0.5) / scale - 0.5, clamped to the edges, linear weights per axis."""
    n, c, h, w = x.shape

    def axis(size: int) -> torch.Tensor:  # (scale * size, size) interpolation matrix
        m = torch.zeros(scale * size, size, dtype=torch.float64)
        for i in range(scale * size):
            pos = max((i + 0.5) / scale - 0.5, 0.0)
            lo = min(int(math.floor(pos)), size - 1)
            hi, frac = min(lo + 1, size - 1), pos - math.floor(pos)
            m[i, lo] += 1 - frac
            m[i, hi] += frac
        return m

    return torch.einsum("ih,nchw,jw->ncij", axis(h), x, axis(w))


@pytest.mark.parametrize("num_classes, steps", [(1, 2), (3, 1), (1, 0)])
def test_light_mask_head_is_the_full_head_at_low_resolution_then_upsampled(num_classes, steps):
    torch.manual_seed(7)
    d, bt, side = 32, 2, 4
    full = MaskHead(dim=d, num_classes=num_classes, upsample_steps=steps).eval()
    light = MaskHead(dim=d, num_classes=num_classes, upsample_steps=steps, light=True).eval()
    _randomise_norms(full)
    light.load_state_dict(full.state_dict())  # the same parameters, names and shapes
    assert full.state_dict().keys() == light.state_dict().keys()
    v, token = torch.randn(bt, d, side, side), torch.randn(bt, d)
    with torch.no_grad():
        got = light(v, token)
    # float64 reference: every conv block and the Conv1x1 at the input's size, the dynamic
    # kernel, then one bilinear upsampling of the logits by 2^steps
    x = v.double()
    blocks = [m for m in full.vis if isinstance(m, torch.nn.Sequential)]
    for conv, norm, _ in blocks:
        x = F.conv2d(x, conv.weight.double(), padding=1)
        x = F.group_norm(x, 32, norm.weight.double(), norm.bias.double(), eps=norm.eps)
        x = x.clamp_min(0)
    last = full.vis[-1]
    x = F.conv2d(x, last.weight.double(), last.bias.double())
    params = full.audio_linear(token).double()
    if num_classes == 1:
        ref = (torch.einsum("bd,bdhw->bhw", params[:, :d], x) + params[:, d, None, None])[:, None]
    else:
        ref = torch.einsum("bnd,bdhw->bnhw", params.unflatten(-1, (num_classes, d)), x)
    ref = _bilinear_float64(ref, 2**steps)
    side_out = side * 2**steps
    assert got.shape == (bt, num_classes, side_out, side_out)
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5)
    if steps == 0:  # nothing to move: the two heads are one computation
        torch.testing.assert_close(got, full(v, token), rtol=0, atol=0)
    else:
        assert not torch.allclose(got, full(v, token), atol=1e-3)


def test_light_mask_head_is_a_config_option_and_never_the_releases():
    from selm.presets import OFFICIAL_PRESETS

    assert SelMConfig().mask_head == "full"
    assert all(p.get("mask_head", "full") == "full" for p in OFFICIAL_PRESETS.values())
    cfg = SelMConfig(**TINY, mask_head="light")
    decoder = CleverDecoder(cfg).eval()
    assert decoder.proj.light
    with torch.no_grad():
        logits, _ = decoder(_feats(cfg, bt=1), _audio(cfg, bt=1))
    assert logits.shape == (1, 1, cfg.out_size, cfg.out_size)
    with pytest.raises(ValueError, match="mask_head='tiny'"):
        SelMConfig(**TINY, mask_head="tiny")


def _release_layout(grids, steps, num_classes, d=256):
    """The decoder part of the release's state dict, as the files in `official/` list it."""
    linear = lambda o, i, bias=True: {"weight": (o, i), **({"bias": (o,)} if bias else {})}  # noqa: E731
    norm = {"weight": (d,), "bias": (d,)}
    mlp = {"fc1": linear(2 * d, d), "fc2": linear(d, 2 * d)}
    tree = {"tokens": {"weight": (2, d)}}
    for i in (1, 2, 3):
        tree[f"cgattention{i}"] = {
            "tau": (1,),
            "norm_v": norm,
            "norm_t": norm,
            "q_proj": linear(d, d),
            "k_proj": linear(d, d),
            "v_proj": linear(d, d),
            "proj": linear(d, d),
            "norm": norm,
            "mlp": mlp,
        }
    for i, g in enumerate(grids):
        tree[f"layers.{i}"] = {
            "positional_embedding": (g * g, d),
            "loadtoken": {
                "cross_attn": {
                    "q_proj": linear(d, d, False),
                    "k_proj": linear(d, d, False),
                    "v_proj": linear(d, d, False),
                    "proj": linear(d, d),
                },
                "normq": norm,
                "normk": norm,
                "norm": norm,
                "mlp": mlp,
            },
            "norm": norm,
            "mlp": mlp,
        }
        tree[f"fuses.{i}.fusion"] = {
            "0": {"weight": (d, 2 * d, 3, 3), "bias": (d,)},
            "1": norm,
            "3": {"weight": (d, d, 3, 3), "bias": (d,)},
            "4": norm,
        }
    vis = {f"{2 * s + 1}": {"0": {"weight": (d, d, 3, 3)}, "1": norm} for s in range(steps)}
    vis[str(2 * steps)] = {"weight": (d, d, 1, 1), "bias": (d,)}
    out = d + 1 if num_classes == 1 else num_classes * d
    tree["proj"] = {"vis": vis, "audio_linear": linear(out, d)}

    def flat(node, prefix):
        if isinstance(node, tuple):
            return {prefix: node}
        return {k: v for key, sub in node.items() for k, v in flat(sub, f"{prefix}.{key}").items()}

    return {k[1:]: v for k, v in flat(tree, "").items()}


RELEASES = {
    "s4_selm_r50": dict(input_size=224, mask_upsample_steps=2),
    "s4_selm_pvt": dict(input_size=448, output_size=224, mask_upsample_steps=1),
    "avss_selm_r50": dict(input_size=224, mask_upsample_steps=2, num_classes=71),
}


def _layout(decoder):
    return {name: tuple(t.shape) for name, t in decoder.state_dict().items()}


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_parameter_names_and_shapes_follow_the_release(release):
    cfg = SelMConfig(dim=256, **RELEASES[release])
    assert _layout(CleverDecoder(cfg)) == _release_layout(
        cfg.grids, cfg.mask_upsample_steps, cfg.num_classes
    )
    listing = OFFICIAL / f"{release}.tsv"
    if not listing.exists():
        pytest.skip(f"{listing} not present: compared with the layout written out above only")
    official = {}
    for line in listing.read_text().splitlines():
        if line.startswith("decoder."):
            name, shape = line.split("\t")
            official[name.removeprefix("decoder.")] = tuple(
                int(s) for s in shape.strip("()").split(",") if s.strip()
            )
    assert _layout(CleverDecoder(cfg)) == official


@pytest.mark.parametrize(
    "feats,audio,valid,message",
    [
        (lambda f: f[:3], None, None, "4 feature maps"),
        (lambda f: f[::-1], None, None, "finest first"),
        (None, lambda a: a[:, 0], None, "audio_tokens"),
        (None, None, torch.ones(2, 1), "audio_valid"),
    ],
)
def test_bad_inputs_say_what_is_wrong(feats, audio, valid, message):
    cfg = SelMConfig(**TINY)
    f, a = _feats(cfg), _audio(cfg)
    with pytest.raises(ValueError, match=message):
        CleverDecoder(cfg)(feats(f) if feats else f, audio(a) if audio else a, valid)
