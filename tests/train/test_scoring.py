"""train.scoring: a model's metrics on a loader against the metric functions and by-hand
loops, for binary, semantic and counterfactual sets."""

import numpy as np
import pytest
import torch
from scoring_kit import FakeModel, batches, loader

from selm.metrics import (
    SemanticMeter,
    fscore_legacy,
    mask_iou_legacy,
    per_frame_f,
    per_frame_j,
)
from train.evaluate import COUNTERFACTUAL_SETS
from train.scoring import evaluate_counterfactual, evaluate_model


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


def test_a_binary_model_on_avss_is_an_error(synth_root):
    with pytest.raises(ValueError, match="avss"):
        evaluate_model(FakeModel(), loader(synth_root, "avss"), setting="avss")
