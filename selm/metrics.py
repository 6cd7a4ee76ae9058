"""Evaluation metrics: AVSBench's legacy numbers, batch-independent ones, AVSS, FPR
(docs/model.md, section 'Metrics').

Binary inputs: `logits` (N, H, W) or (N, 1, H, W), pre-sigmoid; `gt` the same shape, values 0/1.
Probabilities are `sigmoid` in float32 and the F thresholds are float32, as in AVSBench, so a pixel
sits on the same side of every threshold as it does there; counts are exact integers and every
ratio is float64. Nothing here needs gradients; inputs are detached.

Every result key says which definition it uses (`DEFINITIONS`: one line per key).
- legacy = AVSBench's `mask_iou` / `Eval_Fmeasure` (every published S4/MS3 number): one value per
  test batch, then the unweighted mean over batches, so F depends on the batch size. An empty-GT
  frame's J is the fraction of pixels predicted background; its F is skipped; a batch whose
  frames are all empty scores F = 0 and still counts.
- ours, batch-independent: an empty-GT frame's J is 1 if nothing is predicted, else 0 (legacy
  gives partial credit, e.g. 0.9 for 10% false positives, which rewards illusions); its F is
  undefined (NaN, left out of the mean); the dataset F sums TP, predicted and GT pixels over all
  frames per threshold before F and max, so empty-GT frames count through their false positives.
"""

from __future__ import annotations

import torch

BETA2 = 0.3  # F_beta with beta^2 = 0.3: precision weighted more (salient-object convention)
NUM_THRESHOLDS = 255
IOU_EPS = 1e-7  # AVSBench's mask_iou
PR_EPS = 1e-20  # AVSBench's _eval_pr
AVSS_EPS = 2.220446049250313e-16  # AVSBench's AVSS IoU (float64 machine epsilon)

DEFINITIONS = {
    "j_frame_mean": "ours: mean per-frame IoU at 0.5 (empty GT: 1 if nothing predicted, else 0)",
    "f_frame_mean": "ours: mean per-frame max-F over frames with GT (255 thresholds, beta^2 0.3)",
    "f_dataset": "ours: max-F of TP/predicted/GT pixels summed over all frames per threshold",
    "j_legacy": "AVSBench mask_iou: per-batch mean IoU, averaged over batches",
    "f_legacy": "AVSBench Eval_Fmeasure: per-batch max-F, averaged over batches (batch-dependent)",
    "miou_legacy": "AVSBench AVSS: class IoU averaged over the frames showing it, mean of all C",
    "fscore_legacy": "AVSBench AVSS: class F (beta^2 0.3) averaged likewise, mean of all C",
    "miou_pooled": "ours: class IoU of summed intersection/union, mean over classes seen",
    "fpr": "pixels predicted positive / negative pixels, pooled over all frames",
    "illusion_score": "harmonic mean of M_J (real audio) and 1 - FPR under silent, noise, "
    "off-screen audio",
}


def f_thresholds(device: torch.device | str = "cpu") -> torch.Tensor:
    """(255,) float32 `linspace(0, 1 - 1e-10, 255)` as AVSBench builds it (the last one is 1.0)."""
    return torch.linspace(0, 1 - 1e-10, NUM_THRESHOLDS, device=device)


