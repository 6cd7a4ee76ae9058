"""train.family_ship: every family sibling differs from the default in one field, and the
siblings shipped are those farthest from it."""

from train.family_ship import DEFAULT, choose_siblings, config_difference
from train.run_family import family_configs


def test_each_family_sibling_differs_from_the_default_in_exactly_one_field():
    configs = family_configs()
    assert configs[0].stem == DEFAULT
    expected = {
        "no_bcsm": ("model.bcsm", True, False),
        "no_dam": ("model.fusion", "dam", "none"),
        "dam_a2v": ("model.dam_direction", "both", "a2v"),
        "dam_v2a": ("model.dam_direction", "both", "v2a"),
        "bcsm_a2v": ("model.bcsm_direction", "both", "a2v"),
        "bcsm_v2a": ("model.bcsm_direction", "both", "v2a"),
        "single_level": ("model.decoder", "clever", "single_level"),
        "clever_audio": ("model.clever_cross_attention", "both", "audio"),
        "clever_video": ("model.clever_cross_attention", "both", "video"),
        "loss_bce": ("model.loss", "bce+dice+aux", "bce"),
        "loss_bce_dice": ("model.loss", "bce+dice+aux", "bce+dice"),
        "full_head": ("model.mask_head", "light", "full"),
    }
    siblings = {c.stem: c for c in configs[1:]}
    assert set(siblings) == set(expected)
    for name, (key, before, after) in expected.items():
        assert config_difference(siblings[name], configs[0]) == {key: (before, after)}, name
    assert config_difference(configs[0], configs[0]) == {}


def test_shipped_siblings_are_those_farthest_from_the_default():
    def entry(d_score, d_mj):
        return {"paired_vs_reference": {"illusion_score": {"diff": d_score}, "m_j": {"diff": d_mj}}}

    result = {
        "reference": "default",
        "models": {
            "default": {},
            "a": entry(0.01, 0.3),
            "b": entry(-0.2, 0.0),
            "c": entry(0.1, 0.0),
            "d": entry(0.1, 0.2),
            "e": entry(0.0, 0.0),
        },
    }
    assert choose_siblings(result, 3) == ["b", "d", "c"]
