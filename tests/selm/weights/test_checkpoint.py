"""selm.weights.checkpoint: saving and loading strictly, broken files refused with a clear
error, the shipped checkpoints unchanged."""

import json
from pathlib import Path

import pytest
import torch

from selm import build_selm, load_pretrained, save_pretrained
from selm.weights.checkpoint import CONFIG_NAME, WEIGHTS_NAME, CheckpointError

SMALL = dict(input_size=64, num_frames=2)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(1)
    model = build_selm("selm_tiny", **SMALL).eval()
    path = save_pretrained(model, tmp_path_factory.mktemp("ckpt") / "tiny")
    return model, path


def test_round_trip_gives_identical_outputs(saved):
    model, path = saved
    assert sorted(p.name for p in path.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]  # no temp files
    again = load_pretrained(path)
    assert again.config == model.config
    frames, audio = torch.randn(1, 2, 3, 64, 64), torch.randn(1, 2, 1, 96, 64)
    with torch.no_grad():
        assert torch.equal(model(frames, audio).logits, again(frames, audio).logits)


def test_corrupted_weights_give_clear_error(saved, tmp_path):
    _, path = saved
    (tmp_path / CONFIG_NAME).write_text((path / CONFIG_NAME).read_text())
    (tmp_path / WEIGHTS_NAME).write_bytes((path / WEIGHTS_NAME).read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupted"):
        load_pretrained(tmp_path)


def test_config_weights_mismatch_lists_keys(saved, tmp_path):
    _, path = saved
    payload = json.loads((path / CONFIG_NAME).read_text())
    payload["config"]["dim"] = 96
    (tmp_path / CONFIG_NAME).write_text(json.dumps(payload))
    (tmp_path / WEIGHTS_NAME).write_bytes((path / WEIGHTS_NAME).read_bytes())
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_pretrained(tmp_path)
    payload["config"]["dim"] = 64
    payload["config"]["bcsm"] = False
    (tmp_path / CONFIG_NAME).write_text(json.dumps(payload))
    with pytest.raises(CheckpointError, match="unexpected"):
        load_pretrained(tmp_path)


def test_bad_config_json(saved, tmp_path):
    _, path = saved
    (tmp_path / CONFIG_NAME).write_text("{not json")
    (tmp_path / WEIGHTS_NAME).write_bytes((path / WEIGHTS_NAME).read_bytes())
    with pytest.raises(CheckpointError, match="not a valid SelM config"):
        load_pretrained(tmp_path)


def test_failed_save_leaves_previous_checkpoint_intact(saved, tmp_path, monkeypatch):
    model, _ = saved
    save_pretrained(model, tmp_path)
    before = (tmp_path / WEIGHTS_NAME).read_bytes()
    import selm.weights.checkpoint as ckpt

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", boom)
    with pytest.raises(OSError):
        save_pretrained(model, tmp_path)
    assert (tmp_path / WEIGHTS_NAME).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]


# logits on a fixed input, computed with the code before the `selm.modeling` move (commit
# b19462d; selm-hard: when it was shipped): the shipped checkpoints (selm-synth's config.json
# still names the retired weight-source keys) must load unchanged and compute the same numbers
SHIPPED = Path(__file__).parents[2] / "assets" / "checkpoints"
REFERENCE_LOGITS = {  # mean, std, logits[0, 2, 0, 10, 20]
    "selm-hard": (-8.502654, 4.685565, -13.426809),  # the family default (light mask head)
    "selm-synth": (-12.167857, 3.120062, -7.676706),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_LOGITS))
def test_shipped_checkpoints_load_unchanged(name):
    if not (SHIPPED / name).is_dir():
        pytest.skip(f"{name} is no longer shipped")
    model = load_pretrained(SHIPPED / name)
    g = torch.Generator().manual_seed(0)
    s = model.config.input_size
    frames = torch.randn(1, 5, 3, s, s, generator=g)
    audio = torch.randn(1, 5, 1, 96, 64, generator=g)
    with torch.no_grad():
        logits = model(frames, audio).logits.double()
    got = (logits.mean().item(), logits.std().item(), logits[0, 2, 0, 10, 20].item())
    assert got == pytest.approx(REFERENCE_LOGITS[name], abs=2e-5)
