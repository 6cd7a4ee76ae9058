"""app.actions: runs, the illusion probe and comparisons on a fake and a real SelM; the inputs
refused with a message; which checkpoints a visitor may load."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from demo_runs import LIMITS, iou, run

from app import actions, views
from app.actions import AudioRequest
from app.validation import DemoError, Limits
from selm.inference.predictor import Predictor
from selm.render.maps import map_scales


def test_run_segments_what_sounds(fake_predictor, media_dir, kit):
    pred = run(fake_predictor, media_dir / "tone.mp4")
    assert pred.frames.shape == (3, kit.height, kit.width, 3)
    np.testing.assert_allclose(pred.times, [0.875, 1.875, 2.875])
    assert pred.audio_label == "original"
    for threshold in (0.5, 0.95):  # the grey box (p ~ 0.85) is in at 0.5, out at 0.95
        masks = pred.masks(threshold)
        assert all(iou(m, kit.reference_masks(threshold)) > 0.9 for m in masks)


@pytest.mark.parametrize("kind, sounds", [("mute", False), ("noise", True)])
def test_run_with_muted_or_noise_audio(fake_predictor, media_dir, kind, sounds):
    pred = run(fake_predictor, media_dir / "tone.mp4", AudioRequest(kind))
    assert pred.audio_label == kind
    assert pred.masks(0.5).any() == sounds
    if kind == "mute":
        assert not pred.waveform.any()


def test_run_with_uploaded_audio_and_example_audio(fake_predictor, media_dir, tmp_path):
    tone = np.sin(2 * np.pi * 300 * np.arange(16000 * 3) / 16000).astype(np.float32) * 0.2
    soundfile.write(tmp_path / "voice.wav", tone, 16000)
    pred = run(
        fake_predictor,
        media_dir / "silent.mp4",
        AudioRequest("upload", upload=str(tmp_path / "voice.wav")),
    )
    assert pred.audio_label == "voice.wav"
    np.testing.assert_allclose(pred.waveform, tone, atol=1e-4)  # the file, as heard
    assert pred.masks(0.5).all(axis=(1, 2)).sum() == 0 and pred.masks(0.5).any()
    pred = run(
        fake_predictor,
        media_dir / "silent.mp4",
        AudioRequest("example", example=str(media_dir / "tone.mp4")),
    )
    assert pred.audio_label == "tone.mp4" and pred.masks(0.5).any()
    # a silent clip with its own (silent) audio: nothing sounds
    assert not run(fake_predictor, media_dir / "silent.mp4").masks(0.5).any()


def test_an_uploaded_file_named_mute_is_heard(fake_predictor, media_dir, tmp_path):
    """The upload is a file whatever its name: `mute` (no extension) is its sound, not silence."""
    tone = np.sin(2 * np.pi * 300 * np.arange(16000 * 3) / 16000).astype(np.float32) * 0.2
    soundfile.write(tmp_path / "mute", tone, 16000, format="WAV")
    info = actions.probe_video(media_dir / "silent.mp4", LIMITS)
    request = AudioRequest("upload", upload=str(tmp_path / "mute"))
    source = actions.audio_for_model(request, info)
    assert source.kind == "file" and source.path == tmp_path / "mute"
    pred = run(fake_predictor, media_dir / "silent.mp4", request)
    np.testing.assert_allclose(pred.waveform, tone, atol=1e-4)  # the file, as heard
    assert pred.masks(0.5).any()
    assert not run(fake_predictor, media_dir / "silent.mp4", AudioRequest("mute")).masks(0.5).any()


def test_long_video_runs_in_windows_with_progress(fake_predictor, media_dir, kit, tmp_path):
    seen = []
    pred = run(
        fake_predictor,
        media_dir / "seven_seconds.mp4",
        progress=lambda f, m: seen.append((f, m)),
        overlay=tmp_path / "overlay.mp4",  # drawn and encoded in the same pass
    )
    assert len(pred.frames) == 7 and fake_predictor.model.calls == 2  # windows of 5 seconds
    assert [f for f, _ in seen] == [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0]
    assert [m.split(":")[0] for _, m in seen] == ["decode", "model", "render", "encode"] * 2
    assert all(iou(m, kit.reference_masks(0.5)) > 0.9 for m in pred.masks(0.5))


def test_display_copy_shrinks_frames_and_probs(fake_predictor, media_dir, kit):
    pred = run(fake_predictor, media_dir / "tone.mp4", max_side=48)
    assert pred.frames.shape == (3, 32, 48, 3) and pred.masks(0.5).shape == (3, 32, 48)
    small_ref = kit.reference_masks(0.5)[::2, ::2]
    assert all(iou(m, small_ref) > 0.85 for m in pred.masks(0.5))


NEGATIVES = [
    ("silent", AudioRequest("mute")),
    ("white noise", AudioRequest("noise")),
]


@pytest.mark.parametrize("listens", [True, False])
def test_illusion_probe_every_negative(media_dir, tmp_path, listens, kit):
    """Silent, noise, another clip's audio and an uploaded sound, next to the original. The
    fake model segments the bright boxes whenever something sounds: noise and a sounding
    clip's audio make it segment (the illusion silence alone hides), a silent one does not."""
    voice = tmp_path / "voice.wav"
    tone = np.sin(2 * np.pi * 300 * np.arange(16000 * 3) / 16000).astype(np.float32) * 0.2
    soundfile.write(voice, tone, 16000)
    negatives = [
        *NEGATIVES,
        ("another clip's audio", AudioRequest("example", example=str(media_dir / "silent.mp4"))),
        ("an uploaded sound", AudioRequest("upload", upload=str(voice))),
    ]
    predictor = Predictor(kit.FakeSelM(listens=listens))
    preds = actions.probe_illusion(
        predictor, media_dir / "tone.mp4", negatives, limits=LIMITS, max_side=480
    )
    assert list(preds) == [
        "original",
        "silent",
        "white noise",
        "another clip's audio",
        "an uploaded sound",
    ]
    assert [p.audio_label for p in preds.values()] == [
        "original",
        "mute",
        "noise",
        "silent.mp4",
        "voice.wav",
    ]
    seen = []
    view = views.show_illusion(
        preds,
        threshold=0.5,
        workdir=tmp_path,
        second=1,
        level=2,
        progress=lambda f, m: seen.append((f, m)),
    )
    box = kit.reference_masks(0.5).mean()
    expected = {
        "silent": 0.0 if listens else box,
        "white noise": box,  # noise sounds: the illusion the silent probe cannot show
        "another clip's audio": 0.0 if listens else box,  # that clip's track is silent
        "an uploaded sound": box,
    }
    for label, score in view.scores.items():
        np.testing.assert_allclose(score, expected[label], atol=0.02, err_msg=label)
        assert f"**{label}**" in view.summary and f"**{score.mean():.3f}**" in view.summary
    headers, rows = view.table
    assert headers[0] == "second" and len(headers) == 6 and len(rows) == 3
    assert [r[0] for r in rows] == [0, 1, 2]
    for row in rows:  # % of the frame per condition, as the plot shows it
        np.testing.assert_allclose(row[1], 100 * box, atol=2)
        np.testing.assert_allclose(row[2:], [100 * v for v in expected.values()], atol=2)
    assert [t.name for t in view.plot.data] == list(preds)
    assert view.columns == 7 and len(view.maps) == 5 * 7  # one row of maps per condition
    assert [c.split(":")[0] for _, c in view.maps[::7]] == list(preds)
    assert view.maps[7][1] == "silent: mask (p > 0.50)" and "BCSM after" in view.maps[13][1]
    assert all(image.shape == (kit.height, kit.width, 3) for image, _ in view.maps)
    assert len(view.videos) == 5 and all(p.is_file() for p in view.videos.values())
    assert len({p.name for p in view.videos.values()}) == 5
    assert view.legend.ndim == 3 and view.num_frames == 3
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert sum(m.startswith("writing the overlay video") for _, m in seen) == 5


