"""AVS-Synth: determinism, exact ground truth (checked against renders with an object removed),
counterfactual GT, distinct sounds, layouts, mp4 and the CLI."""

import dataclasses
import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from selm.media.video import frame_times
from selm.transforms.log_mel import log_mel_examples
from train.data.files import avss_palette, read_binary_mask, read_label_png, read_wav
from train.synth import (
    CATEGORIES,
    ClipTask,
    Renderer,
    build_clip,
    generate,
    sample_clip,
    split_sizes,
)
from train.synth.__main__ import main as synth_main
from train.synth.scenes import Clip, OffscreenSound, SceneObject, binary_gt, semantic_gt
from train.synth.sounds import RECIPES, SR, mix, sample_sound_params, synthesize
from train.synth.writer import counterfactual_audio, swapped_heard


def _visible(clip: Clip, k: int, t: float, size: int) -> np.ndarray:
    """Pixels that change when object k is taken out of the scene: what of it is seen."""
    full, _ = Renderer(clip, size)(t)
    rest = dataclasses.replace(clip, objects=[o for j, o in enumerate(clip.objects) if j != k])
    without, _ = Renderer(rest, size)(t)
    return np.any(full != without, axis=-1)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _meta(root: Path) -> dict:
    return json.loads((root / "metadata.json").read_text())


# --- scenes ---
def test_object_id_map_is_exactly_the_pixels_each_object_paints():
    for seed in range(6):
        clip = sample_clip(np.random.default_rng(seed), seconds=5, single_source=False)
        renderer = Renderer(clip, 48)
        for t in frame_times(5)[::2]:
            _, ids = renderer(t)
            for k in range(len(clip.objects)):
                np.testing.assert_array_equal(_visible(clip, k, t, 48), ids == k)


def test_sampling_has_silent_visible_objects_offscreen_sounds_and_one_s4_source():
    multi = [
        sample_clip(np.random.default_rng(s), seconds=5, single_source=False) for s in range(300)
    ]
    counts = [len(c.objects) for c in multi]
    assert set(counts) == {1, 2, 3}
    for c in multi:
        assert len({o.category for o in c.objects}) == len(c.objects)  # distinct categories
        assert not {s.category for s in c.offscreen} & {o.category for o in c.objects}
    silent_somewhere = np.mean([any(not all(o.sounding) for o in c.objects) for c in multi])
    never = np.mean([any(not any(o.sounding) for o in c.objects) for c in multi])
    assert silent_somewhere > 0.8 and 0.15 < never < 0.5
    assert 0.15 < np.mean([bool(c.offscreen) for c in multi]) < 0.35
    for s in range(100):
        c = sample_clip(np.random.default_rng(s), seconds=5, single_source=True)
        assert sum(any(o.sounding) for o in c.objects) == 1 and not c.offscreen


# --- sounds ---
def test_gated_sources_are_silent_outside_their_seconds():
    params = sample_sound_params("harmonic", np.random.default_rng(0))
    wave = mix([("harmonic", params, (True, False, True, False, False))], 5, 0, None)
    seconds = wave.reshape(5, SR)
    assert (seconds[[1, 3, 4]] == 0).all()
    assert (np.abs(seconds[[0, 2], 160 : int(0.96 * SR)]) > 0).mean() > 0.9  # after the fade-in


def test_categories_sound_distinct_in_log_mel_bands():
    """Nearest-centroid on the mean log-mel spectrum of 1 s examples, fresh instances."""

    def profiles(recipe, seeds):
        out = []
        for s in seeds:
            x = 0.1 * synthesize(recipe, sample_sound_params(recipe, np.random.default_rng(s)), 3)
            x = x + 0.003 * np.random.default_rng(s + 99).standard_normal(x.size)
            out.append(log_mel_examples(torch.from_numpy(x).float(), SR, 3)[:, 0].mean(1))
        return torch.cat(out)  # (3 * len(seeds), 64)

    centroids = torch.stack([profiles(r, range(4)).mean(0) for r in RECIPES])
    for i, recipe in enumerate(RECIPES):
        test = profiles(recipe, range(100, 103))
        assert (torch.cdist(test, centroids).argmin(1) == i).all(), recipe