def _binary_inputs(logits: torch.Tensor, gt: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """-> probs (N, H, W) float32 and gt (N, H, W) bool (or None); clear errors for bad input."""

    def squeeze(x: torch.Tensor, name: str) -> torch.Tensor:
        if x.dim() == 4 and x.shape[1] == 1:
            x = x[:, 0]
        if x.dim() != 3:
            raise ValueError(
                f"{name} must be (N, H, W) or (N, 1, H, W), got {tuple(x.shape)}; reshape "
                "(B, T, ...) to (B*T, ...), and use SemanticMeter for multi-class logits"
            )
        return x.detach()

    probs = torch.sigmoid(squeeze(logits, "logits").float())
    if gt is None:
        return probs, None
    gt = squeeze(gt, "gt")
    if gt.shape != probs.shape:
        raise ValueError(f"gt {tuple(gt.shape)} and logits {tuple(probs.shape)} differ in shape")
    if gt.dtype != torch.bool:
        if not ((gt == 0) | (gt == 1)).all():
            raise ValueError("gt must be a binary mask of 0/1 values; binarise it first (gt > 0)")
        gt = gt != 0
    return probs, gt.to(probs.device)


def _binary_counts(logits, gt) -> dict[str, torch.Tensor]:
    """Exact per-frame pixel counts (int64, CPU) that every binary metric is computed from.

    inter, union, pred_pos: (N,) at sigmoid > 0.5; gt_pos: (N,); tp, pred_k: (N, 255) pixels with
    sigmoid >= threshold k (and in the GT, for tp); num_pixels: (N,) H * W. `logits` and `gt` may
    also be lists of such tensors (frames of different sizes): their frames' counts in order.
    """
    if isinstance(logits, list | tuple):
        if not isinstance(gt, list | tuple) or len(gt) != len(logits) or not logits:
            raise ValueError("logits and gt given as lists must be non-empty and of one length")
        parts = [_binary_counts(x, g) for x, g in zip(logits, gt)]
        return {k: torch.cat([part[k] for part in parts]) for k in parts[0]}
    probs, gt = _binary_inputs(logits, gt)
    n = probs.shape[0]
    flat_p, flat_g = probs.reshape(n, -1), gt.reshape(n, -1)
    pred = flat_p > 0.5
    k = NUM_THRESHOLDS
    # bucket b = how many thresholds are <= p, so p >= threshold j exactly when b > j
    bucket = torch.bucketize(flat_p, f_thresholds(probs.device), right=True)
    bucket = (bucket + torch.arange(n, device=probs.device)[:, None] * (k + 1)).reshape(-1)
    hist = torch.bincount(bucket, minlength=n * (k + 1)).reshape(n, k + 1)
    hist_tp = torch.bincount(bucket[flat_g.reshape(-1)], minlength=n * (k + 1)).reshape(n, k + 1)

    def above(h: torch.Tensor) -> torch.Tensor:  # (N, K + 1) -> (N, K): column j = h[:, j+1:].sum
        return h.flip(1).cumsum(1).flip(1)[:, 1:]

    out = {
        "inter": (pred & flat_g).sum(1),
        "union": (pred | flat_g).sum(1),
        "pred_pos": pred.sum(1),
        "gt_pos": flat_g.sum(1),
        "tp": above(hist_tp),
        "pred_k": above(hist),
        "num_pixels": torch.full((n,), flat_p.shape[1]),
    }
    return {name: v.to("cpu", torch.int64) for name, v in out.items()}


def _f_beta(tp: torch.Tensor, pred: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """F_beta from counts (broadcast), AVSBench's eps and NaN -> 0, float64."""
    tp, pred, pos = tp.double(), pred.double(), pos.double()
    precision, recall = tp / (pred + PR_EPS), tp / (pos + PR_EPS)
    f = (1 + BETA2) * precision * recall / (BETA2 * precision + recall)
    return torch.nan_to_num(f, nan=0.0)


def _legacy_j(c: dict[str, torch.Tensor]) -> float:
    empty = c["gt_pos"] == 0
    inter = torch.where(empty, c["num_pixels"] - c["pred_pos"], c["inter"]).double()
    union = torch.where(empty, c["num_pixels"], c["union"]).double()
    return (inter / (union + IOU_EPS)).mean().item()


def _legacy_f(c: dict[str, torch.Tensor]) -> float:
    has_gt = c["gt_pos"] > 0
    if not has_gt.any():
        return 0.0  # AVSBench: the score curve stays zeros
    f = _f_beta(c["tp"], c["pred_k"], c["gt_pos"][:, None])[has_gt]  # (N_gt, K)
    return f.mean(0).max().item()


def _frame_j(c: dict[str, torch.Tensor]) -> torch.Tensor:
    union = c["union"].double()
    return torch.where(union > 0, c["inter"].double() / union.clamp(min=1), 1.0)


def _frame_f(c: dict[str, torch.Tensor]) -> torch.Tensor:
    f = _f_beta(c["tp"], c["pred_k"], c["gt_pos"][:, None]).amax(1)
    return torch.where(c["gt_pos"] > 0, f, torch.nan)


def mask_iou_legacy(logits: torch.Tensor, gt: torch.Tensor) -> float:
    """AVSBench's `mask_iou` on one batch: mean over its N frames (see the module docstring)."""
    return _legacy_j(_binary_counts(logits, gt))


def fscore_legacy(logits: torch.Tensor, gt: torch.Tensor) -> float:
    """AVSBench's `Eval_Fmeasure` on one batch: max over thresholds of the frame-mean F curve."""
    return _legacy_f(_binary_counts(logits, gt))


def per_frame_j(logits: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(N,) float64 IoU of sigmoid > 0.5 per frame; empty GT: 1 if nothing predicted, else 0."""
    return _frame_j(_binary_counts(logits, gt))


def per_frame_f(logits: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(N,) float64 max over the 255 thresholds of F_beta per frame; NaN where the GT is empty."""
    return _frame_f(_binary_counts(logits, gt))


class LegacyMeter:
    """AVSBench's test loop: J and F per batch, then the unweighted mean over batches.

    The result depends on how the frames were batched (the release tests S4/MS3 with 2 videos =
    10 frames a batch; a short last batch weighs as much as a full one), so `compute` reports the
    frames per batch with the numbers.
    """

    def __init__(self) -> None:
        self.batch_j: list[float] = []
        self.batch_f: list[float] = []
        self.batch_frames: list[int] = []

    def update(self, logits: torch.Tensor, gt: torch.Tensor) -> tuple[float, float]:
        """Add one test batch (N frames); returns its (J, F)."""
        return self._add(_binary_counts(logits, gt))

    def _add(self, counts: dict[str, torch.Tensor]) -> tuple[float, float]:
        j, f = _legacy_j(counts), _legacy_f(counts)
        self.batch_j.append(j)
        self.batch_f.append(f)
        self.batch_frames.append(len(counts["gt_pos"]))
        return j, f

    def compute(self) -> dict[str, float | int]:
        """j_legacy, f_legacy, legacy_frames_per_batch (the first batch's), legacy_num_batches."""
        if not self.batch_j:
            raise ValueError("LegacyMeter has no batches; call update(logits, gt) first")
        n = len(self.batch_j)
        return {
            "j_legacy": sum(self.batch_j) / n,
            "f_legacy": sum(self.batch_f) / n,
            "legacy_frames_per_batch": self.batch_frames[0],
            "legacy_num_batches": n,
        }


class MetricAccumulator:
    """S4/MS3 evaluation over a data set: our batch-independent J/F and the legacy numbers.

    `update(logits, gt)` per test batch; `compute()` -> dict with j_frame_mean, f_frame_mean,
    f_dataset, num_frames, num_frames_with_gt and LegacyMeter's keys (see `DEFINITIONS`).
    """

    def __init__(self) -> None:
        self.legacy = LegacyMeter()
        self._j: list[torch.Tensor] = []
        self._f: list[torch.Tensor] = []
        self._tp = torch.zeros(NUM_THRESHOLDS, dtype=torch.int64)
        self._pred = torch.zeros(NUM_THRESHOLDS, dtype=torch.int64)
        self._pos = torch.zeros((), dtype=torch.int64)

    def update(self, logits: torch.Tensor, gt: torch.Tensor) -> None:
        """Add one batch: logits (N, H, W) or (N, 1, H, W), gt the same shape (0/1); or lists
        of such pairs, for a batch whose frames differ in size."""
        c = _binary_counts(logits, gt)
        self.legacy._add(c)
        self._j.append(_frame_j(c))
        self._f.append(_frame_f(c))
        self._tp += c["tp"].sum(0)
        self._pred += c["pred_k"].sum(0)
        self._pos += c["gt_pos"].sum()

    def compute(self) -> dict[str, float | int]:
        if not self._j:
            raise ValueError("MetricAccumulator has no frames; call update(logits, gt) first")
        j, f = torch.cat(self._j), torch.cat(self._f)
        has_gt = ~f.isnan()
        f_data = _f_beta(self._tp, self._pred, self._pos).max().item() if self._pos > 0 else None
        return {
            "j_frame_mean": j.mean().item(),
            "f_frame_mean": f[has_gt].mean().item() if has_gt.any() else float("nan"),
            "f_dataset": float("nan") if f_data is None else f_data,
            "num_frames": len(j),
            "num_frames_with_gt": int(has_gt.sum()),
            **self.legacy.compute(),
        }


class SemanticMeter:
    """AVSS: per-class IoU and F over all test frames, padded frames included (docs/model.md,
    section 'Metrics').

    Legacy (AVSBench's AVSS test, the published numbers): per frame and class, IoU = inter /
    (union + 2.2e-16) and F_beta (beta^2 = 0.3, NaN -> 0) of the argmax prediction; a class's
    score is its sum over the frames where it is predicted or labelled (union > 0) divided by that
    number of frames; the mean is over all `num_classes` classes, a class never predicted nor
    labelled anywhere counting 0. Pooled (ours): intersection and union summed
    over all frames per class, IoU per class, mean over the classes whose union is non-empty.
    """

    def __init__(self, num_classes: int = 71) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 (background + classes), got {num_classes}")
        self.num_classes = num_classes
        c = num_classes
        self.iou_sum = torch.zeros(c, dtype=torch.float64)
        self.f_sum = torch.zeros(c, dtype=torch.float64)
        self.frames_present = torch.zeros(c, dtype=torch.int64)
        self.inter = torch.zeros(c, dtype=torch.int64)
        self.union = torch.zeros(c, dtype=torch.int64)
        self.num_frames = 0

    def update(
        self, logits: torch.Tensor, labels: torch.Tensor, frame_mask: torch.Tensor | None = None
    ) -> None:
        """logits (N, C, H, W), labels (N, H, W) class ids in [0, C); frame_mask (N,) bool keeps
        only True frames (None: every frame, as the release does with padded frames)."""
        c = self.num_classes
        if logits.dim() != 4 or logits.shape[1] != c:
            raise ValueError(f"logits must be (N, {c}, H, W), got {tuple(logits.shape)}")
        if labels.shape != logits.shape[:1] + logits.shape[2:]:
            raise ValueError(
                f"labels must be (N, H, W) = {(logits.shape[0], *logits.shape[2:])}, got "
                f"{tuple(labels.shape)}"
            )
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise ValueError(f"labels must hold integer class ids, got dtype {labels.dtype}")
        if labels.numel() and (labels.min() < 0 or labels.max() >= c):
            raise ValueError(
                f"labels must lie in [0, {c}); got [{labels.min().item()}, {labels.max().item()}]"
                "; map ignored pixels to a class (background 0) first"
            )
        pred, labels = logits.detach().argmax(1), labels.detach().to(logits.device)
        if frame_mask is not None:
            if frame_mask.shape != pred.shape[:1]:
                got = tuple(frame_mask.shape)
                raise ValueError(f"frame_mask must be ({len(pred)},) like the frames, got {got}")
            keep = frame_mask.bool().to(pred.device)
            pred, labels = pred[keep], labels[keep]
        n = pred.shape[0]
        offset = torch.arange(n, device=pred.device)[:, None] * c  # frame i counts in [i*C, i*C+C)
        p = (pred.reshape(n, -1) + offset).reshape(-1)
        g = (labels.reshape(n, -1) + offset).reshape(-1)

        def count(idx: torch.Tensor) -> torch.Tensor:  # (N, C) pixels per frame and class
            return torch.bincount(idx, minlength=n * c).reshape(n, c).cpu()

        area_pred, area_lab, inter = count(p), count(g), count(g[p == g])
        union = area_pred + area_lab - inter
        iou = inter.double() / (union.double() + AVSS_EPS)
        self.iou_sum += iou.sum(0)
        # AVSBench's AVSS F has no eps; with it F is still 0 exactly when inter is 0
        self.f_sum += _f_beta(inter, area_pred, area_lab).sum(0)
        self.frames_present += (union > 0).sum(0)
        self.inter += inter.sum(0)
        self.union += union.sum(0)
        self.num_frames += n

    def compute(self) -> dict[str, float | int | torch.Tensor]:
        """miou_legacy, fscore_legacy, miou_pooled, their (C,) per-class tensors, class counts."""
        if self.num_frames == 0:
            raise ValueError("SemanticMeter has no frames; call update(logits, labels) first")
        frames = self.frames_present.double()
        iou_c = torch.nan_to_num(self.iou_sum / frames, nan=0.0)
        f_c = torch.nan_to_num(self.f_sum / frames, nan=0.0)
        seen = self.union > 0
        pooled_c = torch.where(seen, self.inter.double() / self.union.clamp(min=1), torch.nan)
        return {
            "miou_legacy": iou_c.mean().item(),
            "fscore_legacy": f_c.mean().item(),
            "miou_pooled": pooled_c[seen].mean().item() if seen.any() else float("nan"),
            "iou_legacy_per_class": iou_c,
            "fscore_legacy_per_class": f_c,
            "iou_pooled_per_class": pooled_c,
            "num_classes_seen": int(seen.sum()),
            "num_frames": self.num_frames,
        }


def _false_positives(
    logits: torch.Tensor, gt: torch.Tensor | None, threshold: float
) -> tuple[int, int]:
    """(false-positive pixels, negative pixels); gt None: every pixel is a negative."""
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1) (a sigmoid probability), got {threshold}")
    probs, gt = _binary_inputs(logits, gt)
    positive = probs > threshold
    if gt is None:
        return int(positive.sum()), positive.numel()
    return int((positive & ~gt).sum()), int((~gt).sum())


class IllusionMeter:
    """Pooled FPR over a data set: `update(logits)` for empty-GT sets (silent/noise/off-screen),
    `update(logits, gt)` for the swapped set; pixels are pooled, so batching does not matter."""

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold
        self.false_positives = 0
        self.negatives = 0
        self.num_frames = 0

    def update(self, logits: torch.Tensor, gt: torch.Tensor | None = None) -> None:
        fp, neg = _false_positives(logits, gt, self.threshold)
        self.false_positives += fp
        self.negatives += neg
        self.num_frames += logits.shape[0]

    def compute(self) -> dict[str, float | int]:
        """fpr, false_positives, negatives (pixels), num_frames, threshold."""
        if self.negatives == 0:
            raise ValueError("IllusionMeter has no negative pixels; call update(logits) first")
        return {
            "fpr": self.false_positives / self.negatives,
            "false_positives": self.false_positives,
            "negatives": self.negatives,
            "num_frames": self.num_frames,
            "threshold": self.threshold,
        }


NEGATIVE_AUDIO = ("silent", "noise", "offscreen")  # counterfactual sets whose GT is empty


def illusion_score(m_j: float, fprs: dict[str, float]) -> float:
    """Harmonic mean of M_J under the real audio and (1 - FPR) under each negative audio
    (`NEGATIVE_AUDIO`: silent, noise, off-screen), as AVSBench-Robust-style evaluations combine
    segmentation quality with robustness: 4 / (1/M_J + sum_k 1/(1 - FPR_k)). 0 when any term is
    0; high only when the model segments well AND stays quiet on every negative audio."""
    missing = [k for k in NEGATIVE_AUDIO if k not in fprs]
    if missing:
        raise ValueError(
            f"illusion_score needs the FPR under {', '.join(NEGATIVE_AUDIO)}; missing {missing}"
        )
    terms = [float(m_j)] + [1.0 - float(fprs[k]) for k in NEGATIVE_AUDIO]
    bad = [t for t in terms if not 0.0 <= t <= 1.0]
    if bad:
        raise ValueError(f"M_J and every FPR must lie in [0, 1]; got terms {terms}")
    if min(terms) == 0.0:
        return 0.0
    return len(terms) / sum(1.0 / t for t in terms)
