"""Generating a whole AVS-Synth data set: plan the clips, write them in parallel, then the CSVs
and metadata.json of the main root and of each counterfactual root.

Everything is written into a temporary folder inside the output folder and moved into place only
when the whole set is written: a failure (a full disk says "no space left on <folder>") or a kill
leaves no partial set, and a later run removes a killed run's temporary folder."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from selm.files import disk_full, remove_stale_temporaries
from selm.presets import SETTINGS
from train.data.layout import SPLITS, layout_class
from train.synth.scenes import CATEGORIES
from train.synth.writer import (
    COUNTERFACTUALS,
    DIFFICULTIES,
    ClipTask,
    ClipWriter,
    build_clip,
    write_task,
)

VERSION = "1.0"
# AVSS clips cycle through these subsets (half v2, as in AVSBench-semantic's split)
_AVSS_CYCLE = ("v2", "v1s", "v1m", "v2", "v1s", "v2", "v1m", "v2", "v1s", "v2")
_OUTPUTS = ("Single-source", "Multi-sources", "AVSS", "counterfactual", "mp4", "metadata.json")


def split_sizes(clips: int, min_test: int = 1) -> dict[str, int]:
    """`clips` per layout -> train/val/test counts, 70/15/15 as AVSBench (at least 1 each,
    at least `min_test` test clips: counterfactual sets need 2)."""
    if clips < 2 + min_test:
        raise ValueError(
            f"--clips must be at least {2 + min_test} (train, val and {min_test} "
            f"test clip(s)), got {clips}"
        )
    val = max(1, round(clips * 0.15))
    test = max(min_test, val)
    return {"train": clips - val - test, "val": val, "test": test}


def plan(
    layouts: Sequence[str],
    sizes: dict[str, int],
    difficulty: str = "default",
    seed: int | None = None,
) -> list[ClipTask]:
    """Every clip to write, in a fixed order; test clips get the partner whose audio their
    `swapped` version hears (the next test clip of the same length, cyclically; `hard`: the
    next one that sounds a category this clip shows, which needs `seed`)."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    tasks = []
    for layout in layouts:
        for split in SPLITS:
            clips = []
            for i in range(sizes.get(split, 0)):
                subset = _AVSS_CYCLE[i % len(_AVSS_CYCLE)] if layout == "avss" else ""
                seconds = 10 if subset == "v2" else 5
                clips.append(
                    ClipTask(
                        layout=layout,
                        split=split,
                        index=i,
                        seconds=seconds,
                        subset=subset,
                        difficulty=difficulty,
                    )
                )
            if split == "test" and len(clips) >= 2:
                if difficulty == "hard":
                    clips = _shared_partners(clips, seed)
                else:
                    clips = [_with_partner(c, clips) for c in clips]
            tasks += clips
    return tasks


def _with_partner(task: ClipTask, clips: list[ClipTask]) -> ClipTask:
    same = [c for c in clips if c.seconds == task.seconds]
    pool = same if len(same) >= 2 else clips  # a lone length hears a trimmed/padded clip
    partner = pool[(pool.index(task) + 1) % len(pool)]
    return dataclasses.replace(task, partner=partner)


def _shared_partners(clips: list[ClipTask], seed: int | None) -> list[ClipTask]:
    """Hard test clips: each clip's `swapped` partner is the next clip (cyclically, same length
    preferred) whose audio sounds a category the clip shows, so the swapped GT is not empty;
    the next clip of the same length when none does."""
    if seed is None:
        raise ValueError("planning hard test clips needs the seed (partners share categories)")
    built = {c.index: build_clip(seed, c) for c in clips}
    shown = {i: {o.category for o in clip.objects} for i, clip in built.items()}
    heard = {
        i: set().union(*(clip.sounding_categories(s) for s in range(clip.seconds)))
        for i, clip in built.items()
    }
    out = []
    for task in clips:
        same = [c for c in clips if c.seconds == task.seconds]
        pool = same if len(same) >= 2 else clips
        start = pool.index(task)
        order = [pool[(start + k) % len(pool)] for k in range(1, len(pool))]
        sharing = [c for c in order if shown[task.index] & heard[c.index]]
        out.append(dataclasses.replace(task, partner=(sharing or order)[0]))
    return out