# --- hand-checked ground truth ---
def _obj(cat, centre, sounding):
    params = sample_sound_params(CATEGORIES[cat].sound, np.random.default_rng(cat))
    return SceneObject(
        category=cat,
        radius=0.15,
        centre=centre,
        amplitude=(0.0, 0.0),
        omega=(0.0, 0.0),
        phase=(0.0, 0.0),
        angle=0.0,
        spin=0.0,
        colour=CATEGORIES[cat].colour,
        sounding=sounding,
        sound=params,
    )


def _hand_clips():
    bg = sample_clip(np.random.default_rng(0), seconds=5, single_source=False).background
    horn, bird, guitar = 0, 3, 1
    a = Clip(
        seconds=5,
        objects=[
            _obj(horn, (0.3, 0.3), (True, False, False, False, False)),
            _obj(bird, (0.7, 0.7), (False,) * 5),
        ],
        offscreen=[],
        background=bg,
        snr_db=20.0,
        noise_seed=1,
    )
    off = OffscreenSound(
        category=horn,
        sounding=(False, False, False, False, True),
        sound=sample_sound_params("harmonic", np.random.default_rng(5)),
    )
    b = Clip(
        seconds=5,
        objects=[
            _obj(bird, (0.5, 0.5), (False, True, False, True, False)),
            _obj(guitar, (0.2, 0.7), (True, False, False, False, False)),
        ],
        offscreen=[off],
        background=bg,
        snr_db=20.0,
        noise_seed=2,
    )
    return a, b


def test_swapped_gt_is_the_visible_objects_whose_category_the_new_audio_sounds():
    a, b = _hand_clips()
    heard = swapped_heard(b, 5)
    assert heard == [{1}, {3}, set(), {3}, {0}]  # guitar, bird, -, bird, off-screen horn
    expected_objects = [[], [1], [], [1], [0]]  # indices into a.objects (horn 0, bird 1)
    for i, t in enumerate(frame_times(5)):
        _, ids = Renderer(a, 40)(t)
        want = np.isin(ids, expected_objects[i])
        np.testing.assert_array_equal(binary_gt(ids, a, heard[i]), want)
        label_of_object = np.array([0 + 1, 3 + 1, 0])  # horn, bird, background (id -1)
        np.testing.assert_array_equal(
            semantic_gt(ids, a, heard[i]), np.where(want, label_of_object[ids], 0)
        )
    np.testing.assert_array_equal(  # the clip's own audio: horn in second 0 only
        [
            bool(binary_gt(Renderer(a, 40)(t)[1], a, a.sounding_categories(i)).any())
            for i, t in enumerate(frame_times(5))
        ],
        [True, False, False, False, False],
    )


def test_silent_noise_offscreen_counterfactuals_make_the_gt_empty():
    a, _ = _hand_clips()
    task = ClipTask(layout="ms3", split="test", index=0, seconds=5)
    silent, heard, _ = counterfactual_audio("silent", 0, task, a)
    assert (silent == 0).all() and heard == [set()] * 5
    noise, heard, _ = counterfactual_audio("noise", 0, task, a)
    assert heard == [set()] * 5 and 0.08 < noise.std() < 0.12
    wave, heard, extra = counterfactual_audio("offscreen", 0, task, a)
    assert heard == [set()] * 5 and wave.std() > 0.01
    heard_names = {s["category"] for s in extra["offscreen_audio"]}
    assert heard_names and not heard_names & {"horn", "bird"}


# --- written files ---
def test_generation_is_byte_identical_per_seed_and_worker_count(tmp_path):
    kw = dict(
        size=32, sizes={"train": 2, "val": 1, "test": 2}, counterfactuals=True, progress=False
    )
    first = _files(generate(tmp_path / "a", seed=3, workers=1, **kw))
    assert first == _files(generate(tmp_path / "b", seed=3, workers=2, **kw))
    other = _files(generate(tmp_path / "c", seed=4, workers=1, **kw))
    assert len(first) == len(other)  # same layout; S4 folders are named by category
    common = first.keys() & other.keys()
    frames_and_audio = [k for k in common if "frames" in k or (".wav" in k and "silent" not in k)]
    assert len(frames_and_audio) > 100
    assert all(first[k] != other[k] for k in frames_and_audio)


