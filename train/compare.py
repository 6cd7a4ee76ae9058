"""Comparing several checkpoints on one test set: per-clip numbers, a table of
mean and 95% interval over training seeds, a paired bootstrap over clips of each model against
a reference, the illusion score, and a plot.

    python -m train.evaluate --checkpoint default=runs/a/seed0/best default=runs/a/seed1/best \
        no_bcsm=runs/b/seed0/best ... --data ROOT --setting ms3 --compare-out OUT

`NAME=DIR` groups checkpoints (one per training seed) under a model name; without `NAME=` the
name is the directory's (its parent's for a `best/` folder). The first name is the reference
unless `--reference` says otherwise. OUT gets comparison.md, comparison.json, comparison.png.

Numbers: M_J is the mean per-frame J at 0.5 (empty GT: 1 if nothing is predicted), i.e. the
batch-independent `j_frame_mean`; FPR is pooled over pixels per counterfactual set; the
illusion score is `selm.metrics.illusion_score`. Over seeds: mean +- t(0.975, n-1) * sd / sqrt(n).
Bootstrap: clips resampled with replacement (the same draw for both models); a model's per-clip
numbers are averaged over its seeds first.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from selm.files import atomic_write, write_text
from selm.metrics import NEGATIVE_AUDIO, illusion_score, per_frame_j

SETS = ("real", "silent", "noise", "offscreen", "swapped")


def parse_checkpoints(items: list[str]) -> dict[str, list[str]]:
    """["name=dir", "dir", ...] -> {name: [dir, ...]} in the order the names first appear."""
    groups: dict[str, list[str]] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            path = item
            p = Path(item.rstrip("/"))
            name = p.parent.name if p.name == "best" and p.parent.name else p.name
            if name.startswith("seed") and p.name == "best":
                name = p.parent.parent.name
        if not name or not path:
            raise ValueError(f"--checkpoint {item!r}: expected DIR or NAME=DIR")
        groups.setdefault(name, []).append(path)
    return groups


@torch.no_grad()
def clip_stats(
    checkpoint: str,
    data_root: str | Path,
    setting: str = "ms3",
    *,
    split: str = "test",
    batch_size: int = 2,
    device: str = "cpu",
) -> dict[str, Any]:
    """Per-clip numbers of one checkpoint: for the real audio and the swapped set, each clip's
    mean per-frame J; for every set, each clip's false-positive and negative pixel counts.
    Counterfactual sets are read from ROOT/counterfactual/<kind>/ (missing ones are skipped)."""
    from selm.weights.resolve import load_pretrained
    from train.batch import binary_view, predict_logits
    from train.data import build_dataset
    from train.distributed import resolve_device

    if setting == "avss":
        raise ValueError("the comparison table covers binary settings (s4, ms3), not avss")
    dev = resolve_device(device)
    model = load_pretrained(checkpoint, map_location=str(dev)).eval()
    out: dict[str, Any] = {"checkpoint": str(checkpoint)}
    for kind in SETS:
        root = Path(data_root) if kind == "real" else Path(data_root) / "counterfactual" / kind
        if not root.is_dir():
            continue
        data = build_dataset(setting, root, split, config=model.config)
        names, j, fp, neg = [], [], [], []
        for batch in DataLoader(data, batch_size=batch_size, shuffle=False):
            logits = predict_logits(model, batch, dev)
            fg, gt = binary_view(logits, batch["masks"])
            keep = batch["has_gt"].bool() & batch["frame_mask"].bool()
            for i, name in enumerate(batch["name"]):
                f, g = fg[i][keep[i]], gt[i][keep[i]]
                if f.shape[0] == 0:
                    continue
                names.append(name)
                j.append(float(per_frame_j(f, g).mean()))
                positive = torch.sigmoid(f.float()) > 0.5
                fp.append(int((positive & (g == 0)).sum()))
                neg.append(int((g == 0).sum()))
        out[kind] = {"clips": names, "j": j, "fp": fp, "neg": neg}
    if "real" not in out:
        raise ValueError(f"{data_root}: no {split} split to evaluate")
    return out


def _metrics(stats: dict[str, Any], idx: np.ndarray | None = None) -> dict[str, float]:
    """M_J, J swapped, FPR per set and the illusion score from per-clip arrays (optionally a
    bootstrap resample `idx` of clip positions)."""

    def pick(x):
        a = np.asarray(x, dtype=np.float64)
        return a if idx is None else a[idx]

    m = {"m_j": float(pick(stats["real"]["j"]).mean())}
    for kind in SETS:
        if kind in stats:
            neg = pick(stats[kind]["neg"]).sum()
            m[f"fpr_{kind}"] = float(pick(stats[kind]["fp"]).sum() / neg) if neg else math.nan
    if "swapped" in stats:
        m["j_swapped"] = float(pick(stats["swapped"]["j"]).mean())
    if all(f"fpr_{k}" in m for k in NEGATIVE_AUDIO):
        m["illusion_score"] = illusion_score(m["m_j"], {k: m[f"fpr_{k}"] for k in NEGATIVE_AUDIO})
    return m


def seed_average(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-clip numbers averaged over a model's seeds (clips must agree)."""
    first = runs[0]
    avg: dict[str, Any] = {}
    for kind in SETS:
        if kind not in first:
            continue
        for r in runs[1:]:
            if r.get(kind, {}).get("clips") != first[kind]["clips"]:
                raise ValueError(f"runs of one model saw different {kind} clips; same test set?")
        avg[kind] = {
            key: np.mean([np.asarray(r[kind][key], dtype=np.float64) for r in runs], axis=0)
            for key in ("j", "fp", "neg")
        }
        avg[kind]["clips"] = first[kind]["clips"]
    return avg


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval of the mean over seeds (one value: no interval)."""
    from scipy import stats

    a = np.asarray(values, dtype=np.float64)
    mean = float(a.mean())
    if a.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, a.size - 1) * a.std(ddof=1) / math.sqrt(a.size))
    return mean, mean - half, mean + half


KEYS = ("m_j", "fpr_real", "fpr_silent", "fpr_noise", "fpr_offscreen", "fpr_swapped", "j_swapped")
KEYS += ("illusion_score",)


def compare(
    runs: dict[str, list[dict[str, Any]]],
    reference: str | None = None,
    *,
    boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """The comparison of models {name: [clip_stats per seed]}: per model its per-seed metrics,
    mean and 95% t-interval over seeds, and (except the reference) the paired bootstrap of
    model - reference over clips (mean difference, 95% percentile interval, P(diff <= 0))."""
    if not runs:
        raise ValueError("no checkpoints to compare")
    reference = reference or next(iter(runs))
    if reference not in runs:
        raise ValueError(f"reference {reference!r} is not among the models {list(runs)}")
    averaged = {name: seed_average(r) for name, r in runs.items()}
    clips = averaged[reference]["real"]["clips"]
    for name, a in averaged.items():
        if a["real"]["clips"] != clips:
            raise ValueError(f"{name} was evaluated on other clips than {reference}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(clips), (boot, len(clips)))
    ref_boot = [_metrics(averaged[reference], d) for d in draws]
    models = {}
    for name, seed_runs in runs.items():
        per_seed = [_metrics(r) for r in seed_runs]
        summary = {}
        for key in KEYS:
            values = [m[key] for m in per_seed if key in m]
            if values:
                mean, low, high = t_interval(values)
                summary[key] = {"mean": mean, "low": low, "high": high, "seeds": values}
        entry: dict[str, Any] = {
            "checkpoints": [r["checkpoint"] for r in seed_runs],
            "num_seeds": len(seed_runs),
            "summary": summary,
        }
        if name != reference:
            model_boot = [_metrics(averaged[name], d) for d in draws]
            paired = {}
            for key in KEYS:
                if key not in summary or key not in ref_boot[0]:
                    continue
                diff = np.array([m[key] - r[key] for m, r in zip(model_boot, ref_boot)])
                point = _metrics(averaged[name])[key] - _metrics(averaged[reference])[key]
                paired[key] = {
                    "diff": float(point),
                    "low": float(np.nanpercentile(diff, 2.5)),
                    "high": float(np.nanpercentile(diff, 97.5)),
                    "p_le_0": float(np.mean(diff <= 0)),
                }
            entry["paired_vs_reference"] = paired
        models[name] = entry
    return {
        "reference": reference,
        "num_clips": len(clips),
        "bootstrap": {"draws": boot, "seed": seed},
        "definitions": {
            "m_j": "mean per-frame J at 0.5, real audio (empty GT: 1 if nothing predicted)",
            "fpr_<set>": "false-positive pixels / negative pixels under that audio, pooled "
            "(real: the clip's own audio, where silent visible objects are negatives)",
            "j_swapped": "mean per-frame J against the GT recomputed for the swapped audio",
            "illusion_score": "harmonic mean of m_j and 1 - fpr under silent, noise, offscreen",
            "interval": "95% Student-t interval of the mean over training seeds",
            "paired_vs_reference": "model - reference, clips resampled (paired), 95% percentile",
        },
        "models": models,
    }


def cell(s: dict[str, Any] | None) -> str:
    if not s:
        return "-"
    if math.isnan(s["low"]):
        return f"{s['mean']:.3f}"
    return f"{s['mean']:.3f} [{s['low']:.3f}, {s['high']:.3f}]"


def markdown(result: dict[str, Any]) -> str:
    """Two tables: mean [95% interval] over seeds; paired bootstrap differences vs reference."""
    ref = result["reference"]
    head = [
        "model",
        "seeds",
        "M_J",
        "FPR real",
        "FPR silent",
        "FPR noise",
        "FPR off-screen",
        "FPR swapped",
    ]
    head += ["J swapped", "illusion score"]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|" + "---:|" * (len(head) - 2)]
    for name, m in result["models"].items():
        s = m["summary"]
        cells = [name + (" (reference)" if name == ref else ""), str(m["num_seeds"])]
        cells += [cell(s.get(k)) for k in KEYS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Paired bootstrap over {result['num_clips']} clips, model - {ref} "]
    lines[-1] += f"({result['bootstrap']['draws']} draws): difference [95% interval]."
    lines += ["", "| model | " + " | ".join(h for h in head[2:]) + " |"]
    lines.append("|---|" + "---:|" * (len(head) - 2))
    for name, m in result["models"].items():
        if name == ref:
            continue
        p = m["paired_vs_reference"]
        cells = [
            f"{p[k]['diff']:+.3f} [{p[k]['low']:+.3f}, {p[k]['high']:+.3f}]" if k in p else "-"
            for k in KEYS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: str | Path) -> Path:
    """PNG: one panel per negative audio, each model's M_J against its FPR there, with the
    95% intervals over seeds as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(NEGATIVE_AUDIO), figsize=(5 * len(NEGATIVE_AUDIO), 4.6))
    colours = plt.get_cmap("tab20")
    for ax, kind in zip(axes, NEGATIVE_AUDIO):
        for i, (name, m) in enumerate(result["models"].items()):
            s = m["summary"]
            x, y = s.get(f"fpr_{kind}"), s.get("m_j")
            if not x or not y:
                continue

            def err(v):
                if math.isnan(v["low"]):
                    return None
                return [[v["mean"] - v["low"]], [v["high"] - v["mean"]]]

            ax.errorbar(
                x["mean"],
                y["mean"],
                xerr=err(x),
                yerr=err(y),
                fmt="o" if name != result["reference"] else "*",
                markersize=7 if name != result["reference"] else 13,
                color=colours(i % 20),
                label=name,
                capsize=3,
            )
        ax.set_xlabel(f"FPR under {kind} audio (lower is better)")
        ax.set_ylabel("M_J under the real audio")
        ax.set_title(f"{kind}")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, loc="best")
    fig.suptitle("M_J vs illusion FPR, mean and 95% interval over seeds")
    fig.tight_layout()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110))
    finally:
        plt.close(fig)


