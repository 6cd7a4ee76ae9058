import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from selm.build import build_selm
from selm.metrics import (
    SemanticMeter,
    fscore_legacy,
    mask_iou_legacy,
    per_frame_f,
    per_frame_j,
)
from selm.weights.checkpoint import read_config, save_pretrained
from train.data import build_dataset
from train.evaluate import (
    COUNTERFACTUAL_SETS,
    evaluate_checkpoint,
    evaluate_counterfactual,
    evaluate_model,
    main,
    predict_logits,
    to_device,
)


class FakeModel(torch.nn.Module):
    """Logits as a fixed function of the frames (a 1x1 conv of fixed weights): varied, repeatable
    predictions with no training, N channels at the frames' size."""

    def __init__(self, n: int = 1) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(n)
        self.weight = torch.randn(n, 3, generator=g) * 2
        self.bias = torch.randn(n, generator=g) * 0.5

    def forward(self, frames, audio, frame_mask=None):
        logits = torch.einsum("btchw,nc->btnhw", frames, self.weight)
        return SimpleNamespace(logits=logits + self.bias[:, None, None])


def loader(root, setting, batch_size=2, split="test"):
    data = build_dataset(setting, root, split, size=64)
    return DataLoader(data, batch_size=batch_size, shuffle=False)


def batches(root, setting, model, batch_size=2, split="test"):
    """(logits (B, T, N, H, W), batch) for every test batch, run by hand."""
    for batch in loader(root, setting, batch_size, split):
        with torch.no_grad():
            b = to_device(batch, torch.device("cpu"))
            yield model(b["frames"], b["audio"], b["frame_mask"]).logits, batch


@pytest.mark.parametrize("setting", ["s4", "ms3"])
def test_binary_metrics_match_the_metric_functions_by_hand(synth_root, setting):
    model = FakeModel()
    got = evaluate_model(model, loader(synth_root, setting), setting=setting)
    batch_j, batch_f, frames_j, frames_f, cats = [], [], [], [], {}
    for logits, batch in batches(synth_root, setting, model):
        keep = batch["has_gt"] & batch["frame_mask"]
        x, gt = logits[:, :, 0][keep], batch["masks"][keep]
        batch_j.append(mask_iou_legacy(x, gt))
        batch_f.append(fscore_legacy(x, gt))
        frames_j.append(per_frame_j(x, gt))
        frames_f.append(per_frame_f(x, gt))
        for i, cat in enumerate(batch["category"]):
            sel = keep[i]
            j = per_frame_j(logits[i, :, 0][sel], batch["masks"][i][sel])
            cats.setdefault(cat, []).append(j)
    assert got["j_legacy"] == pytest.approx(np.mean(batch_j), abs=1e-12)
    assert got["f_legacy"] == pytest.approx(np.mean(batch_f), abs=1e-12)
    assert got["legacy_batch_size"] == 2 and got["legacy_num_batches"] == len(batch_j)
    j = torch.cat(frames_j)
    assert got["j_frame_mean"] == pytest.approx(j.mean().item(), abs=1e-12)
    f = torch.cat(frames_f)
    assert got["f_frame_mean"] == pytest.approx(f[~f.isnan()].mean().item(), abs=1e-12)
    assert 0 < got["j_frame_mean"] < 1  # the fake model's masks are neither empty nor full
    if setting == "s4":  # per category: the frames of that category's clips
        assert set(got["per_category"]) == set(cats)
        for cat, values in cats.items():
            expect = torch.cat(values).mean().item()
            assert got["per_category"][cat]["j_frame_mean"] == pytest.approx(expect, abs=1e-12)
    else:
        assert got["per_category"] == {}  # MS3 clips have no category


def test_iou_of_one_frame_by_a_plain_loop(synth_root):
    """The batch-independent J of the first test frame, recomputed pixel by pixel."""
    model = FakeModel()
    logits, batch = next(batches(synth_root, "ms3", model, batch_size=1))
    got = evaluate_model(model, [batch], setting="ms3")  # a one-frame-batch loader
    pred = (torch.sigmoid(logits[0, :, 0]) > 0.5).numpy()
    gt = batch["masks"][0].numpy() > 0
    ious = []
    for t in range(pred.shape[0]):
        inter = union = 0
        for p, g in zip(pred[t].ravel().tolist(), gt[t].ravel().tolist()):
            inter += p and g
            union += p or g
        ious.append(inter / union if union else float(not pred[t].any()))
    assert got["j_frame_mean"] == pytest.approx(float(np.mean(ious)), abs=1e-12)


