import pytest

from selm.config import SelMConfig, get_config, preset_names


def test_presets_exist_and_differ():
    assert {"selm_r50", "selm_pvt_b5", "selm_tiny"} <= set(preset_names())
    r50, pvt, tiny = (get_config(n) for n in ("selm_r50", "selm_pvt_b5", "selm_tiny"))
    assert (r50.backbone, r50.input_size, r50.mask_upsample_steps) == ("resnet50", 224, 2)
    assert (pvt.backbone, pvt.input_size, pvt.out_size, pvt.mask_upsample_steps) == (
        "pvt_v2_b5",
        448,
        224,
        1,
    )
    assert pvt.grids == (28, 56, 112) and r50.grids == (14, 28, 56)
    assert tiny.vggish == "slim" and tiny.backbone == "pvt_v2_b0"


def test_pvt_at_224_works():
    cfg = get_config("selm_pvt_b5", input_size=224, output_size=None, mask_upsample_steps=2)
    assert cfg.grids == (14, 28, 56) and cfg.out_size == 224


def test_unknown_key_names_the_key():
    with pytest.raises(KeyError, match="not_a_field"):
        SelMConfig.from_dict({"not_a_field": 1})
    with pytest.raises(KeyError, match="selm_nope"):
        get_config("selm_nope")


@pytest.mark.parametrize(
    "field,value", [("fusion", "sum"), ("bcsm_direction", "up"), ("loss", "dice"), ("dim", 48)]
)
def test_bad_values_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        SelMConfig(**{field: value})


def test_round_trip_through_dict():
    cfg = get_config("selm_tiny", pos_grid=[4, 8, 16], aux_weights=[0, 0, 1])
    again = SelMConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.pos_grid == (4, 8, 16)


@pytest.mark.parametrize(
    "field, value",
    [
        ("dim", -32),
        ("dim", 0),
        ("num_classes", 10**9),
        ("num_classes", 0),
        ("input_size", 3_200_000),
        ("input_size", 0),
        ("num_frames", 10**6),
        ("bcsm_depth", 0),
        ("mamba_d_state", -16),
        ("output_size", 0),
        ("dropout", float("nan")),
        ("dropout", 1.5),
        ("pos_grid", (14, 28, -56)),
        ("aux_weights", (0.1, float("inf"), 0.1)),
    ],
)
def test_out_of_range_values_are_refused_before_torch_sees_them(field, value, tmp_path):
    """A damaged config.json (dim=-32, num_classes=1e9, input_size=3.2e6) is one clear error
    when it is read, never a failure deep inside torch or a 52-TiB allocation."""
    import json

    from selm.weights.checkpoint import CONFIG_NAME, read_config
    from selm.weights.state_dict import CheckpointError

    with pytest.raises(ValueError, match=f"SelMConfig.{field}="):
        get_config("selm_tiny", **{field: value})
    payload = {"model_type": "selm", "config": {**get_config("selm_tiny").to_dict()}}
    payload["config"][field] = list(value) if isinstance(value, tuple) else value
    (tmp_path / CONFIG_NAME).write_text(json.dumps(payload))
    with pytest.raises(CheckpointError, match=f"not a valid SelM config .*{field}="):
        read_config(tmp_path)