def test_illusion_probe_needs_an_audio_track_and_a_negative(fake_predictor, media_dir):
    with pytest.raises(DemoError, match="no audio track"):
        actions.probe_illusion(
            fake_predictor, media_dir / "no_audio.mp4", NEGATIVES, limits=LIMITS, max_side=480
        )
    with pytest.raises(DemoError, match="at least one negative"):
        actions.probe_illusion(
            fake_predictor, media_dir / "tone.mp4", [], limits=LIMITS, max_side=480
        )


def test_compare_two_checkpoints(media_dir, tmp_path, kit):
    listening, deaf = Predictor(kit.FakeSelM()), Predictor(kit.FakeSelM(listens=False))
    a, b = actions.compare_checkpoints(
        [("listens", listening), ("deaf", deaf)],
        media_dir / "tone.mp4",
        AudioRequest("mute"),
        limits=LIMITS,
        max_side=480,
    )
    view = views.show_compare(a, b, ("listens", "deaf"), threshold=0.5, workdir=tmp_path)
    area_a, area_b, agreement = (np.asarray(trace.y) for trace in view.plot.data)
    np.testing.assert_allclose(area_a, 0.0)
    np.testing.assert_allclose(area_b, kit.reference_masks(0.5).mean(), atol=0.02)
    np.testing.assert_allclose(agreement, 0.0)  # one mask empty, the other not: IoU 0
    assert view.plot.data[2].yaxis == "y2"  # IoU on its own axis
    assert view.video_a.is_file() and view.video_b.is_file() and view.video_a != view.video_b
    assert "silence (muted)" in view.summary and view.names == ("listens", "deaf")
    assert [c.split(":")[0] for _, c in view.maps[:: view.columns]] == ["listens", "deaf"]
    # one scale for both: the BCSM bar spans both checkpoints' norms
    scales = map_scales([a, b])
    both = np.concatenate(
        [p.bcsm[0][k].ravel() for p in (a, b) for k in ("norm_before", "norm_after")]
    )
    assert scales[("bcsm", 0)] == pytest.approx((both.min(), both.max()))