def test_masks_and_frames_match_an_independent_rerender(synth_root):
    seed, size = _meta(synth_root)["seed"], _meta(synth_root)["size"]
    meta = _meta(synth_root)["clips"]["ms3"]
    data = synth_root / "Multi-sources" / "ms3_data"
    for entry in [m for m in meta if m["split"] == "test"]:
        task = ClipTask(layout="ms3", split="test", index=int(entry["name"][-5:]), seconds=5)
        clip = build_clip(seed, task)
        assert [o["category_id"] for o in entry["objects"]] == [o.category for o in clip.objects]
        for i, t in enumerate(frame_times(5)):
            sounding = [k for k, o in enumerate(entry["objects"]) if i in o["sounding_seconds"]]
            want = np.zeros((size, size), dtype=bool)
            for k in sounding:
                want |= _visible(clip, k, t, size)
            name = entry["name"]
            got = read_binary_mask(data / "gt_masks" / "test" / name / f"{name}_{i + 1}.png")
            np.testing.assert_array_equal(got, want)
            frame_path = data / "visual_frames" / name / f"{name}.mp4_{i + 1}.png"
            rgb, _ = Renderer(clip, size)(t)
            frame = np.asarray(Image.open(frame_path))
            np.testing.assert_array_equal(frame, np.round(rgb * 255).astype(np.uint8))


def _heard(entry: dict, i: int) -> set[str]:
    sources = entry["objects"] + entry["offscreen"]
    return {s["category"] for s in sources if i in s["sounding_seconds"]}


def test_counterfactual_sets_recompute_the_gt(synth_root):
    seed, size = _meta(synth_root)["seed"], _meta(synth_root)["size"]
    main = {m["name"]: m for layout in _meta(synth_root)["clips"].values() for m in layout}
    n_test = sum(m["split"] == "test" for m in _meta(synth_root)["clips"]["ms3"])
    for kind in ("silent", "noise", "offscreen"):
        root = synth_root / "counterfactual" / kind
        for layout in ("s4", "ms3"):
            for entry in _meta(root)["clips"][layout]:
                assert entry["gt_categories"] == [[]] * entry["seconds"]
        masks = list((root / "Multi-sources").rglob("gt_masks/**/*.png"))
        assert len(masks) == n_test * 5
        assert not any(read_binary_mask(m).any() for m in masks)
    labels = list((synth_root / "counterfactual" / "silent" / "AVSS").rglob("labels_rgb/*.png"))
    assert labels and not any(read_label_png(p).any() for p in labels)

    swapped = synth_root / "counterfactual" / "swapped"
    for entries in _meta(swapped)["clips"].values():
        assert len(entries) == n_test
        for entry in entries:
            partner = main[entry["audio_from"]]
            assert partner["name"] != entry["name"]
            visible = {o["category"] for o in entry["objects"]}
            want = [sorted(_heard(partner, i) & visible) for i in range(entry["seconds"])]
            assert entry["gt_categories"] == want
    # the swapped MS3 masks, re-rendered: visible objects whose category the partner sounds
    data = swapped / "Multi-sources" / "ms3_data"
    for entry in _meta(swapped)["clips"]["ms3"]:
        task = ClipTask(layout="ms3", split="test", index=int(entry["name"][-5:]), seconds=5)
        clip = build_clip(seed, task)
        partner_wav = read_wav(
            synth_root
            / "Multi-sources"
            / "ms3_data"
            / "audio_wav"
            / "test"
            / f"{entry['audio_from']}.wav"
        )
        torch.testing.assert_close(
            read_wav(data / "audio_wav" / "test" / f"{entry['name']}.wav"),
            partner_wav,
            rtol=0,
            atol=0,
        )
        for i, t in enumerate(frame_times(5)):
            want = np.zeros((size, size), dtype=bool)
            for k, o in enumerate(entry["objects"]):
                if o["category"] in entry["gt_categories"][i]:
                    want |= _visible(clip, k, t, size)
            name = entry["name"]
            got = read_binary_mask(data / "gt_masks" / "test" / name / f"{name}_{i + 1}.png")
            np.testing.assert_array_equal(got, want)


