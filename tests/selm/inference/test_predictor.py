import json
import math
import sys
import types
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from selm import predict as predict_cli
from selm.config import SelMConfig
from selm.inference.predictor import Prediction, Predictor
from selm.media.audio import write_wav
from selm.media.container import MediaError
from selm.media.video import frame_times, read_video
from selm.media.writer import open_writer
from selm.transforms.frames import IMAGENET_MEAN, IMAGENET_STD

SILENCE = math.log(0.01)  # log-mel of a waveform of zeros
W, H, FPS, SECONDS = 64, 48, 4, 7
RECT = (slice(8, 24), slice(16, 40))  # rows, cols of the bright object


class FakeSelM(nn.Module):
    """Bright pixels are 'sounding' whenever the frame's audio example is not silent.

    logits = 40 (brightness - 1/2) where mean(log-mel) > log(0.01), else -20; the maps carry
    each frame's mean brightness so stitching can be checked.
    """

    def __init__(self, num_classes: int = 1) -> None:
        super().__init__()
        self.config = SelMConfig(input_size=32, num_frames=5, num_classes=num_classes)
        self.scale = nn.Parameter(torch.ones(()))  # so .to(device) has something to move
        self.calls = []

    def forward(self, frames, audio, frame_mask, return_maps=False):
        self.calls.append((frames.clone(), audio.clone(), frame_mask.clone()))
        mean = torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1)
        bright = (frames * std + mean).mean(2)  # (B, T, S, S) in [0, 1]
        sound = audio.mean((2, 3, 4)) > SILENCE + 1e-3  # (B, T)
        fg = torch.where(sound[..., None, None], 40 * (bright - 0.5), torch.full_like(bright, -20))
        if self.config.num_classes == 1:
            logits = fg[:, :, None]
        else:  # class 0 background, class 2 the object
            logits = torch.stack([-fg, torch.full_like(fg, -30), fg], 2)
        b, t = bright.shape[:2]
        level = bright.mean((2, 3))  # (B, T)
        hit = (bright > 0.5).float()
        hits = [
            torch.stack([1 - h, h], 2)
            for h in (F.interpolate(hit, size=s, mode="nearest") for s in (4, 8, 16))
        ]
        dams = [level[..., None, None].expand(b, t, s, s) for s in (8, 4, 2, 1)]
        bcsm = [
            {
                "norm_before": d,
                "norm_after": 2 * d,
                "gate_audio": sound.float()[..., None].expand(b, t, 32),
                "gate_video": None,
            }
            for d in dams
        ]
        return SimpleNamespace(logits=logits * self.scale, hit_maps=hits, dam_maps=dams, bcsm=bcsm)


def scene(second: int) -> np.ndarray:
    image = np.full((H, W, 3), 10 + 12 * second, np.uint8)  # dark background, known level
    image[RECT] = 240
    return image


def make_video(path, seconds=SECONDS, audio=True):
    with open_writer(path, size=(W, H), fps=FPS, sample_rate=44100 if audio else None) as out:
        if audio:
            out.write_audio(0.5 * np.sin(2 * np.pi * 440 * np.arange(seconds * 44100) / 44100))
        for index in range(seconds * FPS):
            out.write_frame(scene(index // FPS))
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("media") / "scene.mp4")


@pytest.fixture(scope="module")
def silent_video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("media") / "silent.mp4", seconds=3, audio=False)


def expected_mask() -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[RECT] = True
    return mask


def assert_object_segmented(mask):
    """The bright rectangle is segmented, 3 px inside its border; nothing 4 px outside it."""
    assert mask[11:21, 19:37].all()
    outside = np.ones((H, W), bool)
    outside[4:28, 12:44] = False
    assert not mask[outside].any()


