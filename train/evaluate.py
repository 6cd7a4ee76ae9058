"""Evaluation (SPEC §8): `python -m train.evaluate --checkpoint DIR --data ROOT --setting s4`.

Reports AVSBench's legacy metrics (with the batch size that produced them), our batch-independent
ones, per-category numbers and, for every counterfactual set found under
`ROOT/counterfactual/{silent,noise,swapped,offscreen}/`, the illusion FPR (false-positive pixels
over negative pixels; with an empty GT that is the fraction of pixels predicted positive) and,
where the recomputed GT is not empty (swapped audio), J and F against it. Writes a JSON report
and, with --save-masks, the predicted masks as PNGs.

AVSS: the mIoU/F numbers use the argmax over the classes; the binary numbers (foreground J/F,
FPR) use P(not background) = 1 - softmax(logits)[0], i.e. the logit logsumexp(l[1:]) - l[0].
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader

from selm.files import atomic_write
from selm.metrics import DEFINITIONS, IllusionMeter, MetricAccumulator, SemanticMeter
from selm.presets import SETTINGS
from train.config import AMP_MODES, USER_ERRORS, user_error_message

COUNTERFACTUAL_SETS = ("silent", "noise", "swapped", "offscreen")
_TENSOR_KEYS = ("frames", "audio", "masks", "has_gt", "frame_mask")


def best_metric_name(setting: str) -> str:
    """The validation number the best checkpoint is chosen by: M_J as the release computes it."""
    return "miou_legacy" if setting == "avss" else "j_legacy"


def autocast(device: torch.device, amp: str):
    """bf16/fp16 autocast on CUDA; a no-op elsewhere or with amp='off'."""
    if device.type != "cuda" or amp == "off":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch's tensors on `device` (names and categories stay lists of strings)."""
    missing = [k for k in _TENSOR_KEYS if k not in batch]
    if missing:
        raise KeyError(f"a batch lacks {missing}; data sets must give {_TENSOR_KEYS}")
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
        for k, v in batch.items()
    }


def build_eval_dataset(setting: str, root: str | Path, split: str, model_cfg, **options):
    """The data set a model of `model_cfg` reads (its input size; `options` as build_dataset's,
    e.g. audio="wav")."""
    from train.data import build_dataset

    return build_dataset(setting, root, split, config=model_cfg, **options)


@torch.no_grad()
def predict_logits(model, batch: dict[str, Any], device: torch.device, amp: str = "off"):
    """(B, T, N, Hm, Wm) float32 CPU logits at the masks' size (bilinear, align_corners=True)."""
    b = to_device(batch, device)
    with autocast(device, amp):
        logits = model(b["frames"], b["audio"], b["frame_mask"]).logits
    logits = logits.float()
    size = batch["masks"].shape[-2:]
    if logits.shape[-2:] != size:
        logits = F.interpolate(
            logits.flatten(0, 1), size=size, mode="bilinear", align_corners=True
        ).unflatten(0, logits.shape[:2])
    return logits.cpu()


