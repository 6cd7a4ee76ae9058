"""The demo's family example: the clip rule by hand, its one-line description, and
the mp4 + examples.json entry from a re-rendered test set."""

import json

import av
import pytest

from train.family_example import LOOKS, choose_clip, describe, write_example
from train.synth.generate import generate


def _stats(j, fp_silent, fp_noise, fp_off, neg=100):
    clips = [f"ms3_test_{i:05d}" for i in range(len(j))]
    out = {"real": {"clips": clips, "j": j, "fp": [0] * len(j), "neg": [neg] * len(j)}}
    for kind, fp in (("silent", fp_silent), ("noise", fp_noise), ("offscreen", fp_off)):
        out[kind] = {"clips": clips, "j": [0.0] * len(j), "fp": fp, "neg": [neg] * len(j)}
    return out


def test_the_clip_rule_by_hand():
    # two seeds each; per clip |dJ| + sum |dFPR| over silent, noise, off-screen
    default = [_stats([0.8, 0.5, 0.2], [0, 10, 0], [0, 0, 0], [0, 0, 0]),
               _stats([0.6, 0.5, 0.2], [0, 30, 0], [0, 0, 0], [0, 0, 0])]  # fmt: skip
    sibling = [_stats([0.2, 0.5, 0.3], [0, 0, 0], [0, 0, 0], [0, 0, 0]),
               _stats([0.2, 0.5, 0.3], [0, 0, 0], [0, 0, 0], [0, 0, 0])]  # fmt: skip
    # clip 0: |0.7 - 0.2| = 0.5; clip 1: |0.2 - 0| (silent FPR 0.2) = 0.2; clip 2: 0.1
    choice = choose_clip(default, sibling)
    assert choice["clip"] == "ms3_test_00000"
    assert choice["score"] == pytest.approx(0.5)
    assert choice["default"]["j"] == pytest.approx(0.7) and choice["sibling"]["j"] == 0.2
    default[0]["silent"]["fp"] = [0, 90, 0]  # clip 1: silent FPR 0.6 on average -> 0.6 > 0.5
    choice = choose_clip(default, sibling)
    assert choice["clip"] == "ms3_test_00001" and choice["score"] == pytest.approx(0.6)
    assert choice["default"]["silent"] == pytest.approx(0.6)
    other = [_stats([0.1, 0.1], [0, 0], [0, 0], [0, 0])]
    with pytest.raises(ValueError, match="different clips"):
        choose_clip(default, other)


CHOICE = {
    "default": {"j": 0.5, "silent": 0.0, "noise": 0.0, "offscreen": 0.0},
    "sibling": {"j": 0.4, "silent": 0.0, "noise": 0.1, "offscreen": 0.0},
}


def test_the_description_names_objects_and_what_to_look_at():
    meta = {
        "name": "ms3_test_00004",
        "seed": 2027,
        "snr_db": 6.4,
        "objects": [
            {"category": "drum", "sounding_seconds": [0, 1]},
            {"category": "bird", "sounding_seconds": []},
        ],
        "offscreen": [{"category": "voice"}],
    }
    two = {**meta, "objects": [{"category": c, "sounding_seconds": [1]} for c in ("horn", "siren")]}
    assert "horn and siren sound;" in describe(two, {**CHOICE}, "x", "y")["description"]
    choice = {
        "default": {"j": 0.61, "silent": 0.01, "noise": 0.02, "offscreen": 0.3},
        "sibling": {"j": 0.2, "silent": 0.01, "noise": 0.02, "offscreen": 0.05},
    }
    entry = describe(meta, choice, "selm-hard", "selm-hard-no_dam")
    assert entry["objects"] == {"drum": "blue triangle", "bird": "green star"}
    text = entry["description"]
    assert (
        "drum sound" in text and "bird visible but silent" in text and "off-screen: voice" in text
    )
    assert entry["look"].startswith("Look at: Compare tab, selm-hard vs selm-hard-no_dam.")
    assert "J 0.61 vs 0.20" in text and "an off-screen sound" in text and "30.0% vs 5.0%" in text
    assert set(LOOKS) == {"horn", "guitar", "drum", "bird", "siren", "engine", "fountain", "voice"}


def test_write_example_copies_the_same_clip_rendered_larger(tmp_path):
    sizes = {"train": 0, "val": 0, "test": 2}
    common = dict(seed=11, layouts=("ms3",), sizes=sizes, progress=False, workers=1)
    test = generate(tmp_path / "test", size=32, difficulty="hard", **common)
    render = generate(tmp_path / "render", size=64, mp4=True, difficulty="hard", **common)
    examples = tmp_path / "examples"
    examples.mkdir()
    (examples / "examples.json").write_text(json.dumps({"keep.mp4": "an older example"}))
    (examples / "hard_ms3_test_00009.mp4").write_bytes(b"an earlier family example")
    choice = {
        "clip": "ms3_test_00001",
        "score": 0.4,
        "default": {"j": 0.5, "silent": 0.0, "noise": 0.1, "offscreen": 0.0},
        "sibling": {"j": 0.3, "silent": 0.0, "noise": 0.0, "offscreen": 0.0},
    }
    path = write_example(test, render, choice, examples, "selm-hard", "selm-hard-x")
    assert path == examples / "hard_ms3_test_00001.mp4"
    assert sorted(p.name for p in examples.iterdir()) == [
        "examples.json",
        "hard_ms3_test_00001.mp4",
    ]
    with av.open(str(path)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (64, 64)
        assert c.streams.audio
    entries = json.loads((examples / "examples.json").read_text())
    assert entries["keep.mp4"] == "an older example"
    assert "Look at: Compare tab, selm-hard vs selm-hard-x" in entries[path.name]["description"]
    assert entries[path.name]["compare"] == "selm-hard-x"  # the Compare tab's first choice
    other = generate(
        tmp_path / "other", size=64, mp4=True, difficulty="hard", **{**common, "seed": 12}
    )
    with pytest.raises(ValueError, match="does not hold the same clip"):
        write_example(test, other, choice, examples, "selm-hard", "selm-hard-x")
    with pytest.raises(ValueError, match="is not a clip of"):
        write_example(test, render, {**choice, "clip": "ms3_test_00077"}, examples, "a", "b")