def test_windows_padding_and_stitching(video):
    model = FakeSelM()
    seen = []
    pred = Predictor(model).predict(video, progress=lambda f, m: seen.append((f, m)))
    assert [c[2].tolist() for c in model.calls] == [[[True] * 5], [[True, True] + [False] * 3]]
    frames, audio, _ = model.calls[1]
    assert frames.shape == (1, 5, 3, 32, 32) and audio.shape == (1, 5, 1, 96, 64)
    for t in (2, 3, 4):  # padded at the end by repeating the last real frame
        torch.testing.assert_close(frames[0, t], frames[0, 1])
    assert [f for f, _ in seen] == [0.25, 0.5, 0.75, 1.0]  # decode, model per window
    assert [m.split(":")[0] for _, m in seen] == ["decode", "model"] * 2
    assert "window 2/2" in seen[-1][1]
    assert isinstance(pred, Prediction)
    np.testing.assert_allclose(pred.times, frame_times(SECONDS))
    assert pred.frames.shape == (SECONDS, H, W, 3)
    assert pred.probs.shape == (SECONDS, 1, 32, 32) and pred.probs.dtype == np.float32  # grid
    assert pred.masks().shape == (SECONDS, H, W)
    assert pred.fps == FPS and pred.duration == pytest.approx(SECONDS)
    assert pred.source == str(video) and pred.audio_label == "original"
    # every second lands in its own slot: the DAM map holds that frame's mean brightness
    for level, side in zip(pred.dam_maps, (8, 4, 2, 1)):
        assert level.shape == (SECONDS, side, side) and level.dtype == np.float32
        np.testing.assert_allclose(level[:, 0, 0], pred.frames.mean((1, 2, 3)) / 255, atol=0.01)
    assert [h.shape for h in pred.hit_maps] == [(SECONDS, 2, s, s) for s in (4, 8, 16)]
    assert pred.bcsm[0]["gate_video"] is None
    assert pred.bcsm[3]["norm_after"].shape == (SECONDS, 1, 1)
    np.testing.assert_allclose(pred.bcsm[2]["norm_after"], 2 * pred.dam_maps[2], rtol=1e-6)
    for mask in pred.masks():
        assert_object_segmented(mask)


def test_audio_choices_change_the_result(video, tmp_path):
    predictor = Predictor(FakeSelM())
    mute = predictor.predict(video, audio="mute")
    assert mute.audio_label == "mute" and not mute.masks().any()
    np.testing.assert_array_equal(mute.waveform, np.zeros(SECONDS * 16000, np.float32))
    noise = predictor.predict(video, audio="noise")
    assert noise.audio_label == "noise" and noise.waveform.std() == pytest.approx(0.1, rel=0.05)
    np.testing.assert_array_equal(noise.waveform, predictor.predict(video, audio="noise").waveform)
    for mask in noise.masks():
        assert_object_segmented(mask)
    # sound only in [0, 2.5) and [5, 5.9) s: each window's audio example i covers
    # [0.96 i, 0.96 i + 0.96) of that window, so seconds 0, 1, 2 and 5 hear it, 3, 4, 6 do not
    t = np.arange(SECONDS * 16000) / 16000
    wave = np.where((t < 2.5) | ((t >= 5) & (t < 5.9)), 0.3 * np.sin(2 * np.pi * 500 * t), 0)
    heard = predictor.predict(video, audio=wave.astype(np.float32))
    assert heard.audio_label == "waveform"
    assert [bool(m.any()) for m in heard.masks()] == [True, True, True, False, False, True, False]
    short = write_wav(tmp_path / "beep.wav", 0.3 * np.sin(2 * np.pi * 500 * t[:14400]), 16000)
    from_file = predictor.predict(video, audio=short)  # 0.9 s of sound, zero-padded to 7 s
    assert from_file.audio_label == "beep.wav" and len(from_file.waveform) == SECONDS * 16000
    assert [bool(m.any()) for m in from_file.masks()] == [True] + [False] * 6


def test_semantic_masks_are_class_ids(video):
    pred = Predictor(FakeSelM(num_classes=3)).predict(video, max_seconds=10)
    assert pred.probs.shape == (SECONDS, 3, 32, 32)  # the model's grid
    np.testing.assert_allclose(pred.probs.sum(1), 1.0, atol=1e-5)
    masks = pred.masks()
    assert masks.dtype == np.int64 and set(np.unique(masks)) == {0, 2}
    for mask in masks:
        assert_object_segmented(mask == 2)


def test_clip_input_and_user_errors(video, silent_video):
    predictor = Predictor(FakeSelM())
    clip = read_video(video)
    assert predictor.predict(clip).masks().shape == (SECONDS, H, W)
    with pytest.raises(MediaError, match="longer than the limit of 5 s"):
        predictor.predict(clip, max_seconds=5)
    with pytest.raises(MediaError, match="has no audio track.*'mute'"):
        predictor.predict(silent_video)
    assert not predictor.predict(silent_video, audio="mute").masks().any()
    with pytest.raises(MediaError, match="expected one of"):
        predictor.predict(video, audio="loud")
    with pytest.raises(MediaError, match=r"\(S,\) array"):
        predictor.predict(video, audio=np.zeros((2, 16000)))