def _run(job):
    out, seed, task, writer, counterfactuals = job
    return task, write_task(out, seed, task, writer, counterfactuals)


def _init_worker() -> None:
    torch.set_num_threads(1)  # one process per core; torch's own threads would oversubscribe


def generate(
    out: str | os.PathLike,
    *,
    clips: int = 20,
    seed: int = 0,
    size: int = 224,
    layouts: Sequence[str] = SETTINGS,
    counterfactuals: bool = False,
    mp4: bool = False,
    fps: int = 24,
    workers: int | None = None,
    sizes: dict[str, int] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    difficulty: str = "default",
) -> Path:
    """Write AVS-Synth under `out` (see SYNTH.md): `clips` clips per layout (or explicit
    per-split `sizes`), frames of `size` x `size`. Same arguments -> byte-identical files,
    whatever `workers` is. `difficulty="hard"`: the clips of train/synth/hard.py. Returns the
    output root."""
    out = Path(out)
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    unknown = [x for x in layouts if x not in SETTINGS]
    if unknown or not layouts:
        raise ValueError(f"layouts must be among {SETTINGS}, got {list(layouts)}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    sizes = dict(sizes) if sizes is not None else split_sizes(clips)
    if counterfactuals and sizes.get("test", 0) < 2:
        raise ValueError("counterfactual test sets need at least 2 test clips per layout")
    existing = [out / name for name in _OUTPUTS if (out / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{out} already holds AVS-Synth output ({existing[0].name}); "
            "pass overwrite=True (--overwrite) or choose another folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)  # a killed run's staging folder
    staging = out / f".avs-synth.{uuid.uuid4().hex[:12]}.tmp"
    try:
        _generate(
            staging,
            seed,
            size,
            layouts,
            sizes,
            counterfactuals,
            mp4,
            fps,
            workers,
            progress,
            difficulty,
        )
    except BaseException as err:
        full = disk_full(err, out) if isinstance(err, Exception) else None
        shutil.rmtree(staging, ignore_errors=True)
        if full is None:
            raise
        raise full from err
    for path in existing:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    for name in _OUTPUTS:
        if (staging / name).exists():
            os.replace(staging / name, out / name)
    staging.rmdir()
    return out


def _generate(
    out, seed, size, layouts, sizes, counterfactuals, mp4, fps, workers, progress, difficulty
):
    tasks = plan(layouts, sizes, difficulty, seed)
    writer = ClipWriter(size, mp4=mp4, fps=fps)
    jobs = [(out, seed, t, writer, counterfactuals) for t in tasks]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    bar = tqdm(total=len(jobs), desc="AVS-Synth", unit="clip", disable=not progress)
    results = []
    if workers == 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as in the workers; restored for the caller
        try:
            for job in jobs:
                results.append(_run(job))
                bar.update()
        finally:
            torch.set_num_threads(threads)
    else:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(workers, _init_worker) as pool:
            for result in pool.imap(_run, jobs, chunksize=2):
                results.append(result)
                bar.update()
    bar.close()
    _write_indexes(out, seed, size, fps, layouts, results, counterfactuals, difficulty)


def _write_indexes(
    out, seed, size, fps, layouts, results, counterfactuals, difficulty="default"
) -> None:
    kinds = [""] + (list(COUNTERFACTUALS) if counterfactuals else [])
    for kind in kinds:
        root = out / "counterfactual" / kind if kind else out
        clips_meta: dict[str, list] = {}
        for layout in layouts:
            done = [
                (task, files[kind])
                for task, files in results
                if task.layout == layout and kind in files
            ]
            layout_class(layout).standard(root).write_csv([rec for _, (rec, _) in done])
            clips_meta[layout] = [meta for _, (_, meta) in done]
        header = dict(
            generator="AVS-Synth",
            version=VERSION,
            seed=seed,
            size=size,
            fps=fps,
            counterfactual=kind or None,
            categories=[
                dict(
                    id=i, label=i + 1, name=c.name, shape=c.shape, texture=c.texture, sound=c.sound
                )
                for i, c in enumerate(CATEGORIES)
            ],
        )
        if difficulty != "default":  # the default's header stays as it was
            header["difficulty"] = difficulty
        text = json.dumps(header | {"clips": clips_meta}, indent=1, sort_keys=True)
        (root / "metadata.json").write_text(text + "\n")
