"""Bad input and faults on the `selm` side: refused with a message that says what is
wrong, never a silently wrong result, a traceback or a partial file."""

import errno
import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from selm import build_selm, load_pretrained, save_pretrained
from selm import predict as predict_cli
from selm.config import SelMConfig
from selm.files import DiskFullError, atomic_path, is_temporary, remove_stale_temporaries
from selm.inference.audio_source import AudioSource, resolve_audio
from selm.inference.predictor import Predictor
from selm.media.audio import read_audio, write_wav
from selm.media.container import MediaError
from selm.media.video import Clip, frame_times
from selm.media.writer import open_writer
from selm.weights.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from selm.weights.state_dict import CheckpointError

SMALL = dict(input_size=64, num_frames=2)


def make_video(path, seconds=2, audio=True, fps=4, size=(32, 24)):
    rate = 16000
    with open_writer(path, size=size, fps=fps, sample_rate=rate if audio else None) as out:
        if audio:
            out.write_audio(0.3 * np.sin(2 * np.pi * 440 * np.arange(seconds * rate) / rate))
        for _ in range(seconds * fps):
            out.write_frame(np.full((size[1], size[0], 3), 128, np.uint8))
    return path


# --- item 8: NaN / Inf samples are refused from a file as from an array ---------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_file_with_nan_or_inf_samples_is_refused(tmp_path, bad):
    wave = np.full(16000, 0.25, np.float32)
    wave[[10, 500, 9000]] = bad
    path = tmp_path / "broken.wav"
    soundfile.write(path, wave, 16000, subtype="FLOAT")  # float wavs can carry NaN / Inf
    with pytest.raises(MediaError, match=r"broken\.wav holds 3 NaN or infinite sample"):
        read_audio(path)
    clip = Clip(
        frames=np.zeros((2, 8, 8, 3), np.uint8),
        times=frame_times(2),
        waveform=np.zeros(32000, np.float32),
        duration=2.0,
        fps=4.0,
        width=8,
        height=8,
        source=str(tmp_path / "v.mp4"),
    )
    with pytest.raises(MediaError, match="NaN or infinite"):
        resolve_audio(clip, AudioSource.file(path))
    # the same words as for an array, and for a video's own track
    with pytest.raises(MediaError, match="NaN or infinite"):
        AudioSource.waveform(wave)
    track = np.zeros(32000, np.float32)
    track[7] = bad
    with pytest.raises(MediaError, match=r"audio track of v\.mp4 holds 1 NaN"):
        resolve_audio(Clip(**{**clip.__dict__, "waveform": track}), "original")


