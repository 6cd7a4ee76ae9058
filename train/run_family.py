"""Train the SelM model family with one recipe, evaluate it, ship the most telling.

    python -m train.run_family --out runs/family [--seeds 0 1 2] [--jobs 2] [--threads 1]
        [--device cpu|cuda] [--test-seed 2027 --test-clips 24] [--ship assets/checkpoints]
        [--dry-run]

Every config in `train/configs/family/` (default.yaml and one sibling per ablation switch) is
trained for every seed into OUT/<config>/seed<S>/ by `python -m train` (same data, steps,
batch, lr and input size; only `seed` and the config's one switch differ), `--jobs` runs at a
time (CPU: one thread each; CUDA: small models share the GPU), skipping runs that finished.
Each run's best checkpoint is then evaluated clip by clip on a fresh hard AVS-Synth test set
(OUT/test_hard_seed<T>, a seed no run trained on, with all counterfactual sets), and
OUT/comparison.{md,json,png} compares every config with the default (train/compare.py).

The training data (hard, at the model's input size) is generated into --data when it is
missing. `--ship DIR` copies seed 0 of the default and of the `--ship-siblings` siblings whose
paired illusion-score difference from the default is largest into DIR/selm-hard[-<name>]/
with a model card (README.md), evaluation.json and DIR/README.md holding the whole table.
`--dry-run`: a tiny data set and a few steps per config, one seed (the `slow` test).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from selm.files import write_text
from train.config import load_config
from train.family_ship import DEFAULT, folder_name, ship
from train.run_shipped import finished

FAMILY_DIR = Path(__file__).resolve().parent / "configs" / "family"
# the child process of one run: torch's intra-op threads set before anything runs, then
# training (when argv has training arguments) and the evaluation in the same process
_CHILD = (
    "import sys, torch; torch.set_num_threads(int(sys.argv[1])); "
    "from train.run_family import child; sys.exit(child(sys.argv[2:]))"
)


def family_configs(directory: Path = FAMILY_DIR) -> list[Path]:
    """default.yaml first, then the siblings in name order."""
    files = sorted(directory.glob("*.yaml"))
    default = [f for f in files if f.stem == DEFAULT]
    if not default:
        raise FileNotFoundError(f"{directory} has no {DEFAULT}.yaml")
    return default + [f for f in files if f.stem != DEFAULT]


def child(argv: list[str]) -> int:
    """One run in its own process: argv = [run_dir, test_root, stats_json, device, *train]:
    `python -m train` with the `train` arguments (none: already trained), then the per-clip
    numbers of run_dir/best on test_root, written atomically to stats_json. Timings go to
    run_dir/timing.json."""
    from train.__main__ import main as train_main
    from train.compare import clip_stats

    run_dir, test_root, out_json, device, *train = argv
    timing_path = Path(run_dir) / "timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
    if train:
        start = time.monotonic()
        code = train_main(train)
        timing["train_s"] = round(time.monotonic() - start, 1)
        write_text(timing_path, json.dumps(timing) + "\n")
        if code != 0 or not finished(Path(run_dir)):
            return code or 3
    start = time.monotonic()
    stats = clip_stats(str(Path(run_dir) / "best"), test_root, "ms3", device=device)
    write_text(Path(out_json), json.dumps(stats) + "\n")
    timing["eval_s"] = round(time.monotonic() - start, 1)
    write_text(timing_path, json.dumps(timing) + "\n")
    return 0


def ensure_data(
    root: Path, *, seed: int, size: int, sizes: dict, counterfactuals: bool, mp4: bool = False
) -> Path:
    from train.synth.generate import generate

    if (root / "metadata.json").is_file():
        return root
    print(f"generating hard AVS-Synth {sizes} (seed {seed}, {size} px) into {root}", flush=True)
    return generate(
        root,
        seed=seed,
        size=size,
        layouts=("ms3",),
        sizes=sizes,
        counterfactuals=counterfactuals,
        mp4=mp4,
        progress=False,
        overwrite=True,
        workers=min(2, os.cpu_count() or 1),
        difficulty="hard",
    )


def machine() -> dict:
    import torch

    cpuinfo = Path("/proc/cpuinfo")
    names = [
        line.split(":", 1)[1].strip()
        for line in (cpuinfo.read_text().splitlines() if cpuinfo.is_file() else [])
        if line.startswith("model name")
    ]
    info = {
        "platform": platform.platform(),
        "processor": names[0] if names else platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return info


class Job:
    def __init__(self, config: Path, seed: int, run_dir: Path) -> None:
        self.config, self.seed, self.run_dir = config, seed, run_dir

    @property
    def name(self) -> str:
        return self.config.stem


def run_job(job: Job, a, data: Path, test_root: Path, extra: list[str]) -> dict:
    """Train (unless finished) and evaluate one run; returns its timing record."""
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads)}
    job.run_dir.mkdir(parents=True, exist_ok=True)
    stats = job.run_dir / f"clips_{test_root.name}.json"
    name = f"{job.name}/seed{job.seed}"
    train: list[str] = []
    if not finished(job.run_dir):
        if (job.run_dir / "last.pt").exists():
            train = ["--resume", str(job.run_dir)]
        else:
            train = ["--config", str(job.config), "--out", str(job.run_dir)]
            train += ["--set", f"data_root={data}", "--set", f"seed={job.seed}"]
            train += ["--set", f"device={a.device}"]
            train += [x for o in extra for x in ("--set", o)]
    elif stats.is_file():
        timing = json.loads((job.run_dir / "timing.json").read_text())
        return {"job": name, **timing, "skipped": True}
    cmd = [sys.executable, "-c", _CHILD, str(a.threads), str(job.run_dir), str(test_root)]
    cmd += [str(stats), a.device, *train]
    with open(job.run_dir / "driver.log", "a") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if code != 0 or not stats.is_file():
        return {"job": name, "error": f"run exited {code}; see {job.run_dir / 'driver.log'}"}
    return {"job": name, **json.loads((job.run_dir / "timing.json").read_text())}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train.run_family", description=__doc__.split("\n")[0]
    )
    p.add_argument("--out", default="runs/family")
    p.add_argument("--configs-dir", type=Path, default=FAMILY_DIR)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (CPU: <= cores)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--device", default="cpu", help="cpu | cuda (every run on it)")
    p.add_argument("--data", type=Path, help="hard training root (default OUT/train_hard_seed0)")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--train-clips", type=int, default=384)
    p.add_argument("--val-clips", type=int, default=16)
    p.add_argument("--test-seed", type=int, default=2027)
    p.add_argument("--test-clips", type=int, default=48)
    p.add_argument("--ship", type=Path, metavar="DIR", help="copy the shipped models there")
    p.add_argument("--ship-siblings", type=int, default=4)
    p.add_argument(
        "--examples",
        type=Path,
        metavar="DIR",
        help="with --ship: the demo's example folder, which gets the hard test clip where the "
        "default and the most different shipped sibling differ most (train/family_example.py)",
    )
    p.add_argument("--example-size", type=int, default=224, help="frame side of that mp4")
    p.add_argument("--dry-run", action="store_true", help="tiny data, a few steps, one seed")
    p.add_argument(
        "--no-train",
        action="store_true",
        help="train nothing: table (and --ship) from the runs already evaluated, e.g. while "
        "or after a family run was stopped; missing runs are left out and named",
    )
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    configs = family_configs(a.configs_dir)
    size = load_config(configs[0]).model_config().input_size
    extra, seeds = list(a.overrides), a.seeds
    if a.dry_run:
        a.train_clips, a.val_clips, a.test_clips, seeds = 4, 2, 2, seeds[:1]
        extra += ["batch_size=2", "epochs=1"]
    data = a.data or out / f"train_hard_seed{a.data_seed}"
    sizes = {"train": a.train_clips, "val": a.val_clips, "test": 0}
    ensure_data(data, seed=a.data_seed, size=size, sizes=sizes, counterfactuals=False)
    test_root = ensure_data(
        out / f"test_hard_seed{a.test_seed}",
        seed=a.test_seed,
        size=size,
        sizes={"train": 0, "val": 0, "test": a.test_clips},
        counterfactuals=True,
    )
    jobs = [Job(c, s, out / c.stem / f"seed{s}") for s in seeds for c in configs]
    started, load_before = time.time(), machine()
    print(f"{len(jobs)} runs, {a.jobs} at a time, device {a.device}", flush=True)
    if a.no_train:
        results, on_disk = _evaluated(jobs, test_root), _wall_on_disk(jobs, test_root)
        wall = on_disk if on_disk is not None else time.time() - started
    else:
        results = _run_all(jobs, a, data, test_root, extra)
        wall = time.time() - started
    record = {
        "runs": results,
        "wall_s": round(wall, 1),
        "jobs": a.jobs,
        "threads": a.threads,
        "device": a.device,
        "machine_start": load_before,
        "machine_end": machine(),
        "data": str(data),
        "data_seed": a.data_seed,
        "test_root": str(test_root),
        "test_seed": a.test_seed,
        "seeds": seeds,
        "overrides": extra,
        "command": "python -m train.run_family " + " ".join(sys.argv[1:] if argv is None else argv),
        "recipe": recipe(configs[0], extra, data),
    }
    _write_record(out / "family.json", record)
    result = table(out, configs, seeds, test_root)
    print((out / "comparison.md").read_text())
    failed = [r for r in results if "error" in r]
    print(f"{len(jobs) - len(failed)}/{len(jobs)} runs done in {wall / 60:.1f} min")
    if a.ship and result is not None:
        chosen = ship(result, out, a.ship, configs, record, a.ship_siblings)
        if a.examples is not None and len(chosen) > 1:
            ship_example(out, test_root, seeds, chosen[1], a.examples, a.example_size)
    return 1 if failed else 0


def _run_all(jobs: list[Job], a, data: Path, test_root: Path, extra: list[str]) -> list[dict]:
    """Train and evaluate every job, `a.jobs` at a time; their timing records, in job order."""
    results = []
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        futures = [pool.submit(run_job, j, a, data, test_root, extra) for j in jobs]
        for f in futures:
            results.append(f.result())
            print(json.dumps(results[-1]), flush=True)
    return results


def _evaluated(jobs: list[Job], test_root: Path) -> list[dict]:
    """--no-train: the timing records of the jobs already evaluated; the others named."""
    results = []
    for j in jobs:
        name, timing = f"{j.name}/seed{j.seed}", j.run_dir / "timing.json"
        done = (j.run_dir / f"clips_{test_root.name}.json").is_file() and timing.is_file()
        results.append(
            {"job": name, **json.loads(timing.read_text()), "skipped": True}
            if done
            else {"job": name, "error": "not trained/evaluated (--no-train)", "skipped": True}
        )
    return results


def _wall_on_disk(jobs: list[Job], test_root: Path) -> float | None:
    """From the first run's start to the last evaluation's end, as the files on disk say."""
    dirs = [j.run_dir for j in jobs if (j.run_dir / "config.yaml").is_file()]
    stats = [j.run_dir / f"clips_{test_root.name}.json" for j in jobs]
    ends = [x.stat().st_mtime for x in stats if x.is_file()]
    if not (dirs and ends):
        return None
    return max(ends) - min((d / "config.yaml").stat().st_mtime for d in dirs)


def _write_record(path: Path, record: dict) -> None:
    """family.json; when nothing ran now, the family's wall time and machine stay those of the
    run that trained."""
    results = record["runs"]
    if path.is_file() and all(r.get("skipped") for r in results):
        old = json.loads(path.read_text())
        for key in ("wall_s", "machine_start", "machine_end", "jobs", "threads", "device"):
            record[key] = old.get(key, record[key])
        record["command"] = old.get("command", record["command"])
    for r in results:
        r.pop("skipped", None)
    write_text(path, json.dumps(record, indent=1) + "\n")


def ship_example(
    out: Path, test_root: Path, seeds: list[int], sibling: str, examples: Path, size: int
) -> Path:
    """The demo example for the default vs `sibling` (train/family_example.py): the test set is
    generated again with mp4 at `size` px (same seed and clips) into OUT."""
    from train.family_example import choose_clip, write_example

    def stats(name: str) -> list[dict]:
        files = [out / name / f"seed{s}" / f"clips_{test_root.name}.json" for s in seeds]
        return [json.loads(f.read_text()) for f in files if f.is_file()]

    choice = choose_clip(stats(DEFAULT), stats(sibling))
    meta = json.loads((test_root / "metadata.json").read_text())
    render = ensure_data(
        out / f"{test_root.name}_mp4_{size}",
        seed=meta["seed"],
        size=size,
        sizes={"train": 0, "val": 0, "test": len(meta["clips"]["ms3"])},
        counterfactuals=False,
        mp4=True,
    )
    path = write_example(
        test_root, render, choice, examples, folder_name(DEFAULT), folder_name(sibling)
    )
    print(f"example {choice['clip']} ({folder_name(DEFAULT)} vs {folder_name(sibling)}) -> {path}")
    return path


def recipe(default: Path, extra: list[str], data: Path) -> dict:
    """The shared training recipe as it ran: optimiser, budget, input size, width, data."""
    import math

    from train.data import build_dataset

    cfg = load_config(default, extra)
    model = cfg.model_config()
    train = len(build_dataset(cfg.setting, data, cfg.train_split, config=model))
    val = len(build_dataset(cfg.setting, data, cfg.val_split, config=model))
    return {
        "preset": cfg.preset,
        "dim": model.dim,
        "input_size": model.input_size,
        "lr": cfg.lr,
        "weight_decay": cfg.weight_decay,
        "grad_clip": cfg.grad_clip,
        "batch_size": cfg.batch_size,
        "epochs": cfg.epochs,
        "train_clips": train,
        "val_clips": val,
        "steps": math.ceil(train / cfg.batch_size) * cfg.epochs,
        "augment": cfg.augment,
    }


def table(out: Path, configs: list[Path], seeds: list[int], test_root: Path):
    """comparison.{md,json,png} of every config with its evaluated seeds."""
    from train.compare import compare, write_comparison

    runs = {}
    for c in configs:
        stats = [out / c.stem / f"seed{s}" / f"clips_{test_root.name}.json" for s in seeds]
        have = [json.loads(x.read_text()) for x in stats if x.is_file()]
        if have:
            runs[c.stem] = have
    if DEFAULT not in runs:
        print("the default has no evaluated run; no table", file=sys.stderr)
        return None
    result = compare(runs, DEFAULT)
    result["test_root"] = str(test_root)
    write_comparison(result, out, title=f"SelM family on hard AVS-Synth ({test_root.name})")
    return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