def test_from_pretrained_uses_the_checkpoint_loader(monkeypatch):
    calls = []
    fake = types.ModuleType("selm.weights.resolve")
    fake.load_pretrained = lambda path, map_location="cpu": (
        calls.append((path, map_location)) or FakeSelM()
    )
    monkeypatch.setitem(sys.modules, "selm.weights.resolve", fake)
    predictor = Predictor.from_pretrained("ckpt/dir", device="cpu")
    assert calls == [("ckpt/dir", "cpu")] and isinstance(predictor.model, FakeSelM)
    assert not predictor.model.training


def test_real_selm_tiny_and_the_cli_on_its_checkpoint(silent_video, tmp_path):
    from selm.build import build_selm
    from selm.weights.checkpoint import save_pretrained

    model = build_selm("selm_tiny", input_size=64)
    pred = Predictor(model).predict(silent_video, audio="noise")  # 3 s: one padded window
    assert pred.probs.shape == (3, 1, 64, 64)  # the model's output grid
    assert np.isfinite(pred.probs).all() and (pred.probs >= 0).all() and (pred.probs <= 1).all()
    assert [h.shape for h in pred.hit_maps] == [(3, 2, s, s) for s in (4, 8, 16)]
    assert len(pred.bcsm) == 4 and pred.bcsm[0]["norm_before"].shape == (3, 16, 16)
    assert pred.dam_maps[0].shape == (3, 16, 16)
    # the same weights through save_pretrained -> the CLI's from_pretrained give the same areas
    checkpoint = save_pretrained(model, tmp_path / "ckpt")
    summary = tmp_path / "s.json"
    args = [str(silent_video), "--checkpoint", str(checkpoint), "--noise", "--threshold", "0.5"]
    assert predict_cli.main(args + ["--out", str(tmp_path / "o.mp4"), "--json", str(summary)]) == 0
    areas = [s["area"] for s in json.loads(summary.read_text())["seconds"]]
    np.testing.assert_allclose(areas, pred.masks(0.5).mean((1, 2)), atol=1e-6)


@pytest.fixture
def fake_checkpoint(monkeypatch):
    monkeypatch.setattr(
        Predictor,
        "from_pretrained",
        classmethod(lambda cls, path, device="cpu": cls(FakeSelM(), device=device)),
    )