def test_a_finite_float_file_still_reads_exactly(tmp_path):
    wave = np.linspace(-0.5, 0.5, 16000, dtype=np.float32)
    soundfile.write(tmp_path / "ok.wav", wave, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(read_audio(tmp_path / "ok.wav"), wave)


# --- item 9: broken weights, non-finite outputs ---------------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(1)
    model = build_selm("selm_tiny", **SMALL).eval()
    return save_pretrained(model, tmp_path_factory.mktemp("ckpt") / "tiny")


def test_nan_weights_are_a_broken_checkpoint(tiny_checkpoint, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / CONFIG_NAME).write_text((tiny_checkpoint / CONFIG_NAME).read_text())
    state = load_file(str(tiny_checkpoint / WEIGHTS_NAME))
    name = sorted(k for k, v in state.items() if v.is_floating_point())[3]
    state[name] = state[name].clone()
    state[name].view(-1)[0] = float("nan")
    save_file(state, str(broken / WEIGHTS_NAME))
    with pytest.raises(CheckpointError, match=rf"checkpoint is broken: 1 weight .*{name}"):
        load_pretrained(broken)
    load_pretrained(tiny_checkpoint)  # the good one still loads


class NaNModel(nn.Module):
    """Finite weights, NaN logits from the second window on (an overflow, a broken layer)."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SelMConfig(input_size=32, num_frames=2)
        self.scale = nn.Parameter(torch.ones(()))
        self.calls = 0

    def forward(self, frames, audio, frame_mask, return_maps=False):
        b, t = frames.shape[:2]
        self.calls += 1
        value = float("nan") if self.calls > 1 else 1.0
        logits = torch.full((b, t, 1, 8, 8), value) * self.scale
        hits = [torch.zeros(b, t, 2, s, s) for s in (2, 4, 8)]
        return SimpleNamespace(logits=logits, hit_maps=hits, dam_maps=None, bcsm=None)


def test_non_finite_outputs_say_the_checkpoint_is_broken(tmp_path):
    video = make_video(tmp_path / "v.mp4", seconds=3)
    with pytest.raises(CheckpointError, match=r"seconds 2-2 holds NaN .*checkpoint is broken"):
        Predictor(NaNModel()).predict(video, audio="mute")


# --- item 14: a full disk says so and leaves nothing partial --------------------------------


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_write_wav_on_a_full_disk(tmp_path, monkeypatch):
    target = tmp_path / "heard.wav"
    write_wav(target, np.zeros(1600, np.float32))
    before = target.read_bytes()
    monkeypatch.setattr(soundfile, "write", _enospc)
    with pytest.raises(DiskFullError, match=f"no space left on {tmp_path}"):
        write_wav(target, np.ones(1600, np.float32))
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["heard.wav"]

    def system_error(*args, **kwargs):  # what libsndfile says on a full disk
        raise soundfile.LibsndfileError(2, "Error opening 'x': ")

    monkeypatch.setattr(soundfile, "write", system_error)
    with pytest.raises(soundfile.LibsndfileError):  # space left: not called a full disk
        write_wav(target, np.ones(1600, np.float32))
    monkeypatch.setattr("selm.files.shutil.disk_usage", lambda p: SimpleNamespace(free=0))
    with pytest.raises(DiskFullError, match="no space left on"):
        write_wav(target, np.ones(1600, np.float32))
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["heard.wav"]


def test_save_pretrained_on_a_full_disk_keeps_the_old_pair(tiny_checkpoint, tmp_path, monkeypatch):
    model = load_pretrained(tiny_checkpoint)
    target = save_pretrained(model, tmp_path / "best", step=1)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    original = Path.write_text

    def full_for_configs(self, *args, **kwargs):  # the weights fit, the config does not
        if self.suffix == ".json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_for_configs)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with pytest.raises(DiskFullError, match="no space left on"):
        save_pretrained(model, target, step=2)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before  # no new weights alone


# --- item 16: stale temporaries, the umask ----------------------------------------------------


def test_stale_temporaries_are_removed_and_only_they(tmp_path, tiny_checkpoint):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    stale = [
        folder / ".model.0123456789ab.tmp.safetensors",
        folder / ".last.abcdef012345.tmp.pt",
    ]
    keep = [folder / "model.safetensors.bak", folder / ".hidden", folder / "a.tmp"]
    for path in stale + keep:
        path.write_bytes(b"x" * 100)
    with atomic_path(folder / "x.json") as tmp:
        assert is_temporary(tmp)  # what atomic_path writes is what is cleaned
        tmp.write_text("{}")
    assert sorted(remove_stale_temporaries(folder)) == sorted(stale)
    assert sorted(p.name for p in folder.iterdir()) == sorted([p.name for p in keep] + ["x.json"])
    # save_pretrained cleans its own folder first
    stale[0].write_bytes(b"x")
    save_pretrained(load_pretrained(tiny_checkpoint), folder)
    assert not stale[0].exists()


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_written_files_honour_the_umask(tmp_path, umask, tiny_checkpoint):
    old = os.umask(umask)
    try:
        target = save_pretrained(load_pretrained(tiny_checkpoint), tmp_path / "c")
        wav = write_wav(tmp_path / "a.wav", np.zeros(160, np.float32))
    finally:
        os.umask(old)
    for path in (target / CONFIG_NAME, target / WEIGHTS_NAME, wav):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


# --- item 17: config values of the wrong type; fixed fields; the CLI's words -----------------


def test_config_values_are_type_checked(tmp_path, tiny_checkpoint):
    with pytest.raises(ValueError, match=r"SelMConfig\.dim='64': expected int"):
        SelMConfig.from_dict({"dim": "64"})
    with pytest.raises(ValueError, match=r"SelMConfig\.pos_grid\[1\]='a'"):
        SelMConfig.from_dict({"pos_grid": [4, "a", 16]})
    with pytest.raises(ValueError, match=r"SelMConfig\.bcsm=1: expected bool"):
        SelMConfig.from_dict({"bcsm": 1})
    assert SelMConfig.from_dict({"dropout": 0, "aux_weights": [1, 2, 3]}).aux_weights == (
        1.0,
        2.0,
        3.0,
    )
    payload = json.loads((tiny_checkpoint / CONFIG_NAME).read_text())
    payload["config"]["dim"] = "64"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / CONFIG_NAME).write_text(json.dumps(payload))
    (bad / WEIGHTS_NAME).write_bytes((tiny_checkpoint / WEIGHTS_NAME).read_bytes())
    with pytest.raises(CheckpointError, match=r"not a valid SelM config .*dim='64': expected int"):
        load_pretrained(bad)


def test_num_frames_of_a_checkpoint_cannot_be_changed(tiny_checkpoint):
    with pytest.raises(CheckpointError, match=r"cannot change num_frames.*num_frames=2"):
        load_pretrained(tiny_checkpoint, num_frames=5)
    assert load_pretrained(tiny_checkpoint, num_frames=2).config.num_frames == 2
    assert load_pretrained(tiny_checkpoint, gumbel_at_eval=True).config.gumbel_at_eval


def _cli_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        predict_cli.main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def _no_model(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model must not load before the arguments are checked")

    monkeypatch.setattr(Predictor, "from_pretrained", refuse)


def test_cli_names_its_own_flags(tmp_path, capsys, monkeypatch):
    _no_model(monkeypatch)
    silent = make_video(tmp_path / "silent.mp4", audio=False)
    out = str(tmp_path / "o.mp4")
    err = _cli_error(capsys, [str(silent), "--checkpoint", "x", "--out", out])
    assert "silent.mp4 has no audio track" in err and "--mute" in err and "audio=" not in err
    missing = tmp_path / "nowhere.wav"
    err = _cli_error(capsys, [str(silent), "--checkpoint", "x", "--audio", str(missing)])
    assert f"--audio {missing}: no such file" in err
    err = _cli_error(capsys, [str(silent), "--checkpoint", "x", "--audio", str(tmp_path)])
    assert "is a folder, not an audio file" in err


# --- item 15: every output path is checked before anything runs -----------------------------


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--out", "{tmp}"], "--out {tmp} is a folder"),
        (["--out", "{tmp}/o.webm"], "unknown video extension '.webm'"),
        (["--out", "{tmp}/o"], "no video extension"),
        (["--out", "{tmp}/o.mp4", "--json", "{tmp}"], "--json {tmp} is a folder"),
        (["--out", "{tmp}/o.mp4", "--json", "{tmp}/v.mp4/s.json"], "v.mp4 is a file"),
        (
            ["--out", "{tmp}/o.mp4", "--masks-dir", "{tmp}/v.mp4"],
            "--masks-dir {tmp}/v.mp4 is a file",
        ),
        (["--out", "{tmp}/o.mp4", "--json", "{tmp}/o.mp4"], "name the same file o.mp4"),
        (["--out", "{tmp}/v.mp4"], "--out and VIDEO name the same file"),
    ],
)
def test_bad_output_paths_fail_before_decoding(tmp_path, capsys, monkeypatch, extra, message):
    _no_model(monkeypatch)
    video = make_video(tmp_path / "v.mp4")

    def no_decoding(*args, **kwargs):
        raise AssertionError("the video must not be decoded before the outputs are checked")

    monkeypatch.setattr(predict_cli, "check_inputs", no_decoding)  # the first reads of the video
    monkeypatch.setattr(predict_cli, "VideoStream", no_decoding)
    argv = [str(video), "--checkpoint", "x"] + [a.format(tmp=tmp_path) for a in extra]
    assert message.format(tmp=tmp_path) in _cli_error(capsys, argv)
    assert sorted(os.listdir(tmp_path)) == ["v.mp4"]  # nothing written


def test_unwritable_output_folder_is_refused(tmp_path, capsys, monkeypatch):
    if os.geteuid() == 0:
        monkeypatch.setattr(predict_cli.os, "access", lambda path, mode: False)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        _no_model(monkeypatch)
        video = make_video(tmp_path / "v.mp4")
        err = _cli_error(capsys, [str(video), "--checkpoint", "x", "--out", str(locked / "o.mp4")])
        assert f"the folder {locked} is not writable" in err
    finally:
        locked.chmod(0o700)
