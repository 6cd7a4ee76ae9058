"""`python -m selm.predict` and the one-pass overlay write the same bytes as the code they were
recorded from (tests/golden_outputs.py): the bundled examples through the CLI, and a video of
three windows through the predictor and the redraw."""

import json
import os

import pytest
from golden_outputs import CHECKPOINT, EXAMPLES, expected, long_video, sha256

from selm import predict as cli

CASES = [
    ("hard_ms3_test_00015.mp4", []),
    ("synth_multi.mp4", []),
    ("synth_multi.mp4", ["--noise"]),
    ("synth_multi.mp4", ["--threshold", "0.3"]),
    ("synth_offscreen.mp4", []),
    ("synth_silent.mp4", []),
]


@pytest.mark.parametrize("name, flags", CASES)
def test_the_cli_writes_the_recorded_overlay_masks_and_summary(name, flags, tmp_path, capsys):
    want = expected(" ".join(["cli", name, *flags]))
    out, masks, summary = tmp_path / "o.mp4", tmp_path / "masks", tmp_path / "s.json"
    argv = [str(EXAMPLES / name), "--checkpoint", str(CHECKPOINT), "--out", str(out)]
    assert cli.main([*argv, "--masks-dir", str(masks), "--json", str(summary), *flags]) == 0
    written = json.loads(summary.read_text())
    written.pop("source")  # the path the test gave
    got = {
        "overlay": sha256(out.read_bytes()),
        "masks": sha256(b"".join((masks / f).read_bytes() for f in sorted(os.listdir(masks)))),
        "summary": sha256(json.dumps(written, sort_keys=True).encode()),
    }
    assert got == want


def test_a_video_of_three_windows_gives_the_recorded_overlay_and_redraw(tmp_path):
    from selm.inference.predictor import Predictor
    from selm.render.paint import write_overlay_video

    want = expected("long predict")
    video = long_video(tmp_path / "long.mp4")
    assert sha256(video.read_bytes()) == expected("long.mp4")  # the input itself is the same
    pred = Predictor.from_pretrained(CHECKPOINT).predict(video, overlay=tmp_path / "o.mp4")
    got = {
        "overlay": sha256((tmp_path / "o.mp4").read_bytes()),
        "frames": sha256(pred.frames.tobytes()),
        "waveform": sha256(pred.waveform.tobytes()),
        "hit": sha256(b"".join(h.tobytes() for h in pred.hit_maps)),
    }
    assert got == want
    write_overlay_video(pred, tmp_path / "r.mp4", 0.4)
    assert sha256((tmp_path / "r.mp4").read_bytes()) == expected("long redraw 0.4")
