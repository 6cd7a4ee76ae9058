"""Converting the published checkpoints: for each of the six released layouts (names and shapes
from tests/data/official/*.tsv, values random), every tensor lands where it should, the model
loads strictly and runs; mismatches give one clear error; the CLI writes a loadable checkpoint."""

import json
import math
import zlib
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from selm.checkpoint import load_pretrained, read_config
from selm.config import get_config
from selm.convert import ConversionError, convert_official, describe, main
from selm.modeling.vggish import VGGish
from selm.official_presets import official_preset_name

LAYOUTS = Path(__file__).parents[1] / "data" / "official"
NAMES = [(s, b) for s in ("s4", "ms3", "avss") for b in ("r50", "pvt")]
_UNIFORM = torch.rand(1 << 23, generator=torch.Generator().manual_seed(0))  # 8M values
_WEIGHTS, _VECTORS = 0.04 * _UNIFORM - 0.02, 0.5 + _UNIFORM  # U(-0.02, 0.02), U(0.5, 1.5)

# published name -> ours, written out by hand (independent of selm.convert's rules)
SPOTS = {
    "r50": {
        "resnet.conv1.weight": "encoder.backbone.model.conv1.weight",
        "resnet.layer2.3.bn3.num_batches_tracked": "encoder.backbone.model.layer2.3.bn3.num_batches_tracked",
        "resnet.layer3_1.5.conv2.weight": "encoder.backbone.model.layer3.5.conv2.weight",
        "resnet.layer4_1.0.downsample.1.running_var": "encoder.backbone.model.layer4.0.downsample.1.running_var",
        "DAM_Fusion4.fusion.audio_visual_att.align_audio.f_key.0.weight": "encoder.dam.3.v2a_key.weight",
        "DAM_Fusion2.fusion.audio_visual_att.align_vis.query_conv2.0.bias": "encoder.dam.1.a2v_query2.bias",
        "DAM_Fusion1.gate.2.weight": "encoder.dam.0.gate.2.weight",
        "in_proj3.1.bias": "proj.2.1.bias",
        "BCSM.audio_encoder.2.layers.1.mamba_block.A_log": "bcsm.audio_encoder.2.layers.1.mamba_block.A_log",
        "BCSM.vis_linear.3.weight": "bcsm.vis_linear.3.weight",
        "audio_norm.weight": "encoder.audio_norm.weight",
    },
    "pvt": {
        "encoder_backbone.patch_embed1.proj.weight": "encoder.backbone.model.patch_embed.proj.weight",
        "encoder_backbone.patch_embed3.norm.bias": "encoder.backbone.model.stages.2.downsample.norm.bias",
        "encoder_backbone.block3.39.mlp.dwconv.dwconv.weight": "encoder.backbone.model.stages.2.blocks.39.mlp.dwconv.weight",
        "encoder_backbone.block1.2.attn.sr.weight": "encoder.backbone.model.stages.0.blocks.2.attn.sr.weight",
        "encoder_backbone.norm4.weight": "encoder.backbone.model.stages.3.norm.weight",
        "encoder_backbone.DAM_Fusion2.fusion.audio_visual_att.vis_out.0.bias": "encoder.dam.1.a2v_out.bias",
        "encoder_backbone.DAM_Fusion3.audio_out_conv.0.weight": "encoder.dam.2.audio_out_conv.weight",
        "tem_att.video_gated.3.0.weight": "bcsm.video_gated.3.0.weight",
        "in_proj1.0.weight": "proj.0.0.weight",
        "audio_proj.bias": "encoder.audio_proj.bias",
    },
    "both": {
        "decoder.layers.2.positional_embedding": "decoder.layers.2.positional_embedding",
        "decoder.layers.0.loadtoken.normk.weight": "decoder.layers.0.loadtoken.normk.weight",
        "decoder.cgattention3.tau": "decoder.cgattention3.tau",
        "decoder.fuses.1.fusion.4.bias": "decoder.fuses.1.fusion.4.bias",
        "decoder.proj.vis.1.0.weight": "decoder.proj.vis.1.0.weight",
        "decoder.proj.audio_linear.weight": "decoder.proj.audio_linear.weight",
    },
}


