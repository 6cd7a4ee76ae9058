"""`python -m train.check_data ROOT --setting s4|ms3|avss`: walk a data root and report what is
missing or malformed: clips per split, the first problems with their paths, unreadable files.
Exits 0 when the data is complete, 1 when it found problems, 2 when it found no data set."""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import soundfile
from PIL import Image

from selm.presets import SETTINGS
from train.data.files import decode_label_colours, load_log_mel, read_rgb
from train.data.layout import SPLITS, ClipRecord, Layout, layout_class


@dataclass
class Report:
    setting: str
    csv_path: Path
    data_dir: Path
    counts: dict[str, int] = field(default_factory=dict)  # clips per split
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, what is wrong)
    unreadable: list[str] = field(default_factory=list)
    files_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, path, message: str, unreadable: bool = False) -> None:
        self.problems.append((str(path), message))
        if unreadable:
            self.unreadable.append(str(path))

    def format(self, max_problems: int = 20) -> str:
        lines = [
            f"{self.setting}: CSV {self.csv_path}, data {self.data_dir}",
            "  clips: " + ", ".join(f"{s} {self.counts.get(s, 0)}" for s in self.counts),
            f"  files checked: {self.files_checked}",
        ]
        if self.ok:
            return "\n".join(lines + ["  OK: nothing missing or malformed"])
        lines.append(f"  {len(self.problems)} problem(s); the first {max_problems}:")
        lines += [f"    {path}: {what}" for path, what in self.problems[:max_problems]]
        if self.unreadable:
            lines.append(f"  {len(self.unreadable)} unreadable file(s):")
            lines += [f"    {path}" for path in self.unreadable[:max_problems]]
            if len(self.unreadable) > max_problems:
                lines.append(f"    ... and {len(self.unreadable) - max_problems} more")
        return "\n".join(lines)


def _check_image(report: Report, path: Path, what: str, sizes: set) -> Image.Image | None:
    report.files_checked += 1
    if not path.is_file():
        report.add(path, f"missing {what}")
        return None
    try:
        img = Image.open(path)
        img.load()  # decodes everything: a truncated file fails here
    except (OSError, SyntaxError, ValueError) as e:
        report.add(path, f"unreadable {what} ({e})", unreadable=True)
        return None
    sizes.add(img.size)
    return img


def _check_clip(report: Report, layout: Layout, rec: ClipRecord) -> None:
    frame_sizes: set = set()
    for i in range(rec.num_frames):
        _check_image(report, layout.frame_path(rec, i), f"frame {i + 1}", frame_sizes)
    if len(frame_sizes) > 1:
        report.add(layout.frame_path(rec, 0), f"frames of different sizes {sorted(frame_sizes)}")
    mask_sizes: set = set()
    for i in rec.gt_frames:
        path = layout.mask_path(rec, i)
        img = _check_image(report, path, f"mask of frame {i + 1}", mask_sizes)
        if img is not None and layout.setting == "avss":
            _, unknown = decode_label_colours(read_rgb(path))
            if unknown:
                report.add(path, f"{unknown} pixel(s) with colours outside the AVSS palette")
    if len(mask_sizes) > 1:
        report.add(
            layout.mask_path(rec, rec.gt_frames[0]),
            f"masks of different sizes {sorted(mask_sizes)}",
        )
    if layout.has_log_mel:
        path = layout.pkl_path(rec)
        report.files_checked += 1
        if not path.is_file():
            report.add(path, "missing log-mel pickle")
        else:
            try:
                examples = load_log_mel(path).shape[0]
                if examples != layout.num_frames:
                    report.add(path, f"{examples} log-mel examples, expected {layout.num_frames}")
            except (ValueError, OSError, RuntimeError) as e:
                report.add(path, f"unreadable log-mel pickle ({e})", unreadable=True)
    _check_wav(report, layout.wav_path(rec), required=not layout.has_log_mel)


def _check_wav(report: Report, path: Path, required: bool) -> None:
    """The wav is the audio of AVSS; for S4/MS3 (which ship pickles) it is checked if present."""
    if not path.is_file():
        if required:
            report.files_checked += 1
            report.add(path, "missing audio wav")
        return
    report.files_checked += 1
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, ValueError) as e:
        report.add(path, f"unreadable wav ({e})", unreadable=True)
        return
    if data.shape[0] < 0.96 * rate:
        report.add(path, f"audio of {data.shape[0] / rate:.2f} s is shorter than one example")


def check(
    root: str | os.PathLike,
    setting: str,
    *,
    csv_path: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
) -> Report:
    """Check every file the CSV promises, and find clip folders the CSV does not list."""
    layout = layout_class(setting).find(root, csv_path=csv_path, data_dir=data_dir)
    report = Report(setting, layout.csv_path, layout.data_dir)
    records = layout.records()
    splits = Counter(r.split for r in records)
    report.counts = {s: splits.get(s, 0) for s in SPLITS}
    for split in sorted(set(splits) - set(SPLITS)):
        report.counts[split] = splits[split]
        report.add(layout.csv_path, f"{splits[split]} row(s) with unknown split {split!r}")
    for name, n in sorted(Counter(r.name for r in records).items()):
        if n > 1:
            report.add(layout.csv_path, f"clip {name!r} listed {n} times")
    for rec in records:
        if rec.split in SPLITS:
            _check_clip(report, layout, rec)
    listed = {r.name for r in records}
    for name, path in sorted(layout.clip_dirs().items()):
        if name not in listed:
            report.add(path, f"clip {name!r} is on disk but has no row in {layout.csv_path.name}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.check_data", description=__doc__)
    parser.add_argument("root", help="data root (the layout's folder or a parent of it)")
    parser.add_argument("--setting", required=True, choices=SETTINGS)
    parser.add_argument("--csv", default=None, help="the CSV, if not found below ROOT")
    parser.add_argument("--data-dir", default=None, help="the data folder, if not found")
    parser.add_argument("--max-problems", type=int, default=20, help="problems to list")
    args = parser.parse_args(argv)
    try:
        report = check(args.root, args.setting, csv_path=args.csv, data_dir=args.data_dir)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.format(args.max_problems))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
