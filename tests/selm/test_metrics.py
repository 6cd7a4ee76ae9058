"""selm.metrics against hand-computed cases and a literal float64 re-implementation of AVSBench."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selm import metrics as M

POS, NEG = 5.0, -5.0  # logits far from the 0.5 decision


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


# ---------------------------------------------------------------- AVSBench, literally (float64)
# Loops per frame and per threshold, as OpenNLPLab/AVSBench's utility.py computes them.
THRESHOLDS = np.linspace(0, 1 - 1e-10, 255)


def ref_mask_iou(logits: np.ndarray, gt: np.ndarray) -> float:
    n, h, w = logits.shape
    total = 0.0
    for i in range(n):
        pred = (1 / (1 + np.exp(-logits[i])) > 0.5).astype(np.float64)
        t = gt[i].astype(np.float64)
        if t.sum() == 0:
            inter, union = ((1 - t) * (1 - pred)).sum(), h * w
        else:
            inter, union = (pred * t).sum(), np.maximum(pred, t).sum()
        total += inter / (union + 1e-7)
    return total / n


def ref_f_curve(logits: np.ndarray, gt: np.ndarray) -> np.ndarray:
    prob, t = 1 / (1 + np.exp(-logits)), gt.astype(np.float64)
    curve = np.zeros(len(THRESHOLDS))
    for k, th in enumerate(THRESHOLDS):
        y = (prob >= th).astype(np.float64)
        tp = (y * t).sum()
        p, r = tp / (y.sum() + 1e-20), tp / (t.sum() + 1e-20)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = 1.3 * p * r / (0.3 * p + r)
        curve[k] = 0.0 if np.isnan(f) else f
    return curve


def ref_fmeasure(logits: np.ndarray, gt: np.ndarray) -> float:
    score, total, count = np.zeros(len(THRESHOLDS)), 0.0, 0
    for i in range(len(logits)):
        if gt[i].mean() == 0.0:
            continue
        total = total + ref_f_curve(logits[i], gt[i])
        count += 1
        score = total / count
    return float(score.max())


def ref_dataset_f(logits: np.ndarray, gt: np.ndarray) -> float:
    prob = 1 / (1 + np.exp(-logits))
    best = 0.0
    for th in THRESHOLDS:
        tp = pred = pos = 0.0
        for i in range(len(logits)):
            y = prob[i] >= th
            tp += (y & (gt[i] > 0)).sum()
            pred += y.sum()
            pos += (gt[i] > 0).sum()
        p, r = tp / pred if pred else 0.0, tp / pos
        best = max(best, 1.3 * p * r / (0.3 * p + r) if tp else 0.0)
    return best


def random_batch(seed: int, n: int = 4, size: int = 8, empty: tuple[int, ...] = (2,)):
    """Random logits and GT; frames in `empty` have an empty GT. The probabilities sit midway
    between thresholds (k + 0.5) / 254, so float32 (ours) and float64 (reference) agree."""
    g = torch.Generator().manual_seed(seed)
    gt = (torch.rand(n, size, size, generator=g) < 0.35).long()
    gt[list(empty)] = 0
    k = torch.randint(0, 254, (n, size, size), generator=g) + 60 * gt  # correlate with the GT
    p = (k.clamp(max=253).double() + 0.5) / 254
    logits = torch.log(p / (1 - p))
    assert np.abs(p.numpy()[..., None] - THRESHOLDS).min() > 1e-3
    return logits.float(), gt


# ---------------------------------------------------------------- hand cases (3 x 3)
def test_iou_hand_cases_legacy_and_ours():
    gt = torch.zeros(4, 3, 3, dtype=torch.long)
    pred = torch.zeros(4, 3, 3, dtype=torch.bool)
    gt[0, 0, :] = 1  # 3 GT pixels
    pred[0, 0, :2] = True
    pred[0, 2, 2] = True  # 2 hits + 1 false positive: inter 2, union 4
    pred[1, 1, :2] = True  # empty GT, 2 false positives
    # frame 2: empty GT, empty prediction
    gt[3, 1, 1] = 1  # GT, nothing predicted
    logits = torch.where(pred, POS, NEG)
    logits[1, 2, 2] = 0.0  # sigmoid exactly 0.5 is not > 0.5: background

    legacy = [2 / (4 + 1e-7), 7 / (9 + 1e-7), 9 / (9 + 1e-7), 0.0]  # empty GT: 7 of 9 background
    assert M.mask_iou_legacy(logits, gt) == pytest.approx(np.mean(legacy), rel=1e-12)
    assert M.mask_iou_legacy(logits, gt) == pytest.approx(ref_mask_iou(logits.numpy(), gt.numpy()))
    ours = M.per_frame_j(logits, gt)
    assert ours.dtype == torch.float64
    assert ours.tolist() == pytest.approx([0.5, 0.0, 1.0, 0.0])
    # (N, 1, H, W) inputs give the same numbers
    assert M.per_frame_j(logits[:, None], gt[:, None]).tolist() == ours.tolist()


# probabilities 0.9 / 0.6 / 0.2 fall between the thresholds k/254 (228.6, 152.4, 50.8), so the
# F curve has four regimes: p >= 0.9, p >= 0.6, everything, nothing (F = 0)
PROBS = [[0.9, 0.9, 0.6], [0.6, 0.2, 0.2], [0.2, 0.2, 0.2]]


def f_hand_batch():
    logits = torch.tensor([[_logit(p) for p in row] for row in PROBS]).expand(3, 3, 3).clone()
    gt = torch.zeros(3, 3, 3, dtype=torch.long)
    gt[0, 0, 0] = gt[0, 0, 1] = gt[0, 1, 0] = 1  # the 0.9, 0.9, 0.6 pixels
    gt[1, 0, 2] = gt[1, 1, 0] = gt[1, 1, 1] = 1  # 0.6, 0.6 and one 0.2 pixel
    # frame 2: empty GT, its pixels are false positives at every threshold
    return logits, gt


def test_f_hand_case():
    logits, gt = f_hand_batch()
    # frame 0: >=0.9 P 2/2 R 2/3 -> F 26/29; >=0.6 P 3/4 R 1 -> 39/49; all P 3/9 R 1 -> 13/33
    # frame 1: >=0.9 tp 0 -> 0;             >=0.6 P 2/4 R 2/3 -> 26/49; all -> 13/33
    f = M.per_frame_f(logits, gt)
    assert f[:2].tolist() == pytest.approx([26 / 29, 26 / 49], rel=1e-12)
    assert torch.isnan(f[2])
    # legacy: frame-mean curve (13/29, 65/98, 13/33), max 65/98; the empty frame is skipped
    assert M.fscore_legacy(logits, gt) == pytest.approx(65 / 98, rel=1e-12)
    assert M.fscore_legacy(logits[:1], gt[:1]) == pytest.approx(26 / 29, rel=1e-12)
    assert M.fscore_legacy(logits[2:], gt[2:]) == 0.0  # every frame empty: AVSBench's zeros


def test_dataset_level_f_hand_case():
    logits, gt = f_hand_batch()
    acc = M.MetricAccumulator()
    acc.update(logits, gt)
    r = acc.compute()
    # summed over the 3 frames (6 GT pixels): >=0.9 tp 2 pred 6 -> 1/3; >=0.6 tp 5 pred 12 ->
    # 1.3 (5/12)(5/6) / (0.3 (5/12) + 5/6) = 65/138; all tp 6 pred 27 -> 13/48
    assert r["f_dataset"] == pytest.approx(65 / 138, rel=1e-12)
    assert r["f_frame_mean"] == pytest.approx((26 / 29 + 26 / 49) / 2, rel=1e-12)
    assert r["f_legacy"] == pytest.approx(65 / 98, rel=1e-12)
    assert (r["num_frames"], r["num_frames_with_gt"], r["legacy_frames_per_batch"]) == (3, 2, 3)
    assert r["f_dataset"] == pytest.approx(ref_dataset_f(logits.numpy(), gt.numpy()))


# ---------------------------------------------------------------- against the literal reference
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_literal_avsbench_on_random_batches(seed):
    logits, gt = random_batch(seed)
    ln, gn = logits.double().numpy(), gt.numpy()
    assert M.mask_iou_legacy(logits, gt) == pytest.approx(ref_mask_iou(ln, gn), rel=1e-6)
    assert M.fscore_legacy(logits, gt) == pytest.approx(ref_fmeasure(ln, gn), rel=1e-6)
    f = M.per_frame_f(logits, gt)
    for i in range(len(gn)):
        if gn[i].sum() == 0:
            assert torch.isnan(f[i])
        else:
            assert f[i].item() == pytest.approx(ref_f_curve(ln[i], gn[i]).max(), rel=1e-6)
    acc = M.MetricAccumulator()
    acc.update(logits, gt)
    assert acc.compute()["f_dataset"] == pytest.approx(ref_dataset_f(ln, gn), rel=1e-6)


def test_legacy_f_depends_on_batch_size_and_meter_reproduces_each():
    logits, gt = random_batch(3, n=4, empty=(1,))
    ln, gn = logits.double().numpy(), gt.numpy()
    results = {}
    for bs in (1, 2):
        acc = M.MetricAccumulator()
        expected_f = []
        for s in range(0, 4, bs):
            acc.update(logits[s : s + bs], gt[s : s + bs])
            expected_f.append(ref_fmeasure(ln[s : s + bs], gn[s : s + bs]))
        r = acc.compute()
        assert r["f_legacy"] == pytest.approx(np.mean(expected_f), rel=1e-6)
        assert r["legacy_frames_per_batch"] == bs and r["legacy_num_batches"] == 4 // bs
        results[bs] = r
    # batch 1: the empty-GT frame is a batch of its own that scores 0 and still counts
    assert abs(results[1]["f_legacy"] - results[2]["f_legacy"]) > 1e-2
    for key in ("j_frame_mean", "f_frame_mean", "f_dataset"):
        assert results[1][key] == pytest.approx(results[2][key], rel=1e-12)


def test_legacy_uneven_batches_weigh_equally():
    logits, gt = random_batch(4, n=4)
    meter = M.LegacyMeter()
    assert meter.update(logits[:3], gt[:3]) == pytest.approx(
        (M.mask_iou_legacy(logits[:3], gt[:3]), M.fscore_legacy(logits[:3], gt[:3]))
    )
    meter.update(logits[3:], gt[3:])
    ln, gn = logits.double().numpy(), gt.numpy()
    expected_j = (ref_mask_iou(ln[:3], gn[:3]) + ref_mask_iou(ln[3:], gn[3:])) / 2
    f_first, f_last = ref_fmeasure(ln[:3], gn[:3]), ref_fmeasure(ln[3:], gn[3:])
    expected_f = (f_first + f_last) / 2
    r = meter.compute()
    assert r["j_legacy"] == pytest.approx(expected_j, rel=1e-6)
    assert r["f_legacy"] == pytest.approx(expected_f, rel=1e-6)
    assert abs(expected_j - ref_mask_iou(ln, gn)) > 1e-3  # the frame mean is another number
    assert abs(expected_f - (3 * f_first + f_last) / 4) > 1e-3  # a frame-weighted mean too


def test_one_legacy_batch_of_frames_of_different_sizes():
    """Frames of two sizes in one test batch (AVSS labels at their own sizes): lists of
    (N_i, H_i, W_i) make one legacy batch, scored frame by frame as AVSBench scores frames."""
    a_logits, a_gt = random_batch(5, n=2, size=8, empty=())
    b_logits, b_gt = random_batch(6, n=3, size=11, empty=(1,))
    acc = M.MetricAccumulator()
    acc.update([a_logits, b_logits], [a_gt, b_gt])
    got = acc.compute()
    frames = [
        (x.double().numpy(), g.numpy()) for x, g in zip([*a_logits, *b_logits], [*a_gt, *b_gt])
    ]
    ious = [ref_mask_iou(x[None], g[None]) for x, g in frames]
    curves = [ref_f_curve(x, g) for x, g in frames if g.sum() > 0]
    assert got["j_legacy"] == pytest.approx(np.mean(ious), rel=1e-6)
    assert got["f_legacy"] == pytest.approx(np.mean(curves, axis=0).max(), rel=1e-6)
    assert got["legacy_num_batches"] == 1 and got["num_frames"] == 5
    assert got["legacy_frames_per_batch"] == 5
    same = M.MetricAccumulator()  # parts of one size: the same numbers as one tensor
    same.update([a_logits[:1], a_logits[1:]], [a_gt[:1], a_gt[1:]])
    whole = M.MetricAccumulator()
    whole.update(a_logits, a_gt)
    assert same.compute() == whole.compute()
    with pytest.raises(ValueError, match="lists"):
        acc.update([a_logits], [a_gt, b_gt])


def test_saturated_sigmoid_counts_at_the_last_threshold():
    # float32: sigmoid(30) == 1.0 == the last threshold, and AVSBench tests p >= threshold, so
    # only there is the GT pixel predicted alone (sigmoid(7) = 0.9991 > threshold 253 = 0.9961)
    assert M.f_thresholds()[-1].item() == 1.0
    logits = torch.full((1, 3, 3), 7.0)
    logits[0, 1, 1] = 30.0
    gt = torch.zeros(1, 3, 3, dtype=torch.long)
    gt[0, 1, 1] = 1
    assert M.per_frame_f(logits, gt).item() == pytest.approx(1.0)
    assert M.fscore_legacy(logits, gt) == pytest.approx(1.0)


# ---------------------------------------------------------------- AVSS
def one_hot_logits(pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(pred, num_classes).permute(0, 3, 1, 2).float() * 5


def test_semantic_hand_case():
    labels = torch.tensor([[[0, 1], [1, 1]], [[0, 0], [0, 0]]])
    pred = torch.tensor([[[0, 1], [0, 1]], [[0, 0], [0, 1]]])
    meter = M.SemanticMeter(num_classes=3)
    meter.update(one_hot_logits(pred, 3)[:1], labels[:1])
    meter.update(one_hot_logits(pred, 3)[1:], labels[1:])
    r = meter.compute()
    # class 0: frame IoU 1/2, 3/4; class 1: 2/3, 0 (predicted only); class 2 never seen -> 0
    assert r["iou_legacy_per_class"].tolist() == pytest.approx([0.625, 1 / 3, 0.0])
    assert r["miou_legacy"] == pytest.approx((0.625 + 1 / 3) / 3)
    # F: class 0 frames (P 1/2 R 1) 13/23, (P 1 R 3/4) 13/14; class 1 (P 1 R 2/3) 26/29, 0
    f = [(13 / 23 + 13 / 14) / 2, 26 / 29 / 2, 0.0]
    assert r["fscore_legacy_per_class"].tolist() == pytest.approx(f)
    assert r["fscore_legacy"] == pytest.approx(sum(f) / 3)
    # pooled: class 0 4/6, class 1 2/4, class 2 excluded
    assert r["miou_pooled"] == pytest.approx((4 / 6 + 2 / 4) / 2)
    assert torch.isnan(r["iou_pooled_per_class"][2])
    assert (r["num_classes_seen"], r["num_frames"]) == (2, 2)


def ref_avss(logits: torch.Tensor, labels: torch.Tensor, c: int):
    """AVSBench's AVSS test (histc per frame) and the pooled IoU, with plain loops."""
    pred = logits.argmax(1) + 1
    target = labels.double() + 1
    inter_img = pred.double() * (pred == target).double()
    ious, fs, cnt = np.zeros(c), np.zeros(c), np.zeros(c)
    inter_tot, union_tot = np.zeros(c), np.zeros(c)
    for i in range(len(labels)):
        a_i = torch.histc(inter_img[i], bins=c, min=1, max=c).double().numpy()
        a_p = torch.histc(pred[i].double(), bins=c, min=1, max=c).double().numpy()
        a_l = torch.histc(target[i], bins=c, min=1, max=c).double().numpy()
        union = a_p + a_l - a_i
        ious += a_i / (2.220446049250313e-16 + union)
        with np.errstate(invalid="ignore", divide="ignore"):
            p, r = a_i / a_p, a_i / a_l
            f = 1.3 * p * r / (0.3 * p + r)
        fs += np.nan_to_num(f, nan=0.0)
        cnt += union > 0
        inter_tot += a_i
        union_tot += union
    with np.errstate(invalid="ignore"):
        miou = np.nan_to_num(ious / cnt, nan=0.0).mean()
        fsc = np.nan_to_num(fs / cnt, nan=0.0).mean()
    seen = union_tot > 0
    return miou, fsc, (inter_tot[seen] / union_tot[seen]).mean()