def test_real_tiny_model_runs_through_the_actions(tiny_checkpoints, media_dir, tmp_path, kit):
    predictor = Predictor.from_pretrained(tiny_checkpoints[0])
    pred = run(predictor, media_dir / "tone.mp4")
    assert pred.masks(0.5).shape == (3, kit.height, kit.width)
    assert np.isfinite(pred.probs).all() and (pred.probs >= 0).all() and (pred.probs <= 1).all()
    assert len(pred.hit_maps) == 3 and len(pred.dam_maps) == 4 and len(pred.bcsm) == 4
    view = views.show_run(pred, threshold=0.5, frame=2, level=3, workdir=tmp_path)
    assert len(view.maps) == 8
    assert all(image.shape == (kit.height, kit.width, 3) for image, _ in view.maps)


# ---- bad input: every case gets a DemoError whose message says what to do ----


def test_no_video(fake_predictor):
    with pytest.raises(DemoError, match="upload a video or pick one of the examples"):
        run(fake_predictor, None)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "empty"),
        (b"this is a text file, not a video\n" * 20, "not a video the demo can read"),
    ],
)
def test_non_media_upload(fake_predictor, tmp_path, content, match):
    path = tmp_path / "notes.mp4"
    path.write_bytes(content)
    with pytest.raises(DemoError, match=match):
        run(fake_predictor, path)


def test_audio_file_given_as_video(fake_predictor, tmp_path):
    soundfile.write(tmp_path / "sound.wav", np.zeros(16000, np.float32), 16000)
    with pytest.raises(DemoError, match="has no video stream"):
        run(fake_predictor, tmp_path / "sound.wav")


def test_video_without_audio_track(fake_predictor, media_dir):
    with pytest.raises(DemoError, match="no audio track.*'muted', 'white noise'"):
        run(fake_predictor, media_dir / "no_audio.mp4")
    assert not run(fake_predictor, media_dir / "no_audio.mp4", AudioRequest("mute")).masks().any()
    assert run(fake_predictor, media_dir / "no_audio.mp4", AudioRequest("noise")).masks().any()


def test_short_clips_run_as_the_cli_runs_them(fake_predictor, tmp_path, kit):
    """A 0.5-s clip and a one-frame clip: selm.media.video reads them (one second, its last frame),
    so the demo runs them too."""
    from selm.media.video import read_video

    for seconds in (0.5, 1 / 8):
        path = kit.write_clip(tmp_path / f"short_{seconds}.mp4", seconds=seconds)
        pred = run(fake_predictor, path)
        assert len(pred.frames) == len(read_video(path).frames) == 1
        assert pred.masks(0.5).any()


def test_huge_resolution(fake_predictor, tmp_path, kit):
    path = kit.write_clip(tmp_path / "huge.mp4", seconds=0.5, fps=2, size=(3840, 2160), grey=False)
    with pytest.raises(DemoError, match="3840x2160.*Downscale"):
        run(fake_predictor, path)


