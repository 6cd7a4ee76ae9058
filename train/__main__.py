"""`python -m train --config train/configs/NAME.yaml [--set key=value ...]`.

Multi-GPU: the same command under `torchrun --nproc_per_node=N`. Resume an interrupted run with
`python -m train --resume RUN_DIR` (its config.yaml; `--set` may change training fields such as
epochs or lr, which the resumed optimizer uses, never the model or what the saved state depends
on: see train.run_state.RESUME_FIXED).

A config, data or resume error (a missing file or data root, malformed YAML, an unknown key, a
value of the wrong type, a full disk) prints one line `python -m train: error: ...` and exits
with 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from train.config import (
    USER_ERRORS,
    config_from_dict,
    load_config,
    parse_set,
    read_yaml,
    user_error_message,
)

PROG = "python -m train"


def _fail(err: BaseException, main_process: bool, hint: str = "") -> int:
    if main_process:
        print(f"{PROG}: error: {user_error_message(err)}{hint}", file=sys.stderr)
    return 2


def _resume_config(run_dir: Path, overrides: list[str]):
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: --resume takes the directory of a run "
            "started by `python -m train` (it holds config.yaml and last.pt)"
        )
    values = read_yaml(path.read_text(), str(path))
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of keys to values at the top level")
    extra = parse_set(overrides)
    if "model" in extra:
        raise ValueError(
            f"--resume cannot change model fields ({', '.join(extra['model'])}): the "
            "saved weights belong to the saved architecture; start a new run"
        )
    values.update(extra)
    return config_from_dict(values, source=str(path))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Train SelM.")
    p.add_argument("--config", help="YAML config (train/configs/*.yaml)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field, e.g. --set lr=1e-4 --set model.bcsm=false (repeatable)",
    )
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from last.pt")
    p.add_argument(
        "--out",
        metavar="RUN_DIR",
        help="run directory (default: the config's out_dir, else runs/<config name>)",
    )
    p.add_argument(
        "--max-steps",
        type=int,
        help="stop (saving last.pt) after this many steps in total, counting steps before a resume",
    )
    p.add_argument(
        "--time-limit",
        type=float,
        metavar="MIN",
        help="stop (saving last.pt) after this many minutes of this process",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    a = p.parse_args(argv)

    if a.resume and a.config:
        p.error("--resume continues a run with its own config.yaml; drop --config")
    if not a.resume and not a.config:
        p.error("give --config FILE (see train/configs/) or --resume RUN_DIR")
    main_process = int(os.environ.get("RANK", "0")) == 0
    try:
        if a.resume:
            run_dir = Path(a.resume)
            config = _resume_config(run_dir, a.overrides)
        else:
            config = load_config(a.config, a.overrides)
            run_dir = Path(a.out or config.out_dir or "runs/run")
            if (run_dir / "last.pt").exists():
                p.error(
                    f"{run_dir} already holds a run (last.pt); continue it with --resume "
                    f"{run_dir} or choose another directory with --out"
                )

        from train.data.files import DataFileError
        from train.trainer import Trainer, TrainingDiverged

        trainer = Trainer(
            config,
            run_dir=run_dir,
            resume=bool(a.resume),
            max_steps=a.max_steps,
            time_limit_min=a.time_limit,
        )
    except USER_ERRORS as err:  # config, data, weights or resume state: the user's to fix
        return _fail(err, main_process)
    try:
        summary = trainer.fit()
    except TrainingDiverged as err:
        if main_process:
            print(f"training stopped: {err}", file=sys.stderr)
        return 2
    except (OSError, DataFileError) as err:  # a data file that cannot be read, a full disk
        resumable = (run_dir / "last.pt").is_file()
        return _fail(err, main_process, f"; then continue with --resume {run_dir}" * resumable)
    if main_process:
        _report(summary, trainer.metric_name, run_dir)
    return 0


def _report(summary: dict, metric: str, run_dir: Path) -> None:
    """How the run ended, and where its model or state is."""
    best = summary["best_" + metric]
    if summary["reason"] == "done" and best is not None:
        print(
            f"done: best {metric} {best:.4f} at epoch {summary['best_epoch']}; "
            f"model in {run_dir / 'best'}"
        )
    elif summary["reason"] == "done":
        print(f"done, without validation (val_split is empty); state in {run_dir / 'last.pt'}")
    else:
        print(
            f"stopped ({summary['reason']}) at step {summary['step']}; continue with "
            f"python -m train --resume {run_dir}"
        )


if __name__ == "__main__":
    sys.exit(main())
