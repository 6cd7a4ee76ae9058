"""`python -m selm.predict`: the overlay video, masks and summary it writes, its one-line errors,
and the same bytes as the code they were recorded from (tests/golden_outputs.py): the bundled
examples through the CLI, and a video of three windows through the predictor and the redraw."""

import json
import os

import numpy as np
import pytest
import soundfile
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


# --- one line and exit code 2 for what a user gets wrong ------------------------------------


def _one_line_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err.splitlines()[-1]  # argparse prints its usage line first


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--max-seconds", "nan"], "--max-seconds=nan: give a positive number of seconds"),
        (["--max-seconds", "-1"], "--max-seconds=-1"),
        (["--threshold", "nan"], "--threshold=nan: give a number strictly between 0 and 1"),
        (["--device", "tpu"], "--device 'tpu' is not a torch device"),
    ],
)
def test_cli_bad_flags_are_one_line(video, tmp_path, fake_checkpoint, capsys, flags, message):
    argv = [str(video), "--checkpoint", "c", "--out", str(tmp_path / "o.mp4"), *flags]
    assert message in _one_line_error(capsys, argv)
    assert not (tmp_path / "o.mp4").exists()


def test_cli_says_a_renamed_picture_is_not_a_video(tmp_path, fake_checkpoint, capsys):
    import cv2

    cv2.imwrite(str(tmp_path / "photo.png"), np.full((48, 64, 3), 90, np.uint8))
    renamed = (tmp_path / "photo.png").rename(tmp_path / "photo.mp4")
    err = _one_line_error(capsys, [str(renamed), "--checkpoint", "c"])
    assert "'photo.mp4' is a still image (PNG), not a video" in err and "audio" not in err


def test_cli_on_a_checkpoint_with_a_damaged_config(video, tmp_path, capsys):
    from selm.build import build_selm
    from selm.weights.checkpoint import CONFIG_NAME, save_pretrained

    folder = save_pretrained(build_selm("selm_tiny", input_size=64), tmp_path / "ckpt")
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["config"]["dim"] = -32
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    err = _one_line_error(capsys, [str(video), "--checkpoint", str(folder)])
    assert err.endswith(
        "SelMConfig.dim=-32: expected 32 to 4096 (a config.json with this value "
        "is damaged or not SelM's))"
    )


def test_cli_hears_a_7_1_audio_file(video, tmp_path, fake_checkpoint, capsys):
    """8 channels (planar in PyAV's resampler) crashed the process with exit 139."""
    t = np.arange(3 * 16000) / 16000
    sound = np.stack([0.05 * (k + 1) * np.sin(2 * np.pi * 300 * t) for k in range(8)], 1)
    soundfile.write(tmp_path / "surround.wav", sound, 16000, subtype="FLOAT")
    summary = tmp_path / "s.json"
    argv = [str(video), "--checkpoint", "c", "--audio", str(tmp_path / "surround.wav")]
    assert cli.main([*argv, "--out", str(tmp_path / "o.mp4"), "--json", str(summary)]) == 0
    seconds = json.loads(summary.read_text())["seconds"]
    areas = [s["area"] for s in seconds]  # the 3 s of sound heard, then silence
    assert all(a > 0 for a in areas[:3]) and all(a == 0 for a in areas[4:])


# --- nothing half-written: SIGTERM, and what a killed run left -------------------------------


def test_sigterm_while_writing_the_overlay_leaves_nothing(tmp_path, capsys):
    """A real process stopped by SIGTERM mid-overlay: exit status 143, its temporary removed,
    no output; a temporary that a killed run (SIGKILL: nobody holds it) left is removed by the
    next run, before anything else, and a live run's is not."""
    import signal
    import subprocess
    import sys
    import time

    from fake_selm import scene

    from selm.build import build_selm
    from selm.files import atomic_path
    from selm.media.writer import open_writer
    from selm.weights.checkpoint import save_pretrained

    checkpoint = save_pretrained(build_selm("selm_tiny", input_size=64), tmp_path / "ckpt")
    video = tmp_path / "long.mp4"  # a minute: the overlay is still being written at SIGTERM
    with open_writer(video, size=(64, 48), fps=4, sample_rate=16000) as writer:
        writer.write_audio(0.1 * np.sin(2 * np.pi * 440 * np.arange(60 * 16000) / 16000))
        for index in range(60 * 4):
            writer.write_frame(scene(index % 7))
    out = tmp_path / "out" / "overlay.mp4"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, "-m", "selm.predict", str(video), "--checkpoint", str(checkpoint)]
    proc = subprocess.Popen(
        [*argv, "--out", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not list(out.parent.glob(".overlay.*.tmp.mp4")) and proc.poll() is None:
        assert time.monotonic() < deadline, "the overlay was never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err.decode()
    assert "stopped by SIGTERM; unfinished outputs removed" in err.decode()
    assert list(out.parent.iterdir()) == []

    stale = out.parent / ".overlay.0123456789ab.tmp.mp4"  # as SIGKILL leaves it
    stale.write_bytes(b"\0" * 1000)
    with atomic_path(out) as live:  # another run writing the same file right now
        missing = str(tmp_path / "nothing")
        err = _one_line_error(capsys, [str(video), "--checkpoint", missing, "--out", str(out)])
        assert not stale.exists() and live.exists()
    assert "--checkpoint" in err
