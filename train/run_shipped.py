"""Train the shipped AVS-Synth models with one recipe and compare them on a fresh test set.

    python -m train.run_shipped --data data/avs_synth --out runs/shipped [--time-limit 20]
        [--nproc 1] [--test-seed 1001 --test-clips 40] [--set key=value ...]

For each config (default: synth_tiny, synth_tiny_no_bcsm, synth_tiny_no_dam, synth_tiny_a2v,
synth_tiny_no_aux) it trains into OUT/NAME (resuming a run that stopped, skipping one that
finished), then evaluates OUT/NAME/best on the test split of an AVS-Synth set generated with
another seed (OUT/test_seed<S>, with counterfactual audio) and writes OUT/results.md: M_J, M_F
(legacy, batch 2), per-frame J and F, and the illusion FPR under each counterfactual audio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from train.config import load_config
from train.evaluate import COUNTERFACTUAL_SETS, evaluate_checkpoint

SHIPPED = (
    "synth_tiny",
    "synth_tiny_no_bcsm",
    "synth_tiny_no_dam",
    "synth_tiny_a2v",
    "synth_tiny_no_aux",
)
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def finished(run_dir: Path) -> bool:
    """Whether the run's metrics.jsonl ends with a `stop` record whose reason is `done`."""
    log = run_dir / "metrics.jsonl"
    if not log.is_file():
        return False
    stops = [json.loads(x) for x in log.read_text().splitlines() if '"stop"' in x]
    return bool(stops) and stops[-1].get("reason") == "done"


def train_command(
    config: Path,
    run_dir: Path,
    data: str,
    nproc: int,
    time_limit: float | None,
    overrides: list[str],
) -> list[str]:
    launcher = (
        [sys.executable, "-m", "train"]
        if nproc == 1
        else [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "train",
        ]
    )
    if (run_dir / "last.pt").exists():
        args = ["--resume", str(run_dir)] + [
            a for o in overrides if not o.startswith("model.") for a in ("--set", o)
        ]
    else:
        args = ["--config", str(config), "--out", str(run_dir), "--set", f"data_root={data}"]
        args += [a for o in overrides for a in ("--set", o)]
    if time_limit:
        args += ["--time-limit", str(time_limit)]
    return launcher + args


def fresh_test_set(out: Path, data: Path, seed: int, clips: int, settings: set[str]) -> Path:
    """An AVS-Synth test split (with counterfactuals) from another seed, at the frame size of
    the training data."""
    from train.synth.generate import generate

    root = out / f"test_seed{seed}"
    if (root / "metadata.json").is_file():
        return root
    meta = data / "metadata.json"
    size = json.loads(meta.read_text())["size"] if meta.is_file() else 224
    generate(
        root,
        seed=seed,
        size=size,
        layouts=sorted(settings),
        counterfactuals=True,
        sizes={"train": 0, "val": 0, "test": clips},
        progress=False,
        overwrite=True,
    )
    return root


def table(rows: list[tuple[str, dict]]) -> str:
    """Markdown: one row per model, the numbers side by side."""
    head = ["model", "setting", "M_J (legacy)", "M_F (legacy)", "J (per frame)", "F (per frame)"]
    head += [f"FPR {k}" for k in COUNTERFACTUAL_SETS] + ["J swapped"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows:
        m = r["metrics"].get("foreground", r["metrics"])
        cf = r["counterfactual"]
        cells = [
            name,
            r["setting"],
            m["j_legacy"],
            m["f_legacy"],
            m["j_frame_mean"],
            m["f_frame_mean"],
        ]
        cells += [cf[k]["fpr"] if k in cf else "-" for k in COUNTERFACTUAL_SETS]
        cells.append(cf.get("swapped", {}).get("j_frame_mean", "-"))
        lines.append(
            "| " + " | ".join(f"{c:.4f}" if isinstance(c, float) else str(c) for c in cells) + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m train.run_shipped", description=__doc__.split("\n")[0]
    )
    p.add_argument("--data", required=True, help="AVS-Synth training root")
    p.add_argument("--out", default="runs/shipped")
    p.add_argument("--configs", nargs="+", default=list(SHIPPED), help="config names or files")
    p.add_argument("--nproc", type=int, default=1, help="processes (GPUs) per training run")
    p.add_argument("--time-limit", type=float, metavar="MIN", help="per model and invocation")
    p.add_argument("--test-seed", type=int, default=1001)
    p.add_argument("--test-clips", type=int, default=40, help="test clips per layout")
    p.add_argument("--device", default="auto")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    a = p.parse_args(argv)

    out, data = Path(a.out), Path(a.data)
    out.mkdir(parents=True, exist_ok=True)
    configs = [Path(c) if c.endswith(".yaml") else CONFIG_DIR / f"{c}.yaml" for c in a.configs]
    settings = {load_config(c, a.overrides).setting: None for c in configs}
    rows = []
    for config in configs:
        run_dir = out / config.stem
        if not finished(run_dir):
            cmd = train_command(config, run_dir, str(data), a.nproc, a.time_limit, a.overrides)
            print("$ " + " ".join(cmd), flush=True)
            code = subprocess.call(cmd)
            if code != 0:
                print(f"{config.stem}: training exited with {code}; skipping its evaluation")
                continue
        if not finished(run_dir):
            print(f"{config.stem}: not finished (time limit); run this command again to go on")
            continue
        setting = load_config(config, a.overrides).setting
        test_root = fresh_test_set(out, data, a.test_seed, a.test_clips, set(settings))
        report = evaluate_checkpoint(str(run_dir / "best"), test_root, setting, device=a.device)
        (run_dir / f"eval_test_seed{a.test_seed}.json").write_text(json.dumps(report, indent=2))
        rows.append((config.stem, report))
    text = (
        f"# Shipped models on AVS-Synth test seed {a.test_seed}\n\nLegacy numbers with "
        "2 clips per test batch; FPR = false-positive pixels / negative pixels.\n\n" + table(rows)
    )
    (out / "results.md").write_text(text)
    print(text)
    return 0 if len(rows) == len(configs) else 1


if __name__ == "__main__":
    sys.exit(main())