def write_comparison(result: dict[str, Any], out_dir: str | Path, title: str = "") -> dict:
    """comparison.md, comparison.json and comparison.png in `out_dir`; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = (f"# {title}\n\n" if title else "") + markdown(result)
    write_text(out / "comparison.md", md)
    write_text(out / "comparison.json", json.dumps(result, indent=1) + "\n")
    png = plot(result, out / "comparison.png")
    return {"markdown": out / "comparison.md", "json": out / "comparison.json", "plot": png}


def run_comparison(
    checkpoints: list[str],
    data_root: str | Path,
    out_dir: str | Path,
    *,
    setting: str = "ms3",
    split: str = "test",
    reference: str | None = None,
    device: str = "cpu",
    batch_size: int = 2,
    boot: int = 2000,
) -> dict[str, Any]:
    """Evaluate every checkpoint (per clip), compare, write the table and plot."""
    groups = parse_checkpoints(checkpoints)
    runs = {
        name: [
            clip_stats(p, data_root, setting, split=split, batch_size=batch_size, device=device)
            for p in paths
        ]
        for name, paths in groups.items()
    }
    result = compare(runs, reference, boot=boot)
    result["data_root"] = str(data_root)
    write_comparison(result, out_dir, title=f"Comparison on {data_root} ({split})")
    return result