def binary_view(logits: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., N, H, W) logits and masks -> one foreground logit (..., H, W) and a 0/1 mask."""
    if logits.shape[-3] == 1:
        return logits[..., 0, :, :], (masks > 0).float()
    fg = torch.logsumexp(logits[..., 1:, :, :], dim=-3) - logits[..., 0, :, :]
    return fg, (masks > 0).float()


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
        masks = batch["masks"]
        keep = batch["has_gt"].bool() & batch["frame_mask"].bool()  # (B, T)
        if (logits.shape[2] > 1) != (setting == "avss"):
            raise ValueError(
                f"a model with {logits.shape[2]} output channel(s) cannot be "
                f"evaluated on {setting}: S4/MS3 need 1, AVSS one per class"
            )
        clips_per_batch = clips_per_batch or len(masks)
        if logits.shape[2] > 1:
            if semantic is None:
                semantic, semantic_real = (SemanticMeter(logits.shape[2]) for _ in range(2))
            labels = masks.long().flatten(0, 1)
            semantic.update(logits.flatten(0, 1), labels)  # padded frames included, as released
            semantic_real.update(logits.flatten(0, 1), labels, frame_mask=keep.flatten())
        fg, gt = binary_view(logits, masks)
        if keep.any():
            binary.update(fg[keep], gt[keep])
        for cat in set(batch.get("category", [])) - {""}:  # MS3 clips have no category
            sel = keep & torch.tensor([c == cat for c in batch["category"]])[:, None]
            if sel.any():
                per_cat[cat].update(fg[sel], gt[sel])
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
        fg, gt = binary_view(logits, batch["masks"])
        if not keep.any():
            continue
        meter.update(fg[keep], gt[keep])
        acc.update(fg[keep], gt[keep])
        gt_pixels += int(gt[keep].sum())
    out: dict[str, Any] = {**meter.compute(), "gt_empty": gt_pixels == 0}
    if gt_pixels:
        m = acc.compute()
        out.update({k: m[k] for k in ("j_frame_mean", "f_frame_mean", "j_legacy", "f_legacy")})
    return out


def save_masks(directory: str | Path, logits: torch.Tensor, batch: dict[str, Any]) -> None:
    """Real frames' predictions as PNGs: DIR/[category/]name/name_{t}.png (t from 1); binary masks
    0/255, AVSS class ids as 8-bit grey values."""
    for i, name in enumerate(batch["name"]):
        cat = batch.get("category", [""] * len(batch["name"]))[i]
        folder = Path(directory) / cat / name if cat else Path(directory) / name
        folder.mkdir(parents=True, exist_ok=True)
        for t in range(logits.shape[1]):
            if not batch["frame_mask"][i, t]:
                continue
            x = logits[i, t]
            mask = (
                (x[0] > 0).numpy().astype(np.uint8) * 255
                if x.shape[0] == 1
                else (x.argmax(0).numpy().astype(np.uint8))
            )
            Image.fromarray(mask).save(folder / f"{name}_{t + 1}.png")


def evaluate_checkpoint(
    checkpoint: str,
    data_root: str | Path,
    setting: str,
    *,
    split: str = "test",
    batch_size: int = 2,
    device: str = "auto",
    amp: str = "off",
    num_workers: int = 0,
    mask_dir: str | Path | None = None,
    counterfactual: bool = True,
    audio: str | None = None,
    release_protocol: bool = False,
) -> dict[str, Any]:
    """The full report for one checkpoint on one data root (see the module docstring).
    `release_protocol`: test as the authors' release does (RELEASE_PROTOCOL)."""
    from selm.weights.resolve import load_pretrained
    from train.distributed import resolve_device

    dev = resolve_device(device)
    overrides = RELEASE_PROTOCOL if release_protocol else {}
    model = load_pretrained(checkpoint, map_location=str(dev), **overrides)
    cfg = model.config

    def loader(root: Path) -> DataLoader:
        data = build_eval_dataset(setting, root, split, cfg, **({"audio": audio} if audio else {}))
        return DataLoader(
            data,
            batch_size=batch_size,
            shuffle=False,
            num_workers=num_workers,
            pin_memory=dev.type == "cuda",
        )

    report: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "data_root": str(data_root),
        "setting": setting,
        "split": split,
        "batch_size": batch_size,
        "release_protocol": overrides,
        "metrics": evaluate_model(
            model, loader(Path(data_root)), setting=setting, device=dev, amp=amp, mask_dir=mask_dir
        ),
        "counterfactual": {},
    }
    if counterfactual:
        for kind in COUNTERFACTUAL_SETS:
            root = Path(data_root) / "counterfactual" / kind
            if root.is_dir():
                report["counterfactual"][kind] = evaluate_counterfactual(
                    model, loader(root), device=dev, amp=amp
                )
    report["definitions"] = DEFINITIONS
    return report


# the release's test-time behaviours (docs/official.md): Gumbel noise in CLEVER at test time,
# and BCSM gates in its batch order (clips of a batch mix at B >= 2; its test scripts use B = 2)
RELEASE_PROTOCOL = {"gumbel_at_eval": True, "release_batch_gates": True}


