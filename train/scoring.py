"""A model scored on a data loader (docs/model.md, section 'Metrics'): the metrics of one pass
(`evaluate_model`, what training validates with and `train.evaluate` reports), the illusion
numbers on a counterfactual set, and the predicted masks as PNGs.

AVSS: the mIoU/F numbers use the argmax over the classes; the binary numbers (foreground J/F,
FPR) use P(not background) = 1 - softmax(logits)[0], i.e. the logit logsumexp(l[1:]) - l[0].
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from selm.metrics import IllusionMeter, MetricAccumulator, SemanticMeter
from train.batch import binary_view, predict_logits


def best_metric_name(setting: str) -> str:
    """The validation number the best checkpoint is chosen by: M_J as the release computes it."""
    return "miou_legacy" if setting == "avss" else "j_legacy"


def evaluate_model(
    model,
    loader: DataLoader,
    *,
    setting: str,
    device: torch.device | str = "cpu",
    amp: str = "off",
    mask_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Metrics of `model` on `loader` (one loader batch = one legacy test batch).

    Binary frames are those with GT and not padded. Keys: MetricAccumulator's (S4/MS3; for AVSS
    under `foreground`), SemanticMeter's legacy numbers over all frames as released and its pooled
    mIoU over real GT frames (AVSS), `per_category`, `legacy_batch_size` (clips per batch).
    """
    device = torch.device(device)
    model.eval()
    binary, per_cat = MetricAccumulator(), defaultdict(MetricAccumulator)
    semantic = semantic_real = None
    clips_per_batch = None
    for batch in loader:
        logits = predict_logits(model, batch, device, amp)
        # clip by clip: a batch's masks may differ in size (a list, see collate_clips)
        clips = list(zip(logits, batch["masks"]))  # (T, N, Hm, Wm), (T, Hm, Wm)
        keep = batch["has_gt"].bool() & batch["frame_mask"].bool()  # (B, T)
        classes = clips[0][0].shape[1]
        if (classes > 1) != (setting == "avss"):
            raise ValueError(
                f"a model with {classes} output channel(s) cannot be "
                f"evaluated on {setting}: S4/MS3 need 1, AVSS one per class"
            )
        clips_per_batch = clips_per_batch or len(clips)
        if classes > 1:
            if semantic is None:
                semantic, semantic_real = (SemanticMeter(classes) for _ in range(2))
            for (x, m), k in zip(clips, keep):
                semantic.update(x, m.long())  # padded frames included, as released
                semantic_real.update(x, m.long(), frame_mask=k)
        views = [binary_view(x, m) for x, m in clips]  # (T, Hm, Wm) each
        kept = [(fg[k], gt[k]) for (fg, gt), k in zip(views, keep) if k.any()]
        if kept:  # one legacy batch, whatever the sizes of its frames
            binary.update([fg for fg, _ in kept], [gt for _, gt in kept])
        for i, cat in enumerate(batch.get("category", [])):
            if cat and keep[i].any():  # MS3 clips have no category
                fg, gt = views[i]
                per_cat[cat].update(fg[keep[i]], gt[keep[i]])
        if mask_dir is not None:
            save_masks(mask_dir, logits, batch)
    if clips_per_batch is None:
        raise ValueError("the evaluation data set is empty")
    binary_out = binary.compute()
    out: dict[str, Any] = {"legacy_batch_size": clips_per_batch}
    if semantic is None:
        out.update(binary_out)
    else:
        legacy = semantic.compute()
        real = semantic_real.compute()
        out.update({k: _plain(v) for k, v in legacy.items() if "pooled" not in k})
        out.update({k: _plain(v) for k, v in real.items() if "pooled" in k})
        out["foreground"] = binary_out
    out["per_category"] = {
        c: {k: v for k, v in acc.compute().items() if "legacy" not in k}
        for c, acc in sorted(per_cat.items())
    }
    return out


def evaluate_counterfactual(
    model,
    loader: DataLoader,
    *,
    device: torch.device | str = "cpu",
    amp: str = "off",
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Illusion numbers on one counterfactual set: pooled FPR = FP / negative pixels over the real
    GT frames; where the (recomputed) GT is not empty, also J and F against it."""
    device = torch.device(device)
    model.eval()
    meter, acc, gt_pixels = IllusionMeter(threshold), MetricAccumulator(), 0
    for batch in loader:
        logits = predict_logits(model, batch, device, amp)
        keep = batch["has_gt"].bool() & batch["frame_mask"].bool()
        kept = []
        for x, m, k in zip(logits, batch["masks"], keep):  # clip by clip (see evaluate_model)
            if k.any():
                fg, gt = binary_view(x, m)
                kept.append((fg[k], gt[k]))
        if not kept:
            continue
        fgs, gts = [fg for fg, _ in kept], [gt for _, gt in kept]
        for fg, gt in kept:
            meter.update(fg, gt)
        acc.update(fgs, gts)
        gt_pixels += int(sum(gt.sum() for gt in gts))
    out: dict[str, Any] = {**meter.compute(), "gt_empty": gt_pixels == 0}
    if gt_pixels:
        m = acc.compute()
        out.update({k: m[k] for k in ("j_frame_mean", "f_frame_mean", "j_legacy", "f_legacy")})
    return out


def save_masks(directory: str | Path, logits, batch: dict[str, Any]) -> None:
    """Real frames' predictions (`predict_logits`' tensor or list) as PNGs:
    DIR/[category/]name/name_{t}.png (t from 1); binary masks 0/255, AVSS class ids as 8-bit grey
    values."""
    for i, name in enumerate(batch["name"]):
        cat = batch.get("category", [""] * len(batch["name"]))[i]
        folder = Path(directory) / cat / name if cat else Path(directory) / name
        folder.mkdir(parents=True, exist_ok=True)
        for t in range(len(logits[i])):
            if not batch["frame_mask"][i, t]:
                continue
            x = logits[i][t]
            mask = (
                (x[0] > 0).numpy().astype(np.uint8) * 255
                if x.shape[0] == 1
                else (x.argmax(0).numpy().astype(np.uint8))
            )
            Image.fromarray(mask).save(folder / f"{name}_{t + 1}.png")


def _plain(value: Any) -> Any:
    return value.tolist() if isinstance(value, torch.Tensor) else value
