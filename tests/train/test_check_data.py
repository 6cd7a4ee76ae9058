"""The data checker on damaged copies of generated AVS-Synth files."""

import shutil

import numpy as np
import pytest
from PIL import Image

from train.check_data import check, main
from train.data.layout import AVSSLayout, MS3Layout, S4Layout


@pytest.fixture
def copy(synth_root, tmp_path):
    def _copy(folder):
        shutil.copytree(synth_root / folder, tmp_path / folder)
        return tmp_path

    return _copy


@pytest.mark.parametrize(
    "setting, folder", [("s4", "Single-source"), ("ms3", "Multi-sources"), ("avss", "AVSS")]
)
def test_generated_data_is_clean(synth_root, setting, folder, capsys):
    report = check(synth_root, setting)
    assert report.ok and report.counts == {"train": 5, "val": 4, "test": 4}
    assert report.files_checked > 13 * 5
    assert main([str(synth_root / folder), "--setting", setting]) == 0
    assert "OK" in capsys.readouterr().out


def test_reports_a_deleted_mask_a_truncated_png_and_a_missing_csv_row(copy, capsys):
    root = copy("Multi-sources")
    layout = MS3Layout.find(root)
    recs = layout.records("test")
    deleted = layout.mask_path(recs[0], 2)
    deleted.unlink()
    truncated = layout.frame_path(recs[1], 0)
    truncated.write_bytes(truncated.read_bytes()[:200])
    layout.write_csv([r for r in layout.records() if r.name != recs[2].name])  # drop a row

    report = check(root, "ms3")
    problems = {path: what for path, what in report.problems}
    assert problems[str(deleted)] == "missing mask of frame 3"
    assert problems[str(truncated)].startswith("unreadable frame 1")
    assert report.unreadable == [str(truncated)]
    orphan = str(layout.clip_dirs()[recs[2].name])
    assert "has no row in ms3_meta_data.csv" in problems[orphan]
    assert len(report.problems) == 3 and report.counts["test"] == 3

    assert main([str(root), "--setting", "ms3", "--max-problems", "2"]) == 1
    out = capsys.readouterr().out
    assert "3 problem(s); the first 2:" in out and "1 unreadable file(s):" in out
    assert str(deleted) in out and str(truncated) in out


def test_reports_bad_pickles_wavs_and_palette_colours(copy):
    root = copy("Single-source")
    layout = S4Layout.find(root)
    rec = layout.records("val")[0]
    layout.pkl_path(rec).write_bytes(b"not a pickle")
    layout.wav_path(rec).write_bytes(b"RIFF0000WAVE")
    report = check(root, "s4")
    problems = dict(report.problems)
    assert "unreadable log-mel pickle" in problems[str(layout.pkl_path(rec))]
    assert "unreadable wav" in problems[str(layout.wav_path(rec))]
    assert len(report.unreadable) == 2

    root = copy("AVSS")
    layout = AVSSLayout.find(root)
    rec = layout.records("test")[0]
    bad = np.zeros((8, 8, 3), dtype=np.uint8)
    bad[0, 0] = (1, 2, 3)  # not a palette colour
    Image.fromarray(bad).save(layout.mask_path(rec, 1))
    layout.frame_path(rec, 4).unlink()
    problems = dict(check(root, "avss").problems)
    assert problems[str(layout.mask_path(rec, 1))].startswith("1 pixel(s) with colours outside")
    assert problems[str(layout.frame_path(rec, 4))] == "missing frame 5"
    assert "masks of different sizes" in problems[str(layout.mask_path(rec, 0))]


def test_missing_data_set_exits_2_with_a_message(tmp_path, capsys):
    assert main([str(tmp_path), "--setting", "avss"]) == 2
    assert "no metadata.csv under" in capsys.readouterr().err