def test_cli_writes_video_masks_and_summary(video, tmp_path, fake_checkpoint, capsys):
    out, summary, masks = tmp_path / "o" / "out.mp4", tmp_path / "s.json", tmp_path / "m"
    code = predict_cli.main(
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
    predict_cli.main(
        [str(video), "--checkpoint", "c", "--out", str(out), "--json", str(summary), "--mute"]
    )
    assert all(s["area"] == 0 for s in json.loads(summary.read_text())["seconds"])


def test_cli_audio_file_named_mute(video, tmp_path, fake_checkpoint, monkeypatch):
    """--audio mute is the file `mute` (a beep in second 0 only), not silence."""
    monkeypatch.chdir(tmp_path)
    t = np.arange(14400) / 16000
    write_wav(tmp_path / "mute", 0.3 * np.sin(2 * np.pi * 500 * t), 16000)
    summary = tmp_path / "s.json"
    args = [str(video), "--checkpoint", "c", "--out", "o.mp4", "--json", str(summary)]
    assert predict_cli.main(args + ["--audio", "mute"]) == 0
    seconds = json.loads(summary.read_text())["seconds"]
    area = expected_mask().mean()
    assert seconds[0]["area"] == pytest.approx(area, abs=0.02)
    assert [s["area"] for s in seconds[1:]] == [0] * (SECONDS - 1)
    assert predict_cli.main(args + ["--mute"]) == 0
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
        predict_cli.main(args + ["--checkpoint", "c", "--out", str(tmp_path / "o.mp4")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o.mp4").exists()


def test_cli_bad_checkpoint_exits_2(video, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict_cli.main(
            [
                str(video),
                "--checkpoint",
                str(tmp_path / "nothing_here"),
                "--out",
                str(tmp_path / "o.mp4"),
            ]
        )
    assert exit_info.value.code == 2 and "--checkpoint" in capsys.readouterr().err


def test_one_pass_overlay_matches_a_redraw_and_keeps_bounded_state(video, tmp_path):
    """predict(..., overlay=) draws in the pass what write_overlay_video draws again later."""
    from selm.render.paint import write_overlay_video

    seen = []
    predictor = Predictor(FakeSelM())
    pred = predictor.predict(
        video, overlay=tmp_path / "a.mp4", progress=lambda f, m: seen.append((f, m))
    )
    assert pred.overlay == tmp_path / "a.mp4" and pred.overlay_threshold == 0.5
    assert [m.split(":")[0] for _, m in seen] == ["decode", "model", "render", "encode"] * 2
    assert all(b > a for (a, _), (b, _) in zip(seen, seen[1:])) and seen[-1][0] == 1.0
    assert set(pred.timings) == {"decode", "log-mel", "model", "render", "encode"}
    write_overlay_video(pred, tmp_path / "b.mp4")
    decoded = []
    for name in ("a.mp4", "b.mp4"):
        with av.open(str(tmp_path / name)) as container:
            frames = [(f.time, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
        decoded.append(frames)
    assert len(decoded[0]) == len(decoded[1]) == SECONDS * FPS
    for (ta, a), (tb, b) in zip(*decoded):
        assert ta == pytest.approx(tb, abs=1e-6)
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2  # same frames, same encoder


def test_an_in_memory_clip_renders_its_own_frames(tmp_path):
    from selm.media.video import Clip
    from selm.render.paint import write_overlay_video

    frames = np.zeros((3, H, W, 3), np.uint8)
    frames[:, RECT[0], RECT[1]] = 255
    clip = Clip(
        frames=frames,
        times=frame_times(3),
        waveform=np.full(3 * 16000, 0.1, np.float32),
        duration=3.0,
        fps=1.0,
        width=W,
        height=H,
        source="in memory",
    )
    pred = Predictor(FakeSelM()).predict(clip)
    assert pred.in_memory
    out = write_overlay_video(pred, tmp_path / "clip.mp4")
    with av.open(str(out)) as container:
        images = [(f.time, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    assert [t for t, _ in images] == [0.0, 1.0, 2.0]
    for _, image in images:  # the bright object is drawn red
        centre = image[16, 28].astype(int)
        assert centre[0] - centre[1] > 60


def test_frames_kept_as_thumbnails_leave_masks_and_overlay_at_the_decoded_size(video, tmp_path):
    import cv2

    full = Predictor(FakeSelM()).predict(video)
    small = Predictor(FakeSelM()).predict(video, overlay=tmp_path / "o.mp4", frames_max_side=16)
    assert small.frames.shape == (SECONDS, 12, 16, 3)  # 64 x 48 -> longer side 16
    expected = [cv2.resize(f, (16, 12), interpolation=cv2.INTER_AREA) for f in full.frames]
    np.testing.assert_array_equal(small.frames, np.stack(expected))
    assert small.size == full.size == (W, H) and small.frame_size == (W, H)
    np.testing.assert_array_equal(small.probs, full.probs)  # the model saw the same frames
    np.testing.assert_array_equal(small.masks(), full.masks())
    assert small.masks().shape == (SECONDS, H, W)
    with av.open(str(tmp_path / "o.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (W, H)
    same = Predictor(FakeSelM()).predict(video, frames_max_side=64)  # no larger than asked
    assert same.frame_size is None and same.frames.shape == full.frames.shape


@pytest.mark.parametrize("with_overlay", [False, True])
def test_the_file_pass_gives_freed_memory_back_after_every_window(
    video, tmp_path, monkeypatch, with_overlay
):
    import selm.inference.predictor as predictor_module

    trims = []
    monkeypatch.setattr(predictor_module, "release_freed_memory", lambda: trims.append(1))
    overlay = tmp_path / "o.mp4" if with_overlay else None
    pred = Predictor(FakeSelM()).predict(video, overlay=overlay)
    windows = -(-SECONDS // FakeSelM().config.num_frames)
    assert len(pred.times) == SECONDS and len(trims) == windows == 2


@pytest.mark.parametrize("num_classes", [1, 3])
def test_one_mask_and_masks_one_by_one_are_the_masks(video, monkeypatch, num_classes):
    import selm.inference.prediction

    monkeypatch.setattr(selm.inference.prediction, "MASK_CHUNK", 3)  # 7 s: chunks of 3, 3 and 1
    pred = Predictor(FakeSelM(num_classes=num_classes)).predict(video)
    for size in (None, (20, 10)):
        masks = pred.masks(0.5, size)
        one_by_one = list(pred.iter_masks(0.5, size))
        assert len(one_by_one) == SECONDS and masks.shape[0] == SECONDS
        for index, mask in enumerate(one_by_one):
            assert mask.dtype == masks.dtype
            np.testing.assert_array_equal(mask, masks[index])
            np.testing.assert_array_equal(pred.mask(index, 0.5, size), masks[index])
