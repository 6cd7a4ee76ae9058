"""app.examples: the example clips and the checkpoints offered in the pickers."""

from __future__ import annotations

import json

import pytest

from app.examples import find_checkpoints, find_examples


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