def shapes(setting: str, backbone: str) -> dict[str, tuple[int, ...]]:
    lines = (LAYOUTS / f"{setting}_selm_{backbone}.tsv").read_text().splitlines()
    count = int(lines[0].split(": ")[1].split()[0])  # "# official ...: 1078 tensors, ..."
    rows = [line.split("\t") for line in lines[1:]]
    assert len(rows) == count
    return {k: tuple(int(s) for s in v.strip("()").split(",") if s.strip()) for k, v in rows}


def published(setting: str, backbone: str) -> dict[str, torch.Tensor]:
    """A state dict with the published names and shapes. Values: views into a random pool at an
    offset per name (distinct per tensor, no copies): weights U(-0.02, 0.02), vectors (norms,
    biases, BatchNorm statistics) U(0.5, 1.5)."""
    state = {}
    for i, (key, shape) in enumerate(shapes(setting, backbone).items()):
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(i)
            continue
        pool, n = _WEIGHTS if len(shape) > 1 else _VECTORS, math.prod(shape)
        offset = zlib.crc32(key.encode()) % (len(pool) - n)
        state[key] = pool[offset : offset + n].view(shape)
    return state


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
        _convert(state, backbone="pvt")
    with pytest.raises(ConversionError, match="not the released ms3 .* fits --setting s4"):
        _convert(state, setting="ms3")
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
        _convert({"foo.weight": torch.zeros(1)})


def test_cli_errors_are_messages_not_tracebacks(tmp_path, capsys):
    bogus = tmp_path / "bogus.pth"
    torch.save({"epoch": 3, "state_dict": {"module.foo.weight": torch.zeros(2)}}, bogus)
    assert (
        main(
            [
                str(bogus),
                "--setting",
                "s4",
                "--backbone",
                "r50",
                "--out",
                str(tmp_path / "out"),
                "--embeddings-only",
            ]
        )
        == 2
    )
    assert (
        main(
            [
                str(tmp_path / "absent.pth"),
                "--setting",
                "s4",
                "--backbone",
                "r50",
                "--out",
                str(tmp_path / "out"),
                "--embeddings-only",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("error: ") == 2 and "Traceback" not in err
    assert "neither `resnet.*`" in err and "absent.pth: no such file" in err
    assert not (tmp_path / "out").exists()


def test_cli_writes_a_checkpoint_that_loads(tmp_path, capsys):
    """A wrapped, DataParallel-prefixed file and torchvggish weights -> config.json +
    model.safetensors that `load_pretrained` rebuilds strictly, with every value in place."""
    state = {k: v.clone() for k, v in published("s4", "r50").items()}  # own storage each
    official = tmp_path / "S4_SelM_R50.pth"
    torch.save({"epoch": 40, "state_dict": {f"module.{k}": v for k, v in state.items()}}, official)
    vggish = {k: torch.randn(v.shape) for k, v in VGGish("official").state_dict().items()}
    vggish_file = tmp_path / "vggish-10086976.pth"
    torch.save(vggish, vggish_file)
    out = tmp_path / "converted"
    assert (
        main(
            [
                str(official),
                "--setting",
                "s4",
                "--backbone",
                "r50",
                "--out",
                str(out),
                "--vggish-weights",
                str(vggish_file),
            ]
        )
        == 0
    )
    printed = capsys.readouterr()
    assert "dropped 174 unused tensors: resnet.layer3_2, resnet.layer4_2" in printed.out
    assert "encoder.vggish <- vggish-10086976.pth" in printed.out and printed.err == ""

    assert read_config(out) == get_config("selm_r50_official_s4")
    meta = json.loads((out / "config.json").read_text())["converted_from"]
    assert meta["preset"] == "selm_r50_official_s4" and meta["file"] == official.name
    model = load_pretrained(out)
    ours = model.state_dict()
    for theirs, mine in {**SPOTS["r50"], **SPOTS["both"]}.items():
        assert torch.equal(ours[mine], state[theirs]), (theirs, mine)
    for key in ("features.0.weight", "embeddings.4.bias"):
        assert torch.equal(ours[f"encoder.vggish.{key}"], vggish[key])
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert set(f.keys()) == set(ours)
