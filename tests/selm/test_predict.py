"""`python -m selm.predict`: the overlay video, masks and summary it writes, its one-line errors,
and the same bytes as the code they were recorded from (tests/golden_outputs.py): the bundled
examples through the CLI, and a video of three windows through the predictor and the redraw."""

import json
import os

import numpy as np
import pytest
from fake_selm import SECONDS, FakeSelM, expected_mask
from golden_outputs import CHECKPOINT, EXAMPLES, expected, long_video, sha256

from selm import predict as cli
from selm.inference.predictor import Predictor
from selm.media.audio import write_wav

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
    from selm.inference.prediction import Prediction
    from selm.inference.predictor import Predictor
    from selm.render.overlay import OverlayVideo, write_overlay_video

    want = expected("long predict")
    video = long_video(tmp_path / "long.mp4")
    assert sha256(video.read_bytes()) == expected("long.mp4")  # the input itself is the same
    windows = Predictor.from_pretrained(CHECKPOINT).windows(video, video_frames=True)
    with OverlayVideo(tmp_path / "o.mp4") as overlay:
        pred = Prediction.from_windows(windows, overlay.add)
    got = {
        "overlay": sha256((tmp_path / "o.mp4").read_bytes()),
        "frames": sha256(pred.frames.tobytes()),
        "waveform": sha256(pred.waveform.tobytes()),
        "hit": sha256(b"".join(h.tobytes() for h in pred.hit_maps)),
    }
    assert got == want
    write_overlay_video(pred, tmp_path / "r.mp4", 0.4)
    assert sha256((tmp_path / "r.mp4").read_bytes()) == expected("long redraw 0.4")


@pytest.fixture
def fake_checkpoint(monkeypatch):
    monkeypatch.setattr(
        Predictor,
        "from_pretrained",
        classmethod(lambda cls, path, device="cpu": cls(FakeSelM(), device=device)),
    )


def test_cli_writes_video_masks_and_summary(video, tmp_path, fake_checkpoint, capsys):
    out, summary, masks = tmp_path / "o" / "out.mp4", tmp_path / "s.json", tmp_path / "m"
    code = cli.main(
        [
            str(video),
            "--checkpoint",
            "ckpt",
            "--out",
            str(out),
            "--json",
            str(summary),
            "--masks-dir",
            str(masks),
        ]
    )
    assert code == 0 and out.is_file()
    report = json.loads(summary.read_text())
    area = expected_mask().mean()
    assert report["audio"] == "original" and len(report["seconds"]) == SECONDS
    assert all(s["area"] == pytest.approx(area, abs=0.02) for s in report["seconds"])
    assert sorted(p.name for p in masks.iterdir())[0] == "mask_000.png"
    assert len(list(masks.iterdir())) == SECONDS
    assert "second   6" in capsys.readouterr().out
    cli.main([str(video), "--checkpoint", "c", "--out", str(out), "--json", str(summary), "--mute"])
    assert all(s["area"] == 0 for s in json.loads(summary.read_text())["seconds"])


def test_cli_audio_file_named_mute(video, tmp_path, fake_checkpoint, monkeypatch):
    """--audio mute is the file `mute` (a beep in second 0 only), not silence."""
    monkeypatch.chdir(tmp_path)
    t = np.arange(14400) / 16000
    write_wav(tmp_path / "mute", 0.3 * np.sin(2 * np.pi * 500 * t), 16000)
    summary = tmp_path / "s.json"
    args = [str(video), "--checkpoint", "c", "--out", "o.mp4", "--json", str(summary)]
    assert cli.main(args + ["--audio", "mute"]) == 0
    seconds = json.loads(summary.read_text())["seconds"]
    area = expected_mask().mean()
    assert seconds[0]["area"] == pytest.approx(area, abs=0.02)
    assert [s["area"] for s in seconds[1:]] == [0] * (SECONDS - 1)
    assert cli.main(args + ["--mute"]) == 0
    assert all(s["area"] == 0 for s in json.loads(summary.read_text())["seconds"])


@pytest.mark.parametrize("case", ["not_media", "no_audio", "threshold", "both_audio"])
def test_cli_bad_input_exits_2_with_a_message(
    case, video, silent_video, tmp_path, fake_checkpoint, capsys
):
    text = tmp_path / "notes.mp4"
    text.write_text("hello")
    args, message = {
        "not_media": ([str(text)], "is not a video selm can read"),
        "no_audio": ([str(silent_video)], "no audio track"),
        "threshold": ([str(video), "--threshold", "1.5"], "strictly between 0 and 1"),
        "both_audio": ([str(video), "--mute", "--noise"], "not allowed with"),
    }[case]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args + ["--checkpoint", "c", "--out", str(tmp_path / "o.mp4")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o.mp4").exists()


def test_cli_bad_checkpoint_exits_2(video, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(
            [
                str(video),
                "--checkpoint",
                str(tmp_path / "nothing_here"),
                "--out",
                str(tmp_path / "o.mp4"),
            ]
        )
    assert exit_info.value.code == 2 and "--checkpoint" in capsys.readouterr().err
