"""The comparison table: several checkpoints -> Markdown + JSON + plot, numbers checked against
the single-checkpoint evaluator, the seed interval and the illusion score by formula."""

import json
import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from selm.build import build_selm
from selm.config import get_config
from selm.metrics import IllusionMeter, illusion_score
from selm.weights.checkpoint import save_pretrained
from selm.weights.resolve import load_pretrained
from train.batch import binary_view, predict_logits
from train.data import build_dataset
from train.evaluate import evaluate_checkpoint
from train.evaluate import main as evaluate_main
from train.synth import generate


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Three tiny checkpoints (two seeds of one model, one other) and a hard test set."""
    root = tmp_path_factory.mktemp("compare")
    data = generate(
        root / "test",
        seed=9,
        size=32,
        layouts=("ms3",),
        sizes={"train": 0, "val": 0, "test": 2},
        counterfactuals=True,
        workers=1,
        progress=False,
        difficulty="hard",
    )
    dirs = []
    for i, extra in enumerate([{}, {}, {"bcsm": False}]):
        torch.manual_seed(i)
        cfg = get_config("selm_tiny", input_size=32, dim=32, **extra)
        model = build_selm(cfg).eval()
        dirs.append(save_pretrained(model, root / f"ckpt{i}"))
    return root, data, dirs


def test_comparison_table_from_three_tiny_checkpoints(tiny, capsys):
    root, data, (a, b, c) = tiny
    out = root / "cmp"
    code = evaluate_main(
        [
            "--checkpoint",
            f"default={a}",
            f"default={b}",
            f"no_bcsm={c}",
            f"same={a}",
            "--data",
            str(data),
            "--setting",
            "ms3",
            "--device",
            "cpu",
            "--compare-out",
            str(out),
        ]
    )
    assert code == 0
    assert {"comparison.md", "comparison.json", "comparison.png"} <= {p.name for p in out.iterdir()}
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    result = json.loads((out / "comparison.json").read_text())
    assert result["reference"] == "default" and result["num_clips"] == 2
    assert list(result["models"]) == ["default", "no_bcsm", "same"]
    # every seed's numbers agree with the pooled single-checkpoint evaluator
    per_ckpt = {}
    for path in (a, b, c):
        r = evaluate_checkpoint(str(path), data, "ms3", device="cpu")
        cf = r["counterfactual"]
        per_ckpt[str(path)] = {
            "m_j": r["metrics"]["j_frame_mean"],
            **{f"fpr_{k}": cf[k]["fpr"] for k in ("silent", "noise", "offscreen", "swapped")},
        }
    for path in (a, b):  # FPR under the real audio: the pooled IllusionMeter against the GT
        model = load_pretrained(path)
        data_set = build_dataset("ms3", data, "test", config=model.config)
        meter = IllusionMeter()
        for batch in DataLoader(data_set, batch_size=2):
            fg, gt = binary_view(predict_logits(model, batch, torch.device("cpu")), batch["masks"])
            keep = batch["has_gt"].bool() & batch["frame_mask"].bool()
            meter.update(fg[keep], gt[keep])
        per_ckpt[str(path)]["fpr_real"] = meter.compute()["fpr"]
    default = result["models"]["default"]["summary"]
    for key in ("m_j", "fpr_real", "fpr_silent", "fpr_noise", "fpr_offscreen", "fpr_swapped"):
        expect = [per_ckpt[str(a)][key], per_ckpt[str(b)][key]]
        assert default[key]["seeds"] == pytest.approx(expect, abs=1e-9)
        mean, sd = np.mean(expect), np.std(expect, ddof=1)
        half = 12.706204736 * sd / math.sqrt(2)  # t(0.975, 1)
        assert default[key]["mean"] == pytest.approx(mean, abs=1e-12)
        assert default[key]["low"] == pytest.approx(mean - half, abs=1e-6)
        assert default[key]["high"] == pytest.approx(mean + half, abs=1e-6)
    p = per_ckpt[str(c)]
    score = illusion_score(p["m_j"], {k: p[f"fpr_{k}"] for k in ("silent", "noise", "offscreen")})
    assert result["models"]["no_bcsm"]["summary"]["illusion_score"]["mean"] == pytest.approx(score)
    assert math.isnan(result["models"]["no_bcsm"]["summary"]["m_j"]["low"])  # one seed
    # paired bootstrap: a model against itself differs by exactly 0 on every draw; `same` is
    # seed a alone, so its difference is a's number minus the two-seed average
    same = result["models"]["same"]["paired_vs_reference"]["m_j"]
    assert same["diff"] == pytest.approx(
        per_ckpt[str(a)]["m_j"] - np.mean([per_ckpt[str(a)]["m_j"], per_ckpt[str(b)]["m_j"]])
    )
    md = (out / "comparison.md").read_text()
    assert "| default (reference) | 2 |" in md and "Paired bootstrap over 2 clips" in md
    assert "no_bcsm" in capsys.readouterr().out


def test_paired_bootstrap_of_identical_models_is_zero(tiny):
    from train.compare import clip_stats, compare

    _, data, (a, _, _) = tiny
    stats = clip_stats(str(a), data, "ms3")
    result = compare({"ref": [stats], "copy": [stats]}, boot=50)
    for v in result["models"]["copy"]["paired_vs_reference"].values():
        assert v["diff"] == 0.0 and v["low"] == 0.0 and v["high"] == 0.0


def test_several_checkpoints_need_the_same_clips_and_a_known_reference(tiny):
    from train.compare import compare

    with pytest.raises(ValueError, match="reference"):
        compare(
            {"a": [{"checkpoint": "x", "real": {"clips": [], "j": [], "fp": [], "neg": []}}]}, "b"
        )
