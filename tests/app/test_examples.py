"""app.examples: the example clips and the checkpoints offered in the pickers."""

from __future__ import annotations

import json

import pytest

from app.examples import checkpoint_info, find_checkpoints, find_examples


def test_find_examples_with_descriptions(tmp_path):
    for name in ("b.mp4", "a.webm", "notes.txt", "c.MOV"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "examples.json").write_text(json.dumps({"a.webm": "one sounding object"}))
    examples = find_examples(tmp_path)
    assert [e.name for e in examples] == ["a.webm", "b.mp4", "c.MOV"]
    assert examples[0].label == "a.webm: one sounding object" and examples[1].label == "b.mp4"
    assert examples[0].path == (tmp_path / "a.webm").resolve()
    assert find_examples(tmp_path / "missing") == []


def test_bad_descriptions_file_names_itself(tmp_path):
    (tmp_path / "examples.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="examples.json: expected a JSON object"):
        find_examples(tmp_path)


def make_checkpoint(path):
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"")
    return path


def test_default_checkpoint_and_its_siblings(tmp_path):
    default = make_checkpoint(tmp_path / "selm-synth")
    make_checkpoint(tmp_path / "selm-synth-no-bcsm")
    make_checkpoint(tmp_path / "a-first")
    (tmp_path / "not-a-checkpoint").mkdir()
    found = find_checkpoints(None, default)
    assert list(found) == ["selm-synth", "a-first", "selm-synth-no-bcsm"]
    assert found["selm-synth"] == str(default)


def test_given_checkpoints_are_used_as_given(tmp_path):
    a = make_checkpoint(tmp_path / "x" / "model")
    b = make_checkpoint(tmp_path / "y" / "model")
    found = find_checkpoints([str(a), "user/selm-repo", str(b), str(a)], tmp_path / "unused")
    assert list(found.values()) == [str(a), "user/selm-repo", str(b)]
    assert list(found)[:2] == ["model", "user/selm-repo"] and list(found)[2] == str(b)


def test_examples_say_which_shape_is_which_category(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"x")
    meta = {"a.mp4": {"description": "drum sounds", "objects": {"drum": "blue triangle"}}}
    (tmp_path / "examples.json").write_text(json.dumps(meta))
    assert find_examples(tmp_path)[0].label == "a.mp4: drum sounds | drum = blue triangle"


def test_shipped_examples_name_their_shapes():
    from pathlib import Path

    shipped = find_examples(Path(__file__).resolve().parents[2] / "assets" / "examples")
    assert shipped and all(ex.objects for ex in shipped)


def test_checkpoint_info_reads_evaluation_and_card(tmp_path):
    ckpt = make_checkpoint(tmp_path / "selm-real")
    (ckpt / "config.json").write_text(
        json.dumps({"config": {"input_size": 224}, "training": {"j_legacy": 0.5}})
    )
    (ckpt / "evaluation.json").write_text(
        json.dumps(
            {
                "test": {"J": 0.8123, "F": [0.7, 0.9], "fpr": {"value": 0.05, "ci": [0.01, 0.1]}},
                "clips": 100,
                "note": "text is left out",
            }
        )
    )
    (ckpt / "README.md").write_text("---\nlicense: mit\ndatasets:\n- AVSBench-S4\n---\n# card\n")
    info = checkpoint_info(str(ckpt), "selm-real")
    assert info.evaluation == {
        "test / J": "0.812",
        "test / F": "[0.700, 0.900]",
        "test / fpr": "0.050 [0.010, 0.100]",
        "clips": "100",
    }
    assert info.trained_on == "AVSBench-S4" and not info.synthetic and info.input_size == 224
    assert (
        info.label == "selm-real | AVSBench-S4 | 224 px | test / J 0.812, test / F [0.700, 0.900]"
    )
    table = info.evaluation_markdown()
    assert "| test / fpr | 0.050 [0.010, 0.100] |" in table and "| metric | value |" in table


def test_checkpoint_without_records_still_describes_itself(tmp_path):
    ckpt = make_checkpoint(tmp_path / "selm-synth")
    (ckpt / "config.json").write_text(
        json.dumps({"config": {"input_size": 96}, "training": {"j_legacy": 0.861}})
    )
    (ckpt / "README.md").write_text("no front matter here")
    info = checkpoint_info(str(ckpt))
    assert info.synthetic and info.trained_on == "AVS-Synth (synthetic shapes)"
    assert info.label == "selm-synth | AVS-Synth (synthetic shapes) | 96 px | val M_J 0.861"
    assert info.evaluation == {} and "no evaluation recorded" in info.evaluation_markdown()
    broken = make_checkpoint(tmp_path / "other")
    (broken / "config.json").write_text("{not json")
    (broken / "evaluation.json").write_text("[1, 2]")
    info = checkpoint_info(str(broken))
    assert info.trained_on == "unknown data" and info.input_size is None and info.headline == ""
    assert checkpoint_info("official:s4_r50").name == "official:s4_r50"


def test_an_example_names_the_checkpoint_its_description_compares(tmp_path):
    from app.settings import DemoSettings, default_compare

    (tmp_path / "hard_ms3_test_00003.mp4").write_bytes(b"x")
    (tmp_path / "plain.mp4").write_bytes(b"x")
    entry = {"description": "look here", "objects": {"drum": "blue triangle"}}
    meta = {"hard_ms3_test_00003.mp4": {**entry, "compare": "selm-hard-no_dam"}}
    (tmp_path / "examples.json").write_text(json.dumps(meta))
    examples = find_examples(tmp_path)
    assert [e.compare for e in examples] == ["selm-hard-no_dam", None]
    listed = {n: f"/ckpt/{n}" for n in ("selm-hard", "selm-hard-no_dam", "selm-hard-x")}
    settings = DemoSettings(checkpoints=listed, examples=examples)
    assert default_compare(settings) == "selm-hard-no_dam"
    listed.pop("selm-hard-no_dam")  # not listed: the last local checkpoint, as before
    assert default_compare(DemoSettings(checkpoints=listed, examples=examples)) == "selm-hard-x"
    official = {**listed, "official:s4_r50": "official:s4_r50"}
    assert default_compare(DemoSettings(checkpoints=official, examples=[])) == "selm-hard-x"
