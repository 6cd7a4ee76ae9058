"""What a training run keeps between processes: random generator states, `last.pt` (written
atomically, read with `weights_only=True`), and its logs (metrics.jsonl, TensorBoard, progress).

A resumed run starts again from `last.pt`'s step: the records a killed process wrote after that
step (`metrics.jsonl`, TensorBoard events) are dropped (`RunLog(resume_step=)`), so every step is
logged once.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selm.build import WeightSources
from selm.files import (  # the one temp-then-rename writer
    atomic_path,
    atomic_write,
    disk_full,
    remove_stale_temporaries,
)

STATE_FORMAT = 1
# TrainConfig fields a resumed run must keep: the weights, the optimizer state and the position
# in the epoch (step_in_epoch x batch_size samples of the seeded order) were made with them
RESUME_FIXED = ("setting", "preset", "model", "seed", "batch_size", "train_split")


def seed_all(seed: int) -> None:
    """Seed python's `random`, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def capture_rng() -> dict[str, Any]:
    """The global generators' states as tensors and plain values (loadable with weights_only)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "state": list(py_state), "gauss": gauss},
    }


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    n = state["numpy"]
    keys = n["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def save_state(state: dict[str, Any], path: str | os.PathLike) -> None:
    """`torch.save` to a temporary file in the same folder, then `os.replace`: a reader (or a run
    killed while writing) sees the old file or the new one, never half of one."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        # through a file object, so a full disk raises OSError(ENOSPC) (torch's own writer on a
        # path hides it behind "RuntimeError: [enforce fail at inline_container.cc]")
        torch.save({"format": STATE_FORMAT, **state}, f)


class RunStateError(ValueError):
    """A `last.pt` that cannot be read (truncated, foreign, another format)."""


def load_state(path: str | os.PathLike, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read `last.pt` without unpickling code (weights_only=True); clear errors when it cannot."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: --resume takes a run directory that holds last.pt (a run saves it "
            "at the end of every epoch and whenever it stops)"
        )
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # truncated file, foreign pickle: say which file and why
        raise RunStateError(f"{path}: cannot read the training state ({err})") from err
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        state = state if isinstance(state, dict) else {}
        raise RunStateError(
            f"{path}: training state format {state.get('format')!r}, expected {STATE_FORMAT}"
        )
    return state


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, **kw) -> None: ...
    def close(self) -> None: ...


class RunLog:
    """metrics.jsonl (one JSON object a line, `event` first), TensorBoard scalars under tb/, and a
    tqdm bar per epoch. Only the main process writes (`enabled`). With `resume_step` (the step of
    the `last.pt` a run resumes from), what was logged after that step is dropped first."""

    def __init__(
        self,
        run_dir: Path,
        *,
        enabled: bool,
        tensorboard: bool = True,
        resume_step: int | None = None,
    ) -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.writer = None
        self._sums: dict[str, float] = {}
        self._count = 0
        self._t0 = time.time()
        self.rolled_back = 0  # records dropped at a resume
        if enabled and resume_step is not None:
            self.rolled_back = self._roll_back(resume_step)
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is a training extra: log without it
                print(
                    "tensorboard is not installed (pip install tensorboard); logging to "
                    f"{self.path} only",
                    file=sys.stderr,
                )
            else:  # purge_step: TensorBoard drops the events of the rolled-back steps
                purge = None if resume_step is None else resume_step + 1
                self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=purge)

    def _roll_back(self, step: int) -> int:
        """Drop the metrics.jsonl records of steps after `step` (a killed process logged them
        after its last save; the resumed run logs them again). Returns how many were dropped."""
        if not self.path.is_file():
            return 0
        lines = self.path.read_text().splitlines()
        kept = []
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # half a line: the process was killed while appending it
            if not isinstance(record.get("step"), int) or record["step"] <= step:
                kept.append(line)
        if len(kept) != len(lines):
            atomic_write(self.path, lambda tmp: tmp.write_text("".join(x + "\n" for x in kept)))
        return len(lines) - len(kept)

    def record(self, entry: dict[str, Any]) -> None:
        if not self.enabled:
            return
        entry = {"event": entry.get("event"), "time": round(time.time() - self._t0, 3), **entry}
        data = memoryview((json.dumps(entry, default=_plain) + "\n").encode())
        size = self.path.stat().st_size if self.path.exists() else 0
        with self.path.open("ab", buffering=0) as f:  # unbuffered: a failed write fails here
            try:
                while data:
                    data = data[f.write(data) :]
            except OSError as err:  # a full disk: no half record left behind
                os.truncate(self.path, size)
                full = disk_full(err, self.path.parent)
                if full is None:
                    raise
                raise full from err

    def train_step(
        self, parts: dict[str, float], step: int, epoch: int, every: int, dist, flush: bool = False
    ) -> None:
        """Average the loss parts over `every` steps (or up to `flush`, the epoch's end) and all
        processes, then write them. Every process calls this at every step."""
        for k, v in parts.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        self._count += 1
        if step % every and not flush:
            return
        from train.distributed import all_reduce

        names = sorted(self._sums)
        mean = all_reduce(
            torch.tensor([self._sums[k] / self._count for k in names], dtype=torch.float64),
            dist,
            "mean",
        )
        values = dict(zip(names, mean.tolist()))
        self._sums, self._count = {}, 0
        self.record({"event": "train", "epoch": epoch + 1, "step": step, **values})
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(f"train/{k}", v, step)

    def validation(self, metrics: dict[str, Any], step: int, epoch: int, best: bool) -> None:
        scalars = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
        self.record({"event": "val", "epoch": epoch, "step": step, "best": best, **scalars})
        if self.writer is not None:
            for k, v in scalars.items():
                if math.isfinite(v):
                    self.writer.add_scalar(f"val/{k}", v, step)
            self.writer.flush()
        if self.enabled:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in scalars.items() if isinstance(v, float))
            print(f"epoch {epoch} validation: {shown}{' (best)' if best else ''}", flush=True)

    def progress(self, total: int, done: int, epoch: int, cfg):
        if not (self.enabled and cfg.progress):
            return _NoBar()
        from tqdm import tqdm

        return tqdm(
            total=total,
            initial=done,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            dynamic_ncols=True,
            leave=False,
        )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return str(value)


