from pathlib import Path

import pytest

from selm.config import SelMConfig, get_config
from train.config import TrainConfig, coerce, config_from_dict, load_config, parse_set

CONFIG_DIR = Path(__file__).resolve().parents[2] / "train" / "configs"
ALL_CONFIGS = sorted(CONFIG_DIR.rglob("*.yaml"))


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_yaml_selects_preset_and_overrides_both_dataclasses(tmp_path):
    cfg = load_config(
        write(
            tmp_path / "exp.yaml",
            """
setting: s4
preset: selm_r50
lr: 2e-5            # YAML reads this as a string; the field is a float
epochs: 3
model:
  bcsm: false
  input_size: 256
""",
        )
    )
    assert cfg.setting == "s4" and cfg.epochs == 3
    assert cfg.lr == pytest.approx(2e-5) and isinstance(cfg.lr, float)
    m = cfg.model_config()
    assert m == get_config("selm_r50", bcsm=False, input_size=256)
    assert m.backbone == "resnet50"  # from the preset, untouched
    assert cfg.out_dir == str(Path("runs") / "exp")  # named after the file


def test_set_overrides_after_the_file_and_dotted_model_keys(tmp_path):
    path = write(tmp_path / "a.yaml", "epochs: 5\nmodel: {fusion: add}\n")
    cfg = load_config(path, ["epochs=7", "model.fusion=none", "model.dim=96", "grad_clip=1"])
    assert cfg.epochs == 7 and cfg.grad_clip == 1.0
    assert cfg.model_config().fusion == "none" and cfg.model_config().dim == 96


def test_off_is_a_string_where_the_field_is_one(tmp_path):
    assert load_config(write(tmp_path / "a.yaml", "amp: off\n")).amp == "off"  # YAML: false
    assert load_config(None, ["amp=off"]).amp == "off"
    assert load_config(None, ["model.bcsm=off"]).model_config().bcsm is False


def test_parse_set_reads_yaml_values():
    assert parse_set(["a=false", "b=1e-3", "model.pos_grid=[2, 4, 8]", "c=null"]) == {
        "a": False,
        "b": "1e-3",
        "model": {"pos_grid": [2, 4, 8]},
        "c": None,
    }
    with pytest.raises(ValueError, match="key=value"):
        parse_set(["lr"])
    with pytest.raises(KeyError, match="model.NAME"):
        parse_set(["data.root=x"])


def test_base_chain_merges_model_sections(tmp_path):
    write(tmp_path / "base.yaml", "preset: selm_tiny\nepochs: 9\nmodel: {dim: 96, bcsm: false}\n")
    child = write(tmp_path / "child.yaml", "base: base.yaml\nepochs: 2\nmodel: {bcsm: true}\n")
    cfg = load_config(child)
    assert cfg.epochs == 2 and cfg.model == {"dim": 96, "bcsm": True}


def test_base_loop_is_an_error(tmp_path):
    write(tmp_path / "x.yaml", "base: y.yaml\n")
    write(tmp_path / "y.yaml", "base: x.yaml\n")
    with pytest.raises(ValueError, match="loop"):
        load_config(tmp_path / "x.yaml")


@pytest.mark.parametrize(
    "text,key",
    [
        ("epoch: 3\n", "epoch"),
        ("model: {fusoin: add}\n", "fusoin"),
    ],
)
def test_unknown_keys_name_the_key(tmp_path, text, key):
    with pytest.raises(KeyError, match=key):
        load_config(write(tmp_path / "bad.yaml", text))
    with pytest.raises(KeyError, match=key):
        load_config(None, [f"{'model.' if 'model' in text else ''}{key}=1"])