def test_semantic_matches_literal_reference_on_random_batch():
    g = torch.Generator().manual_seed(0)
    c = 6
    logits = torch.randn(5, c, 6, 6, generator=g)
    logits[:, 4] -= 10  # class 4 is never predicted ...
    labels = torch.randint(0, c, (5, 6, 6), generator=g)
    labels[labels == 4] = 0  # ... nor labelled
    meter = M.SemanticMeter(num_classes=c)
    meter.update(logits, labels)
    r = meter.compute()
    miou, fsc, pooled = ref_avss(logits, labels, c)
    assert r["miou_legacy"] == pytest.approx(miou, rel=1e-6)
    assert r["fscore_legacy"] == pytest.approx(fsc, rel=1e-6)
    assert r["miou_pooled"] == pytest.approx(pooled, rel=1e-12)
    assert r["num_classes_seen"] == c - 1
    # frame_mask drops frames; None keeps them all, as the release does with padded frames
    masked = M.SemanticMeter(num_classes=c)
    masked.update(logits, labels, frame_mask=torch.tensor([1, 1, 0, 0, 0], dtype=torch.bool))
    assert masked.compute()["miou_legacy"] == pytest.approx(ref_avss(logits[:2], labels[:2], c)[0])


# ---------------------------------------------------------------- FPR
def test_fpr_hand_cases():
    logits = torch.full((2, 3, 3), NEG)
    logits[0, 0, :] = POS  # 3 positives
    logits[1, 2, 2] = POS  # 1 positive
    logits[1, 0, 0] = 0.0  # sigmoid 0.5 is not > 0.5
    strict = M.IllusionMeter(threshold=0.999)  # sigmoid(5) = 0.9933
    strict.update(logits)
    assert strict.compute()["fpr"] == 0.0
    gt = torch.zeros(2, 3, 3, dtype=torch.long)
    gt[0, 0, :2] = 1  # 2 of frame 0's positives are true; 16 negatives, 2 false positives
    meter = M.IllusionMeter()
    meter.update(logits[:1])
    meter.update(logits[1:, None])
    r = meter.compute()
    assert r["fpr"] == pytest.approx(4 / 18)
    assert (r["false_positives"], r["negatives"], r["num_frames"]) == (4, 18, 2)
    swapped = M.IllusionMeter()
    swapped.update(logits, gt)
    assert swapped.compute()["fpr"] == pytest.approx(2 / 16)