def test_layouts_follow_avsbench(synth_root):
    meta = _meta(synth_root)
    assert meta["version"] and meta["generator"] == "AVS-Synth" and len(meta["categories"]) == 8
    s4 = synth_root / "Single-source"
    assert (s4 / "s4_meta_data.csv").read_text().splitlines()[0] == "name,start_time,category,split"
    for entry in meta["clips"]["s4"]:
        assert sum(bool(o["sounding_seconds"]) for o in entry["objects"]) == 1
        source = next(o["category"] for o in entry["objects"] if o["sounding_seconds"])
        d = s4 / "s4_data" / "gt_masks" / entry["split"] / source / entry["name"]
        masks = sorted(p.name for p in d.iterdir())
        n = 1 if entry["split"] == "train" else 5
        assert masks == [f"{entry['name']}_{i}.png" for i in range(1, n + 1)]
        assert Image.open(d / masks[0]).mode == "1"
        pkl = s4 / "s4_data" / "audio_log_mel" / entry["split"] / source / f"{entry['name']}.pkl"
        assert torch.load(pkl, weights_only=True).shape == (5, 1, 96, 64)
    ms3_mask = next((synth_root / "Multi-sources").rglob("gt_masks/*/*/*.png"))
    assert Image.open(ms3_mask).mode == "P"
    avss = synth_root / "AVSS"
    header = (avss / "metadata.csv").read_text().splitlines()[0]
    assert header == "vid,uid,s_min,s_sec,a_obj,split,label"
    subsets = {e["subset"] for e in meta["clips"]["avss"]}
    assert subsets == {"v1s", "v1m", "v2"}
    for entry in meta["clips"]["avss"]:
        d = avss / entry["subset"] / entry["name"]
        frames = sorted(p.name for p in (d / "frames").iterdir())
        assert len(frames) == (10 if entry["subset"] == "v2" else 5) == entry["seconds"]
        labels = sorted((d / "labels_rgb").iterdir())
        assert len(labels) == (
            1 if entry["subset"] == "v1s" and entry["split"] == "train" else entry["seconds"]
        )
        img = Image.open(labels[0])
        assert img.mode == "P" and img.size == (meta["size"], meta["size"])
        palette = np.array(img.getpalette()[: 71 * 3]).reshape(71, 3)
        np.testing.assert_array_equal(palette, avss_palette())


def test_size_is_honoured(synth_factory):
    root = synth_factory(size=96, layouts=("avss",), counterfactuals=False)
    frame = next(root.rglob("frames/0.jpg"))
    label = next(root.rglob("labels_rgb/0.png"))
    assert Image.open(frame).size == Image.open(label).size == (96, 96)


def test_mp4_clip_shows_the_same_scene_with_its_audio(tmp_path):
    root = generate(
        tmp_path,
        seed=1,
        size=32,
        layouts=("s4",),
        sizes={"train": 1},
        mp4=True,
        workers=1,
        progress=False,
    )
    path = root / "mp4" / "s4" / "train" / "s4_train_00000.mp4"
    with av.open(str(path)) as container:
        assert container.streams.audio[0].sample_rate == SR
        assert container.streams.video[0].average_rate == 24
        video = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(video) == 5 * 24
    png = next((root / "Single-source").rglob("visual_frames/**/s4_train_00000_1.png"))
    diff = np.abs(video[21].astype(int) - np.asarray(Image.open(png)).astype(int))
    assert diff.mean() < 6  # frame 21 at 24 fps is t = 0 + 14/16: the first PNG, up to H.264


def test_cli_writes_refuses_to_overwrite_and_checks_arguments(tmp_path, capsys):
    args = [
        "--out",
        str(tmp_path),
        "--clips",
        "3",
        "--seed",
        "1",
        "--size",
        "32",
        "--layout",
        "ms3",
        "--quiet",
    ]
    assert synth_main(args) == 0
    frames = list(tmp_path.rglob("visual_frames/*/*.png"))
    assert len(frames) == 3 * 5 and Image.open(frames[0]).size == (32, 32)
    assert synth_main(args) == 2 and "overwrite" in capsys.readouterr().err
    assert synth_main(args + ["--overwrite"]) == 0
    assert synth_main(["--out", str(tmp_path / "x"), "--clips", "2", "--quiet"]) == 2
    assert split_sizes(1000) == {"train": 700, "val": 150, "test": 150}
    assert split_sizes(5, min_test=2) == {"train": 2, "val": 1, "test": 2}
    with pytest.raises(SystemExit):
        synth_main(["--out", str(tmp_path / "y"), "--layout", "nope"])
