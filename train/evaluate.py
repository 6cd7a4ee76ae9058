"""Evaluation (docs/model.md, section 'Metrics'):
`python -m train.evaluate --checkpoint DIR --data ROOT --setting s4`.

Reports AVSBench's legacy metrics (with the batch size that produced them), our batch-independent
ones, per-category numbers and, for every counterfactual set found under
`ROOT/counterfactual/{silent,noise,swapped,offscreen}/`, the illusion FPR (false-positive pixels
over negative pixels; with an empty GT that is the fraction of pixels predicted positive) and,
where the recomputed GT is not empty (swapped audio), J and F against it. Writes a JSON report
and, with --save-masks, the predicted masks as PNGs (the scoring itself: train.scoring).
Several checkpoints (NAME=DIR, one per seed) make a comparison table instead (train.compare).

AVSS: the mIoU/F numbers use the argmax over the classes; the binary numbers (foreground J/F,
FPR) use P(not background) = 1 - softmax(logits)[0], i.e. the logit logsumexp(l[1:]) - l[0].
Logits are scored at each label's own size (resized bilinearly to it), labels of different sizes
in one batch included; with --release-protocol, AVSS labels are resized to 224 x 224 (nearest)
and the 224 x 224 logits scored against them, as the release does. The report says which
resolution and which audio path (log-mel pickles, the wav, or cached VGGish embeddings) ran.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from selm.files import atomic_write
from selm.metrics import DEFINITIONS
from selm.presets import SETTINGS
from train.config import AMP_MODES, USER_ERRORS, user_error_message
from train.data import build_dataset
from train.scoring import evaluate_counterfactual, evaluate_model

COUNTERFACTUAL_SETS = ("silent", "noise", "swapped", "offscreen")


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
    `release_protocol`: test as the authors' release does (RELEASE_PROTOCOL; log-mel rather than
    cached embeddings unless `audio` says otherwise; AVSS labels at RELEASE_AVSS_LABEL_SIZE)."""
    from selm.weights.resolve import load_pretrained
    from train.data import collate_clips
    from train.distributed import resolve_device

    dev = resolve_device(device)
    overrides = RELEASE_PROTOCOL if release_protocol else {}
    model = load_pretrained(checkpoint, map_location=str(dev), **overrides)
    cfg = model.config
    options: dict[str, Any] = {}
    if audio:
        options["audio"] = audio
    elif release_protocol:  # the release computes log-mel every time, never cached embeddings
        options["audio"] = "log_mel"
    if release_protocol and setting == "avss":
        options["mask_size"] = RELEASE_AVSS_LABEL_SIZE

    def loader(root: Path) -> DataLoader:
        data = build_dataset(setting, root, split, config=cfg, **options)
        return DataLoader(
            data,
            batch_size=batch_size,
            shuffle=False,
            num_workers=num_workers,
            pin_memory=dev.type == "cuda",
            collate_fn=collate_clips,
        )

    real = loader(Path(data_root))
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "data_root": str(data_root),
        "setting": setting,
        "split": split,
        "batch_size": batch_size,
        "release_protocol": overrides,
        "scored_at": scoring_resolution(options.get("mask_size")),
        "audio": audio_source(real.dataset),
        "metrics": evaluate_model(
            model, real, setting=setting, device=dev, amp=amp, mask_dir=mask_dir
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


def scoring_resolution(mask_size: int | None) -> str:
    """The report's line on the resolution the logits were scored at."""
    if mask_size is None:
        return "each label's own size (logits resized to it, bilinear, align_corners=True)"
    return (
        f"labels resized to {mask_size} x {mask_size} (nearest neighbour), logits scored at "
        f"{mask_size} x {mask_size} (resized to it, bilinear, where the model outputs another size)"
    )


def audio_source(data) -> str:
    """The report's line on the audio the model heard: which file and which front end."""
    if data.audio == "vggish":
        return (
            f"VGGish embeddings cached under {data.vggish_cache} (written earlier by whichever "
            "VGGish filled the cache; --audio wav or pkl computes them afresh)"
        )
    if data.audio == "pkl":
        return "log-mel examples from the data set's .pkl files, then the model's VGGish"
    return (
        "log-mel computed from each clip's wav (torchaudio, float32, resampled to 16 kHz where "
        "the wav is not), then the model's VGGish"
    )


# the release's test-time behaviours (docs/official.md): Gumbel noise in CLEVER at test time,
# and BCSM gates in its batch order (clips of a batch mix at B >= 2; its test scripts use B = 2)
RELEASE_PROTOCOL = {"gumbel_at_eval": True, "release_batch_gates": True}
# the release resizes AVSS label PNGs to this size (nearest) and scores its 224 x 224 logits there
RELEASE_AVSS_LABEL_SIZE = 224


def build_parser() -> argparse.ArgumentParser:
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
        help="log-mel from the pickles or the wavs (default: a frozen VGGish's cached embeddings "
        "where <data>/vggish_embeddings/<split> exists, else the layout's log-mel; with "
        "--release-protocol always the layout's log-mel); the report says which ran",
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
        help="test as the authors' release does: Gumbel noise at test time, its BCSM batch "
        "order (with --batch-size 2, as its scripts), log-mel recomputed rather than cached "
        "embeddings, AVSS labels resized to 224 x 224; off by default",
    )
    p.add_argument(
        "--compare-out",
        metavar="DIR",
        help="write comparison.{md,json,png} of all checkpoints there (default with several: "
        "./comparison)",
    )
    p.add_argument("--reference", help="model name the others are compared with (default: first)")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    if len(a.checkpoint) > 1 or a.compare_out:
        return _compare(p, a)
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
    _print_report(report, a.setting, a.split)
    print(f"report written to {out}")
    return 0


def _compare(p: argparse.ArgumentParser, a: argparse.Namespace) -> int:
    """Several checkpoints: the comparison table (train.compare) instead of one report."""
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


def _print_report(report: dict[str, Any], setting: str, split: str) -> None:
    m = report["metrics"]
    keys = (
        ("miou_legacy", "fscore_legacy", "miou_pooled")
        if setting == "avss"
        else ("j_legacy", "f_legacy", "j_frame_mean", "f_frame_mean", "f_dataset")
    )
    print(
        f"{setting} {split} ({m['legacy_batch_size']} clips per legacy batch): "
        + ", ".join(f"{k} {m[k]:.4f}" for k in keys)
    )
    print(f"  scored at {report['scored_at']}; audio: {report['audio']}")
    for kind, r in report["counterfactual"].items():
        extra = f", J vs recomputed GT {r['j_frame_mean']:.4f}" if not r["gt_empty"] else ""
        print(f"  counterfactual {kind}: FPR {r['fpr']:.4f}{extra}")


if __name__ == "__main__":
    sys.exit(main())