def test_clip_longer_than_the_limit(fake_predictor, media_dir):
    with pytest.raises(DemoError, match=r"lasts 7\.0 s.*this demo runs clips up to 5 s") as err:
        run(fake_predictor, media_dir / "seven_seconds.mp4", limits=Limits(max_seconds=5))
    assert "--max-seconds" not in str(err.value)  # a Space visitor cannot restart the app
    assert "selm.predict" in str(err.value)
    assert fake_predictor.model.calls == 0


def test_a_damaged_mp4_says_so_without_errno_or_server_path(fake_predictor, media_dir, tmp_path):
    broken = tmp_path / "holiday.mp4"
    broken.write_bytes((media_dir / "tone.mp4").read_bytes()[:600])  # header cut off
    with pytest.raises(DemoError) as err:
        run(fake_predictor, broken)
    message = str(err.value)
    assert "holiday.mp4" in message and "damaged or truncated" in message
    assert "Errno" not in message and str(tmp_path) not in message
    assert "upload a common format" not in message  # it is one
    odd = tmp_path / "holiday.xyz"
    odd.write_bytes(b"nothing media-like\n" * 50)
    with pytest.raises(DemoError, match="upload a common format: mp4"):
        run(fake_predictor, odd)


@pytest.mark.parametrize("content", [b"RIFF\x00\x00garbage" * 10, b""])
def test_unreadable_audio_file(fake_predictor, media_dir, tmp_path, content):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(content)
    with pytest.raises(DemoError, match="broken.wav"):
        run(fake_predictor, media_dir / "tone.mp4", AudioRequest("upload", upload=str(bad)))


def test_missing_audio_choices(fake_predictor, media_dir):
    with pytest.raises(DemoError, match="no audio file is uploaded"):
        run(fake_predictor, media_dir / "tone.mp4", AudioRequest("upload"))
    with pytest.raises(DemoError, match="Pick the example"):
        run(fake_predictor, media_dir / "tone.mp4", AudioRequest("example"))


def test_choose_checkpoint():
    assert actions.choose_checkpoint("assets/a", "  ") == "assets/a"
    assert actions.choose_checkpoint("assets/a", " user/repo ") == "user/repo"
    with pytest.raises(DemoError, match="Pick a checkpoint"):
        actions.choose_checkpoint(None, "")


def test_public_mode_loads_only_listed_and_official_checkpoints():
    listed = {"selm-synth": "/srv/app/assets/checkpoints/selm-synth"}
    choose = actions.choose_checkpoint
    assert choose("selm-synth", "", listed, allow_any=False) == listed["selm-synth"]
    assert choose(None, "selm-synth", listed, allow_any=False) == listed["selm-synth"]
    assert choose(None, "official:s4_r50", listed, allow_any=False) == "official:s4_r50"
    for typed in ("../../etc", "/srv/app/assets", "someone/any-repo", "assets/checkpoints"):
        with pytest.raises(DemoError, match="only its listed checkpoints") as err:
            choose("selm-synth", typed, listed, allow_any=False)
        assert "--allow-any-checkpoint" in str(err.value) and "/srv" not in str(err.value)
    assert choose(None, "../mine", listed, allow_any=True) == "../mine"  # a local researcher


def test_an_uploaded_7_1_sound_is_heard_as_its_channel_mean(fake_predictor, media_dir, tmp_path):
    """An 8-channel upload crashed the whole server (exit 139) for every visitor."""
    import av

    t = np.arange(3 * 16000) / 16000
    channels = np.stack([0.04 * (k + 1) * np.sin(2 * np.pi * 300 * t) for k in range(8)], 1)
    path = tmp_path / "surround.m4a"  # AAC: decoded to planar 8-channel frames
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000, layout="7.1")
        for i in range(0, len(t), 1024):
            chunk = np.ascontiguousarray(channels[i : i + 1024], np.float32).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="7.1")
            frame.sample_rate, frame.pts = 16000, i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    pred = run(fake_predictor, media_dir / "silent.mp4", AudioRequest("upload", upload=str(path)))
    assert pred.audio_label == "surround.m4a" and pred.masks(0.5).any()
    # the mean of the channels, 0.04 (1 + ... + 8) / 8 = 0.18, except the LFE (low-passed)
    assert 0.12 < np.abs(pred.waveform[8000:40000]).max() < 0.2