@pytest.mark.parametrize(
    "values,message",
    [
        ({"setting": "s5"}, "setting"),
        ({"amp": "fp8"}, "amp"),
        ({"epochs": 0}, "epochs"),
        ({"lr": "fast"}, "lr"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"tensorboard": "yes"}, "tensorboard"),
        ({"model": {"fusion": "sum"}}, "fusion"),
    ],
)
def test_bad_values_are_rejected_with_the_field_name(values, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(values)


def test_coerce_against_annotations():
    assert coerce("T", "x", 3, float) == 3.0
    assert coerce("T", "x", None, str | None) is None
    assert coerce("T", "x", [1, 2, 3], tuple[int, int, int] | None) == (1, 2, 3)
    with pytest.raises(ValueError, match="cannot be null"):
        coerce("T", "x", None, int)
    with pytest.raises(ValueError, match="expected bool"):
        coerce("T", "x", 1, bool)  # an int is not a bool


def test_defaults_build():
    cfg = TrainConfig()
    assert isinstance(cfg.model_config(), SelMConfig)


def test_there_are_configs_for_every_recipe_and_ablation():
    names = {p.relative_to(CONFIG_DIR).as_posix() for p in ALL_CONFIGS}
    for setting in ("s4", "ms3", "avss"):
        for backbone in ("r50", "pvt_b5"):
            assert f"{setting}_{backbone}.yaml" in names
    for shipped in (
        "synth_tiny",
        "synth_tiny_no_bcsm",
        "synth_tiny_no_dam",
        "synth_tiny_a2v",
        "synth_tiny_no_aux",
        "synth_tiny_s4",
        "synth_tiny_avss",
    ):
        assert f"{shipped}.yaml" in names
    ablations = [n for n in names if n.startswith("ablations/")]
    assert len(ablations) >= 12


def _ablated_fields(cfg: TrainConfig) -> dict:
    base = load_config(CONFIG_DIR / "ms3_pvt_b5.yaml").model_config().to_dict()
    return {k: v for k, v in cfg.model_config().to_dict().items() if base[k] != v}


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=lambda p: p.stem)
def test_every_config_parses(path):
    cfg = load_config(path)
    m = cfg.model_config()
    if cfg.setting == "avss":
        assert m.num_classes > 1 and m.num_frames == 10 or "synth" in path.stem
    else:
        assert m.num_classes == 1
    if path.parent.name == "ablations":  # one switch each (docs/model.md, 'Ablations'), MS3 recipe
        changed = _ablated_fields(cfg)
        assert len(changed) == 1, changed


def test_paper_recipes_follow_spec_section_10():
    expect = {"s4": (40, 0.05), "ms3": (100, 0.05), "avss": (30, 0.01)}
    for setting, (epochs, wd) in expect.items():
        for backbone in ("r50", "pvt_b5"):
            cfg = load_config(CONFIG_DIR / f"{setting}_{backbone}.yaml")
            assert cfg.setting == setting
            assert (cfg.epochs, cfg.weight_decay, cfg.lr) == (epochs, wd, 2e-5)
            assert cfg.model_config().freeze_vggish
            assert cfg.model_config().backbone == ("resnet50" if backbone == "r50" else "pvt_v2_b5")


def test_every_config_builds():
    """Each architecture once, on the meta device (no memory, no weights, no network)."""
    import torch

    from selm.build import build_selm

    seen = set()
    for path in ALL_CONFIGS:
        m = load_config(path).model_config()  # weight sources stay out of the model config
        if path.parent.name == "ablations":  # the switch on a small backbone: same code path
            m = m.replace(
                backbone="pvt_v2_b0",
                dim=64,
                vggish="slim",
                input_size=64,
                output_size=None,
                mask_upsample_steps=2,
            )
        key = m.to_json()
        if key in seen:
            continue
        seen.add(key)
        with torch.device("meta"):
            model = build_selm(m)
        assert model.config == m


def test_weight_sources_are_kept_apart_from_the_model_config():
    cfg = load_config(
        None, ["model.vggish_weights=v.pth", "model.backbone_pretrained=true", "model.dim=64"]
    )
    ws = cfg.weight_sources()
    assert (ws.vggish_weights, ws.backbone_pretrained, ws.backbone_weights) == ("v.pth", True, None)
    assert cfg.model_config().dim == 64
    assert "vggish_weights" not in cfg.model_config().to_dict()
    with pytest.raises(ValueError, match="backbone_pretrained"):
        load_config(None, ["model.backbone_pretrained=maybe"])


def test_data_options_are_checked_at_load():
    cfg = load_config(None, ["data_options={audio: wav, mask_size: 224}"])
    assert cfg.data_options.kwargs() == {"audio": "wav", "mask_size": 224}
    with pytest.raises(KeyError, match="unknown data_options key.*audoi"):
        load_config(None, ["data_options={audoi: wav}"])
    with pytest.raises(ValueError, match="data_options.mask_size"):
        load_config(None, ["data_options={mask_size: big}"])