def _plain(value: Any) -> Any:
    return value.tolist() if isinstance(value, torch.Tensor) else value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n")[0])
    p.add_argument(
        "--checkpoint",
        required=True,
        nargs="+",
        action="extend",
        help="checkpoint dir (config.json + weights); several (NAME=DIR, one per seed) make a "
        "comparison table (see train/compare.py)",
    )
    p.add_argument("--data", required=True, help="data root (AVSBench or AVS-Synth)")
    p.add_argument("--setting", required=True, choices=SETTINGS)
    p.add_argument("--split", default="test")
    p.add_argument(
        "--batch-size",
        type=int,
        default=2,
        help="clips per test batch; the legacy M_J/M_F depend on it (release: 2)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="off", choices=AMP_MODES)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument(
        "--audio",
        choices=("pkl", "wav"),
        help="log-mel from the pickles or the wavs (default: the layout's own)",
    )
    p.add_argument(
        "--out",
        help="JSON report path (default: eval_<setting>_<split>.json in the "
        "checkpoint dir, or here for a hub id)",
    )
    p.add_argument("--save-masks", metavar="DIR", help="also write the predicted masks as PNGs")
    p.add_argument(
        "--no-counterfactual",
        action="store_true",
        help="skip the counterfactual sets even if the data root has them",
    )
    p.add_argument(
        "--release-protocol",
        action="store_true",
        help="test as the authors' release does: Gumbel noise at test time and its BCSM batch "
        "order (with --batch-size 2, as its scripts); off by default",
    )
    p.add_argument(
        "--compare-out",
        metavar="DIR",
        help="write comparison.{md,json,png} of all checkpoints there (default with several: "
        "./comparison)",
    )
    p.add_argument("--reference", help="model name the others are compared with (default: first)")
    a = p.parse_args(argv)
    if len(a.checkpoint) > 1 or a.compare_out:
        from train.compare import run_comparison

        out_dir = Path(a.compare_out or "comparison")
        try:
            result = run_comparison(
                a.checkpoint,
                a.data,
                out_dir,
                setting=a.setting,
                split=a.split,
                reference=a.reference,
                device=a.device,
                batch_size=a.batch_size,
            )
        except USER_ERRORS as err:
            print(f"{p.prog}: error: {user_error_message(err)}", file=sys.stderr)
            return 2
        print((out_dir / "comparison.md").read_text())
        print(f"comparison written to {out_dir} ({len(result['models'])} models)")
        return 0
    a.checkpoint = a.checkpoint[0]
    ckpt = Path(a.checkpoint)
    out = (
        Path(a.out)
        if a.out
        else (ckpt if ckpt.is_dir() else Path(".")) / (f"eval_{a.setting}_{a.split}.json")
    )
    if out.is_dir():
        p.error(f"--out {out} is a folder; give the JSON report's file name")
    try:  # a checkpoint, data or disk error: one line and exit code 2 (see train.config)
        report = evaluate_checkpoint(
            a.checkpoint,
            a.data,
            a.setting,
            split=a.split,
            batch_size=a.batch_size,
            device=a.device,
            amp=a.amp,
            num_workers=a.num_workers,
            mask_dir=a.save_masks,
            counterfactual=not a.no_counterfactual,
            audio=a.audio,
            release_protocol=a.release_protocol,
        )
        text = json.dumps(report, indent=2) + "\n"
        atomic_write(out, lambda tmp: tmp.write_text(text))
    except USER_ERRORS as err:
        print(f"{p.prog}: error: {user_error_message(err)}", file=sys.stderr)
        return 2
    m = report["metrics"]
    keys = (
        ("miou_legacy", "fscore_legacy", "miou_pooled")
        if a.setting == "avss"
        else ("j_legacy", "f_legacy", "j_frame_mean", "f_frame_mean", "f_dataset")
    )
    print(
        f"{a.setting} {a.split} ({m['legacy_batch_size']} clips per legacy batch): "
        + ", ".join(f"{k} {m[k]:.4f}" for k in keys)
    )
    for kind, r in report["counterfactual"].items():
        extra = f", J vs recomputed GT {r['j_frame_mean']:.4f}" if not r["gt_empty"] else ""
        print(f"  counterfactual {kind}: FPR {r['fpr']:.4f}{extra}")
    print(f"report written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
