"""`python -m train.evaluate`: the report, masks and a checkpoint round trip; the release's
test protocol loads the model with both of its switches."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from scoring_kit import loader

from selm.build import build_selm
from selm.weights.checkpoint import read_config, save_pretrained
from train.batch import predict_logits
from train.evaluate import COUNTERFACTUAL_SETS, evaluate_checkpoint, main
from train.scoring import evaluate_model


def test_cli_report_masks_and_checkpoint_round_trip(synth_root, tmp_path, capsys):
    torch.manual_seed(0)
    model = build_selm("selm_tiny", input_size=64, dim=32, bcsm_depth=1).eval()
    ckpt = save_pretrained(model, tmp_path / "ckpt")
    out, masks = tmp_path / "report.json", tmp_path / "masks"
    assert (
        main(
            [
                "--checkpoint",
                str(ckpt),
                "--data",
                str(synth_root),
                "--setting",
                "s4",
                "--out",
                str(out),
                "--save-masks",
                str(masks),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report["batch_size"] == 2 and report["metrics"]["legacy_batch_size"] == 2
    assert set(report["counterfactual"]) == set(COUNTERFACTUAL_SETS)
    assert "j_legacy" in report["definitions"]
    direct = evaluate_model(model, loader(synth_root, "s4"), setting="s4")
    assert report["metrics"]["j_legacy"] == pytest.approx(direct["j_legacy"], abs=1e-12)
    pngs = sorted(masks.rglob("*.png"))
    assert len(pngs) == report["metrics"]["num_frames"]
    first = next(iter(loader(synth_root, "s4", batch_size=1)))
    logits = predict_logits(model, first, torch.device("cpu"))
    png = np.asarray(
        Image.open(masks / first["category"][0] / first["name"][0] / f"{first['name'][0]}_1.png")
    )
    assert set(np.unique(png)) <= {0, 255}
    assert np.array_equal(png == 255, (logits[0, 0, 0] > 0).numpy())
    assert "report written" in capsys.readouterr().out


def test_release_protocol_loads_the_model_with_both_release_switches(
    synth_root, tmp_path, monkeypatch
):
    import selm.weights.resolve

    torch.manual_seed(0)
    ckpt = save_pretrained(build_selm("selm_tiny", input_size=64, dim=32, bcsm_depth=1), tmp_path)
    real, loaded = selm.weights.resolve.load_pretrained, []

    def recording(*args, **kwargs):
        loaded.append(real(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(selm.weights.resolve, "load_pretrained", recording)
    torch.manual_seed(5)
    report = evaluate_checkpoint(
        str(ckpt), synth_root, "s4", counterfactual=False, release_protocol=True
    )
    assert report["release_protocol"] == {"gumbel_at_eval": True, "release_batch_gates": True}
    cfg = loaded[0].config
    assert cfg.gumbel_at_eval and cfg.release_batch_gates and report["batch_size"] == 2
    torch.manual_seed(5)  # the same random stream (build, then Gumbel noise): the same numbers
    again = real(ckpt, gumbel_at_eval=True, release_batch_gates=True)
    direct = evaluate_model(again, loader(synth_root, "s4"), setting="s4")
    assert report["metrics"]["j_legacy"] == pytest.approx(direct["j_legacy"], abs=1e-12)
    assert not read_config(ckpt).gumbel_at_eval  # the checkpoint itself is unchanged