def check_resumable(saved: dict, now: dict, path: Path) -> None:
    """ValueError when the config `now` (TrainConfig.to_dict()) changes a field the state saved
    in `path` with config `saved` depends on (RESUME_FIXED); weight files only build the model,
    so they may change."""
    if not saved:
        return
    sources = WeightSources.field_names()

    def same(a, b) -> bool:
        return json.dumps(a, sort_keys=True, default=str) == json.dumps(
            b, sort_keys=True, default=str
        )

    def fixed(values: dict) -> dict:  # weight files only build the model: last.pt has them
        model = {k: v for k, v in (values.get("model") or {}).items() if k not in sources}
        return {**values, "model": model}

    saved, now = fixed(saved), fixed(now)
    changed = [k for k in RESUME_FIXED if k in saved and not same(saved[k], now[k])]
    if changed:
        shown = ", ".join(f"{k} {saved[k]!r} -> {now[k]!r}" for k in changed)
        raise ValueError(
            f"--resume cannot change {shown}: {path} was trained with the saved values "
            f"({', '.join(RESUME_FIXED)} stay fixed on resume); start a new run to change them"
        )


def apply_optimizer_fields(optimizer: torch.optim.Optimizer, config) -> None:
    """The config's lr and weight_decay into a resumed optimizer (its state saved the old ones)."""
    for group in optimizer.param_groups:
        for key in ("lr", "weight_decay"):
            value = getattr(config, key)
            if group[key] != value:
                print(f"resume: {key} {group[key]:g} -> {value:g} from now on", flush=True)
                group[key] = value


def divergence_advice(run_dir: Path, lr: float) -> str:
    """What to do after the loss became NaN or infinite in the run in `run_dir`."""
    last = run_dir / "last.pt"
    fix = "with a lower lr (--set lr=...), a grad_clip (--set grad_clip=1.0) or amp=off"
    if last.is_file():
        return (
            f"{last} is the last good state: continue it {fix}, e.g. `python -m train "
            f"--resume {run_dir} --set lr={lr / 10:g}` (the new lr is applied to the optimizer)"
        )
    return f"No state was saved yet: start the run again {fix}."


def remove_run_temporaries(run_dir: Path) -> None:
    """The temporary files of writes a killed run never finished (last.pt, best/, config)."""
    removed = []
    for folder in (run_dir, run_dir / "best"):
        removed += remove_stale_temporaries(folder)
    if removed:
        names = ", ".join(p.name for p in removed)
        print(f"removed {len(removed)} temporary file(s) of unfinished writes: {names}")
