"""Where AVSBench keeps its files (docs/model.md, section 'Data layouts').

One class per setting says where every file of a clip lives. The loaders, the checker and the
AVS-Synth writer all go through these classes, so they agree on every path.
"""

from __future__ import annotations

import csv
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from selm.presets import SETTINGS

SPLITS = ("train", "val", "test")
AVSS_SUBSETS = ("v1s", "v1m", "v2")
_SKIP_DIRS = {"visual_frames", "gt_masks", "audio_log_mel", "audio_wav", "frames", "labels_rgb"}


@dataclass(frozen=True, kw_only=True)
class ClipRecord:
    """One clip of a CSV. `num_frames` real frames; `gt_frames` the frame indices with GT."""

    name: str  # S4/MS3 `name`, AVSS `uid`
    split: str
    category: str = ""  # S4 `category`; AVSS `a_obj`; MS3 has none
    subset: str = ""  # AVSS `label`: v1s | v1m | v2
    num_frames: int = 5
    gt_frames: tuple[int, ...] = ()


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []


def _find_file(root: Path, filename: str, preferred: tuple[str, ...], max_depth: int = 4):
    """`root/filename`, `root/<preferred>/filename`, else the shallowest match up to max_depth
    folders below root (frame and mask folders are not entered). Returns (path or None, the
    places looked at first)."""
    looked = [root / filename] + [root / p / filename for p in preferred]
    for candidate in looked:
        if candidate.is_file():
            return candidate, looked
    level = [root]
    for _ in range(max_depth + 1):  # breadth first: a CSV sits above its data
        for folder in level:
            if (folder / filename).is_file():
                return folder / filename, looked
        level = [d for folder in level for d in _subdirs(folder) if d.name not in _SKIP_DIRS]
    return None, looked


