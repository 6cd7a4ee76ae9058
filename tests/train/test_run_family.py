"""The family driver's CPU dry run: every config trains a few steps, is evaluated
on a fresh hard test set, lands in one table, and the shipped folders carry model cards."""

import json
import sys

import pytest

from selm.weights.resolve import load_pretrained
from train.run_family import family_configs, main


@pytest.mark.slow
def test_dry_run_trains_evaluates_tables_and_ships_every_config(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["python -m train.run_family"])
    out, ship, examples = tmp_path / "family", tmp_path / "ship", tmp_path / "examples"
    argv = ["--out", str(out), "--dry-run", "--ship", str(ship), "--jobs", "2"]
    argv += ["--examples", str(examples), "--example-size", "64"]
    assert main(argv) == 0
    names = [c.stem for c in family_configs()]
    result = json.loads((out / "comparison.json").read_text())
    assert list(result["models"]) == names  # the default first, every sibling
    md = (out / "comparison.md").read_text()
    assert all(f"| {n}" in md for n in names)
    assert (out / "comparison.png").is_file()
    for n in names:
        assert (out / n / "seed0" / "best" / "model.safetensors").is_file()
    shipped = sorted(p.name for p in ship.iterdir() if p.is_dir())
    assert len(shipped) == 5 and "selm-hard" in shipped
    for folder in shipped:
        card = (ship / folder / "README.md").read_text()
        assert card.startswith("---\n") and "model-index:" in card and "Wall time" in card
        row = json.loads((ship / folder / "evaluation.json").read_text())
        assert {"mean", "low", "high"} <= set(row["summary"]["m_j"])
        load_pretrained(ship / folder)
    assert "every config" in (ship / "README.md").read_text().lower()
    clip = json.loads((examples / "examples.json").read_text())
    ((name, entry),) = clip.items()
    assert name.startswith("hard_ms3_test_") and (examples / name).is_file()
    assert "Look at: Compare tab, selm-hard vs selm-hard-" in entry["description"]
    record = json.loads((out / "family.json").read_text())
    assert len(record["runs"]) == len(names) and all("train_s" in r for r in record["runs"])