def test_semantic_metrics_match_by_hand(synth_root):
    model = FakeModel(n=9)  # AVS-Synth AVSS: 8 categories + background
    got = evaluate_model(model, loader(synth_root, "avss"), setting="avss")
    legacy, real = SemanticMeter(9), SemanticMeter(9)
    fg_pred, fg_gt = [], []
    for logits, batch in batches(synth_root, "avss", model):
        keep = (batch["has_gt"] & batch["frame_mask"]).flatten()
        x, labels = logits.flatten(0, 1), batch["masks"].flatten(0, 1)
        legacy.update(x, labels)
        real.update(x, labels, frame_mask=keep)
        p_fg = 1 - torch.softmax(x, dim=1)[:, 0]  # P(not background)
        fg_pred.append((p_fg > 0.5)[keep])
        fg_gt.append((labels > 0)[keep])
    want_legacy, want_real = legacy.compute(), real.compute()
    assert got["miou_legacy"] == pytest.approx(want_legacy["miou_legacy"], abs=1e-12)
    assert got["fscore_legacy"] == pytest.approx(want_legacy["fscore_legacy"], abs=1e-12)
    assert got["miou_pooled"] == pytest.approx(want_real["miou_pooled"], abs=1e-12)
    assert got["iou_legacy_per_class"] == want_legacy["iou_legacy_per_class"].tolist()
    pred, gt = torch.cat(fg_pred), torch.cat(fg_gt)
    inter, union = (pred & gt).flatten(1).sum(1), (pred | gt).flatten(1).sum(1)
    j = torch.where(union > 0, inter / union.clamp(min=1), (~pred.flatten(1).any(1)).double())
    assert got["foreground"]["j_frame_mean"] == pytest.approx(j.double().mean().item(), abs=1e-9)


@pytest.mark.parametrize("kind", COUNTERFACTUAL_SETS)
def test_counterfactual_fpr_by_hand(synth_root, kind):
    root = synth_root / "counterfactual" / kind
    model = FakeModel()
    got = evaluate_counterfactual(model, loader(root, "ms3"))
    fp = neg = 0
    js, gt_pixels = [], 0
    for logits, batch in batches(root, "ms3", model):
        keep = batch["has_gt"] & batch["frame_mask"]
        pos = torch.sigmoid(logits[:, :, 0][keep]) > 0.5
        gt = batch["masks"][keep] > 0
        fp += int((pos & ~gt).sum())
        neg += int((~gt).sum())
        gt_pixels += int(gt.sum())
        js.append(per_frame_j(logits[:, :, 0][keep], gt.float()))
    assert got["fpr"] == pytest.approx(fp / neg, abs=1e-15)
    assert got["false_positives"] == fp and got["negatives"] == neg
    assert got["gt_empty"] == (gt_pixels == 0)
    if kind in ("silent", "noise", "offscreen"):  # nothing sounds on screen: FPR = positives
        assert got["gt_empty"] and "j_frame_mean" not in got
    if kind == "swapped":  # the fixture's swapped audio makes a visible object sound
        assert not got["gt_empty"]
    if gt_pixels:
        assert got["j_frame_mean"] == pytest.approx(torch.cat(js).mean().item(), abs=1e-12)


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


def test_a_binary_model_on_avss_is_an_error(synth_root):
    with pytest.raises(ValueError, match="avss"):
        evaluate_model(FakeModel(), loader(synth_root, "avss"), setting="avss")


def test_batches_without_the_contract_keys_are_rejected():
    with pytest.raises(KeyError, match="frame_mask"):
        to_device(
            {
                "frames": torch.zeros(1),
                "audio": torch.zeros(1),
                "masks": torch.zeros(1),
                "has_gt": torch.zeros(1),
            },
            torch.device("cpu"),
        )


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