class Layout(ABC):
    """A data set's CSV and data folder. Subclasses: `S4Layout`, `MS3Layout`, `AVSSLayout`."""

    setting = ""
    csv_name = ""
    standard_dir = ""  # where AVS-Synth writes the CSV, relative to its output root
    data_subdir = ""  # the data folder's name beside the CSV ("" : the CSV's own folder)
    num_frames = 5  # T: frames per clip after padding
    has_log_mel = False  # whether clips come with log-mel pickles (`pkl_path`)
    csv_header: tuple[str, ...] = ()

    def __init__(self, csv_path: str | os.PathLike, data_dir: str | os.PathLike) -> None:
        self.csv_path = Path(csv_path)
        self.data_dir = Path(data_dir)

    # --- locating ---
    @classmethod
    def standard(cls, out_root: str | os.PathLike) -> Layout:
        """The paths AVS-Synth writes under `out_root` (the CSV need not exist yet)."""
        base = Path(out_root) / cls.standard_dir
        return cls(base / cls.csv_name, cls._standard_data_dir(base))

    @classmethod
    def find(
        cls,
        root: str | os.PathLike,
        *,
        csv_path: str | os.PathLike | None = None,
        data_dir: str | os.PathLike | None = None,
    ) -> Layout:
        """Find the CSV and the data folder below `root` (or take them explicitly)."""
        root = Path(root)
        if csv_path is None:
            if not root.is_dir():
                raise FileNotFoundError(f"{cls.setting} data root {root} is not a folder")
            found, looked = _find_file(root, cls.csv_name, (cls.standard_dir, "avsbench_data"))
            if found is None:
                raise FileNotFoundError(
                    f"no {cls.csv_name} under {root} (looked at {', '.join(map(str, looked))} "
                    f"and 4 folder levels below); pass csv_path=... explicitly"
                )
            csv_path = found
        csv_path = Path(csv_path)
        if not csv_path.is_file():
            raise FileNotFoundError(f"{cls.setting} CSV {csv_path} does not exist")
        if data_dir is None:
            candidates = cls._data_dir_candidates(csv_path.parent)
            data_dir = next((c for c in candidates if cls._looks_like_data_dir(c)), None)
            if data_dir is None:
                raise FileNotFoundError(
                    f"found {csv_path} but no {cls.setting} data folder beside it (looked at "
                    f"{', '.join(map(str, candidates))}); pass data_dir=... explicitly"
                )
        return cls(csv_path, data_dir)

    @classmethod
    def _standard_data_dir(cls, base: Path) -> Path:
        return base / cls.data_subdir

    @classmethod
    def _data_dir_candidates(cls, csv_dir: Path) -> list[Path]:
        sub = cls.data_subdir  # AVSBench: <csv dir>/s4_data; SelM: <csv dir>/s4_data/s4_data
        return [csv_dir / sub, csv_dir / sub / sub, csv_dir] if sub else [csv_dir]

    @classmethod
    def _looks_like_data_dir(cls, path: Path) -> bool:
        return (path / "visual_frames").is_dir()

    # --- the CSV ---
    def records(self, split: str | None = None) -> list[ClipRecord]:
        """Clips of `split` (all when None), in CSV order."""
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        with open(self.csv_path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or "split" not in header:
                raise ValueError(f"{self.csv_path}: expected a header with a 'split' column")
            rows = [dict(zip(header, row)) | {"_cols": row} for row in reader if row]
        out = [self._record(row) for row in rows]
        return [r for r in out if split is None or r.split == split]

    def write_csv(self, records: list[ClipRecord]) -> None:
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.csv_path, "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(self.csv_header)
            writer.writerows(self._row(r) for r in records)

    @abstractmethod
    def _record(self, row: dict) -> ClipRecord:
        """A CSV row (column -> value, plus `_cols`: the raw row) -> ClipRecord."""

    @abstractmethod
    def _row(self, rec: ClipRecord) -> list[str]:
        """ClipRecord -> the CSV row AVS-Synth writes (columns `csv_header`)."""

    def gt_frames(self, split: str, subset: str, num_frames: int) -> tuple[int, ...]:
        return tuple(range(num_frames))

    # --- files of a clip ---
    @abstractmethod
    def frame_path(self, rec: ClipRecord, i: int) -> Path:
        """Frame i (0-based)."""

    @abstractmethod
    def mask_path(self, rec: ClipRecord, i: int) -> Path:
        """Ground truth of frame i (0-based)."""

    def pkl_path(self, rec: ClipRecord) -> Path | None:
        """The log-mel pickle (T x 1 x 96 x 64), or None where the layout has none (AVSS)."""
        return None

    @abstractmethod
    def wav_path(self, rec: ClipRecord) -> Path:
        """The clip's 16 kHz audio."""

    @abstractmethod
    def clip_dirs(self) -> dict[str, Path]:
        """Clip folders found on disk, by clip name (the checker compares them with the CSV)."""


class S4Layout(Layout):
    setting, csv_name, standard_dir = "s4", "s4_meta_data.csv", "Single-source"
    has_log_mel, data_subdir = True, "s4_data"
    csv_header = ("name", "start_time", "category", "split")

    def _record(self, row: dict) -> ClipRecord:
        cols = row["_cols"]
        name, category = row.get("name", cols[0]), row.get("category", cols[2])
        split = row["split"]
        return ClipRecord(
            name=name, split=split, category=category, gt_frames=self.gt_frames(split, "", 5)
        )

    def _row(self, rec: ClipRecord) -> list[str]:
        return [rec.name, "0", rec.category, rec.split]

    def gt_frames(self, split: str, subset: str, num_frames: int) -> tuple[int, ...]:
        return (0,) if split == "train" else tuple(range(num_frames))  # S4 train: frame 1 only

    def frame_path(self, rec: ClipRecord, i: int) -> Path:
        d = self.data_dir / "visual_frames" / rec.split / rec.category / rec.name
        return d / f"{rec.name}_{i + 1}.png"

    def mask_path(self, rec: ClipRecord, i: int) -> Path:
        d = self.data_dir / "gt_masks" / rec.split / rec.category / rec.name
        return d / f"{rec.name}_{i + 1}.png"

    def pkl_path(self, rec: ClipRecord) -> Path:
        return self.data_dir / "audio_log_mel" / rec.split / rec.category / f"{rec.name}.pkl"

    def wav_path(self, rec: ClipRecord) -> Path:
        return self.data_dir / "audio_wav" / rec.split / rec.category / f"{rec.name}.wav"

    def clip_dirs(self) -> dict[str, Path]:
        frames = self.data_dir / "visual_frames"
        return {d.name: d for s in _subdirs(frames) for c in _subdirs(s) for d in _subdirs(c)}


class MS3Layout(Layout):
    setting, csv_name, standard_dir = "ms3", "ms3_meta_data.csv", "Multi-sources"
    has_log_mel, data_subdir = True, "ms3_data"
    csv_header = ("name", "split")

    def _record(self, row: dict) -> ClipRecord:
        name = row.get("name", row["_cols"][0])
        return ClipRecord(name=name, split=row["split"], gt_frames=tuple(range(5)))

    def _row(self, rec: ClipRecord) -> list[str]:
        return [rec.name, rec.split]

    def frame_path(self, rec: ClipRecord, i: int) -> Path:
        return self.data_dir / "visual_frames" / rec.name / f"{rec.name}.mp4_{i + 1}.png"

    def mask_path(self, rec: ClipRecord, i: int) -> Path:
        return self.data_dir / "gt_masks" / rec.split / rec.name / f"{rec.name}_{i + 1}.png"

    def pkl_path(self, rec: ClipRecord) -> Path:
        return self.data_dir / "audio_log_mel" / rec.split / f"{rec.name}.pkl"

    def wav_path(self, rec: ClipRecord) -> Path:
        return self.data_dir / "audio_wav" / rec.split / f"{rec.name}.wav"

    def clip_dirs(self) -> dict[str, Path]:
        return {d.name: d for d in _subdirs(self.data_dir / "visual_frames")}


class AVSSLayout(Layout):
    setting, csv_name, standard_dir = "avss", "metadata.csv", "AVSS"
    num_frames = 10
    csv_header = ("vid", "uid", "s_min", "s_sec", "a_obj", "split", "label")

    @classmethod
    def _looks_like_data_dir(cls, path: Path) -> bool:
        return any((path / s).is_dir() for s in AVSS_SUBSETS)

    def _record(self, row: dict) -> ClipRecord:
        missing = [c for c in ("uid", "label") if c not in row]
        if missing:
            raise ValueError(f"{self.csv_path}: missing column(s) {missing}")
        subset, split = row["label"], row["split"]
        if subset not in AVSS_SUBSETS:
            raise ValueError(f"{self.csv_path}: label {subset!r} not in {AVSS_SUBSETS}")
        n = 10 if subset == "v2" else 5
        return ClipRecord(
            name=row["uid"],
            split=split,
            category=row.get("a_obj", ""),
            subset=subset,
            num_frames=n,
            gt_frames=self.gt_frames(split, subset, n),
        )

    def _row(self, rec: ClipRecord) -> list[str]:
        return [rec.name, rec.name, "0", "0", rec.category, rec.split, rec.subset]

    def gt_frames(self, split: str, subset: str, num_frames: int) -> tuple[int, ...]:
        # AVSBench-object single-source train clips annotate their first frame only
        return (0,) if (subset == "v1s" and split == "train") else tuple(range(num_frames))

    def frame_path(self, rec: ClipRecord, i: int) -> Path:
        return self.data_dir / rec.subset / rec.name / "frames" / f"{i}.jpg"

    def mask_path(self, rec: ClipRecord, i: int) -> Path:
        return self.data_dir / rec.subset / rec.name / "labels_rgb" / f"{i}.png"

    def wav_path(self, rec: ClipRecord) -> Path:
        return self.data_dir / rec.subset / rec.name / "audio.wav"

    def clip_dirs(self) -> dict[str, Path]:
        return {d.name: d for s in AVSS_SUBSETS for d in _subdirs(self.data_dir / s)}


LAYOUTS: dict[str, type[Layout]] = {"s4": S4Layout, "ms3": MS3Layout, "avss": AVSSLayout}
assert tuple(LAYOUTS) == SETTINGS


def layout_class(setting: str) -> type[Layout]:
    if setting not in LAYOUTS:
        raise ValueError(f"setting must be one of {tuple(LAYOUTS)}, got {setting!r}")
    return LAYOUTS[setting]