# ---------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors():
    logits = torch.zeros(2, 3, 3)
    with pytest.raises(ValueError, match="differ in shape"):
        M.mask_iou_legacy(logits, torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="binary mask"):
        M.per_frame_j(logits, torch.full((2, 3, 3), 2))
    with pytest.raises(ValueError, match="SemanticMeter"):
        M.fscore_legacy(torch.zeros(2, 3, 3, 3), torch.zeros(2, 3, 3))
    full = M.IllusionMeter()
    full.update(logits, torch.ones(2, 3, 3))
    with pytest.raises(ValueError, match="no negative pixels"):
        full.compute()
    with pytest.raises(ValueError, match="threshold"):
        M.IllusionMeter(threshold=1.5).update(logits)
    with pytest.raises(ValueError, match="no frames"):
        M.MetricAccumulator().compute()
    meter = M.SemanticMeter(num_classes=3)
    with pytest.raises(ValueError, match=r"lie in \[0, 3\)"):
        meter.update(torch.zeros(1, 3, 2, 2), torch.full((1, 2, 2), 255))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        meter.update(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


# --- illusion score ---
def test_illusion_score_is_the_harmonic_mean_of_mj_and_one_minus_each_negative_fpr():
    from selm.metrics import illusion_score

    # by hand: terms 0.8, 1 - 0.2 = 0.8, 1 - 0.5 = 0.5, 1 - 0 = 1.0
    # 4 / (1.25 + 1.25 + 2 + 1) = 4 / 5.5 = 0.727272...
    score = illusion_score(0.8, {"silent": 0.2, "noise": 0.5, "offscreen": 0.0, "swapped": 0.9})
    assert score == pytest.approx(8 / 11, abs=1e-12)
    assert illusion_score(0.6, {"silent": 0.0, "noise": 0.0, "offscreen": 0.0}) == pytest.approx(
        4 / (1 / 0.6 + 3)
    )
    assert illusion_score(0.9, {"silent": 1.0, "noise": 0.0, "offscreen": 0.0}) == 0.0
    assert illusion_score(1.0, {"silent": 0.0, "noise": 0.0, "offscreen": 0.0}) == 1.0
    with pytest.raises(ValueError, match="offscreen"):
        illusion_score(0.5, {"silent": 0.1, "noise": 0.1})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        illusion_score(1.2, {"silent": 0.1, "noise": 0.1, "offscreen": 0.1})
