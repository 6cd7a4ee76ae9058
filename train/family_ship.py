"""Shipping the model family: the members most different from the default (by the paired
illusion-score difference), each copied with a model card (README.md) and its evaluation row
(evaluation.json), and an index of the whole comparison table (`python -m train.run_family
--ship DIR`)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from selm.files import write_text
from selm.metrics import illusion_score
from selm.weights.checkpoint import CARD_NAME, EVALUATION_NAME
from train.compare import KEYS, cell
from train.config import load_config

DEFAULT = "default"  # the family member the others are compared with
SHIP_PREFIX = "selm-hard"  # shipped folders: selm-hard, selm-hard-<config name>


def config_difference(config: Path, default: Path) -> dict[str, tuple]:
    """Every resolved TrainConfig / SelMConfig field in which `config` differs from `default`
    (`seed`, `out_dir` aside): {field: (default's, config's)}."""
    a, b = load_config(default), load_config(config)
    out, theirs = {}, b.to_dict()
    for key, value in a.to_dict().items():
        if key in ("model", "out_dir"):
            continue
        if theirs[key] != value:
            out[key] = (value, theirs[key])
    ma, mb = a.model_config().to_dict(), b.model_config().to_dict()
    out.update({f"model.{k}": (v, mb[k]) for k, v in ma.items() if mb[k] != v})
    return out


def choose_siblings(result: dict, k: int) -> list[str]:
    """The k siblings whose paired illusion-score difference from the default is largest in
    size (ties: the M_J difference), most different first."""

    def size(name: str) -> tuple[float, float]:
        p = result["models"][name]["paired_vs_reference"]
        return (abs(p["illusion_score"]["diff"]), abs(p["m_j"]["diff"]))

    siblings = [n for n in result["models"] if n != result["reference"]]
    return sorted(siblings, key=size, reverse=True)[:k]


def folder_name(config_name: str) -> str:
    return SHIP_PREFIX if config_name == DEFAULT else f"{SHIP_PREFIX}-{config_name}"


def evaluation_row(result: dict, name: str) -> dict:
    """What a model card (and the demo) shows of one model: its summary with intervals and,
    for a sibling, the paired difference from the default."""
    m = result["models"][name]
    row = {
        "model": name,
        "test_set": result.get("test_root"),
        "num_clips": result["num_clips"],
        "num_seeds": m["num_seeds"],
        "reference": result["reference"],
        "summary": {k: {x: v[x] for x in ("mean", "low", "high")} for k, v in m["summary"].items()},
        "definitions": result["definitions"],
    }
    if "paired_vs_reference" in m:
        row["paired_vs_reference"] = m["paired_vs_reference"]
    return row


def ship(
    result: dict, out: Path, dest: Path, configs: list[Path], record: dict, k: int
) -> list[str]:
    """Copy seed 0 of the default and of the k most different siblings into DEST (model card,
    evaluation.json) and write DEST/README.md with the whole table; returns the shipped names,
    the default first."""
    by_name = {c.stem: c for c in configs}
    chosen = [DEFAULT, *choose_siblings(result, k)]
    dest.mkdir(parents=True, exist_ok=True)
    timings = {r["job"]: r for r in record["runs"]}
    for name in chosen:
        src = out / name / "seed0" / "best"
        folder = dest / folder_name(name)
        tmp = dest / f".{folder.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        row = evaluation_row(result, name)
        write_text(tmp / EVALUATION_NAME, json.dumps(row, indent=1) + "\n")
        diff = config_difference(by_name[name], by_name[DEFAULT])
        write_text(
            tmp / CARD_NAME,
            model_card(name, row, diff, record, timings.get(f"{name}/seed0", {})),
        )
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        print(f"shipped {name} -> {folder}")
    summary = (out / "comparison.md").read_text()
    index = [
        "# Shipped checkpoints: the SelM family on hard AVS-Synth",
        "",
        f"Trained by `python -m train.run_family` ({record['device']}, {record['jobs']} runs at a "
        f"time, {record['threads']} thread(s) each; whole family {record['wall_s'] / 60:.1f} min "
        f"wall). Shipped (seed 0 of each): "
        + ", ".join(f"`{folder_name(n)}`" for n in chosen)
        + ". Every config is in the table below, whatever it shows.",
        "",
        *(
            [
                "Runs missing from the table (not finished in time): "
                + ", ".join(r["job"] for r in record["runs"] if "error" in r)
                + ".",
                "",
            ]
            if any("error" in r for r in record["runs"])
            else []
        ),
        summary.split("\n", 2)[2] if summary.startswith("# ") else summary,
        empty_baseline(Path(result["test_root"])),
    ]
    write_text(dest / "README.md", "\n".join(index))
    return chosen


def empty_baseline(test_root: Path) -> str:
    """A line with what a model that never predicts anything scores on the test set: M_J is
    the fraction of frames whose GT is empty (J = 1 there), every FPR is 0."""
    meta = json.loads((test_root / "metadata.json").read_text())
    frames = [not cats for clip in meta["clips"]["ms3"] for cats in clip["gt_categories"]]
    m_j = sum(frames) / len(frames)
    score = illusion_score(m_j, {"silent": 0.0, "noise": 0.0, "offscreen": 0.0})
    return (
        f"\nFor scale: a model that predicts an empty mask everywhere scores M_J {m_j:.3f} here "
        f"(the share of test frames whose GT is empty), FPR 0 under every audio and illusion "
        f"score {score:.3f}. Intervals are Student-t over seeds and are not clipped to [0, 1].\n"
    )


def _card_front(name: str, row: dict, record: dict) -> list[str]:
    """A shipped model card's front matter: licence, tags, the test set and the headline
    numbers as a model-index."""
    front = [
        "---",
        "library_name: selm",
        "license: apache-2.0",
        "tags: [audio-visual-segmentation, selm, avs-synth]",
        "datasets: [avs-synth-hard]",
        "model-index:",
        f"- name: {folder_name(name)}",
        "  results:",
        "  - task: {type: audio-visual-segmentation}",
        f"    dataset: {{name: AVS-Synth hard, type: avs-synth, split: test, "
        f"seed: {record['test_seed']}}}",
        "    metrics:",
    ]
    s = row["summary"]
    for key in ("m_j", "fpr_silent", "fpr_noise", "fpr_offscreen", "illusion_score"):
        if key in s:
            front.append(f"    - {{type: {key}, value: {s[key]['mean']:.4f}}}")
    return [*front, "---"]


def model_card(name: str, row: dict, diff: dict, record: dict, timing: dict) -> str:
    """The README.md of a shipped family member: its one switch, the recipe, machine and wall
    time it was trained with, and its evaluation row."""
    s = row["summary"]
    switch = (
        "none (the default)"
        if not diff
        else ", ".join(f"`{k}`: {v[0]!r} -> {v[1]!r}" for k, v in diff.items())
    )
    machine, r = record["machine_start"], record["recipe"]
    body = [
        f"# {folder_name(name)}",
        "",
        f"SelM family member `{name}` (config `train/configs/family/{name}.yaml`); its one "
        f"difference from the default: {switch}.",
        "",
        f"- Recipe: `{r['preset']}` at D = {r['dim']}, input {r['input_size']} x "
        f"{r['input_size']}, from scratch; AdamW lr {r['lr']:g}, weight decay "
        f"{r['weight_decay']:g}, grad clip {r['grad_clip']:g}, batch {r['batch_size']}, "
        f"{r['epochs']} epoch(s) of {r['train_clips']} hard AVS-Synth training clips "
        f"({r['steps']} steps), augmentation {'on' if r['augment'] else 'off'}; the best of "
        f"the end-of-epoch validations ({r['val_clips']} val clips). Every family member has "
        "exactly this recipe and budget.",
        f"- Command: `{record['command']}` (this folder: seed 0).",
        f"- Machine: {machine['processor']}, {machine['cpu_count']} CPU cores, "
        f"{machine.get('cuda_device', 'no GPU')}, torch {machine['torch']}; load average at the "
        f"start {machine.get('load_average')}.",
        f"- Wall time: training {timing.get('train_s', '?')} s, evaluation "
        f"{timing.get('eval_s', '?')} s (this seed; {record['jobs']} runs at a time).",
        f"- Data: training seed {record['data_seed']} (hard), test seed {record['test_seed']} "
        f"(hard, {row['num_clips']} clips, never trained on, all counterfactual sets).",
        "",
        f"## Evaluation (mean [95% interval] over {row['num_seeds']} training seeds)",
        "",
        "| M_J | FPR real | FPR silent | FPR noise | FPR off-screen | FPR swapped | J swapped | "
        "illusion score |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| " + " | ".join(cell(s.get(k)) for k in KEYS) + " |",
        "",
    ]
    if "paired_vs_reference" in row:
        p = row["paired_vs_reference"]
        body += [
            "Paired bootstrap over test clips, this model - default: "
            + ", ".join(
                f"{k} {v['diff']:+.3f} [{v['low']:+.3f}, {v['high']:+.3f}]" for k, v in p.items()
            )
            + ".",
            "",
        ]
    body.append("The same row, machine-readable: `evaluation.json`.")
    return "\n".join([*_card_front(name, row, record), "", *body]) + "\n"
