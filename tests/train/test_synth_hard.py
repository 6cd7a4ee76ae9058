"""AVS-Synth `--difficulty hard`: determinism, the sampling rules, the per-second GT
rule on hand-built clips with sub-second spans, camera pan, occlusion, swapped partners."""

import json
from pathlib import Path

import numpy as np
import pytest

from selm.media.video import frame_times
from train.synth import generate
from train.synth.generate import plan
from train.synth.hard import (
    MIN_ON,
    MIN_VISIBLE,
    on_time,
    sample_hard_clip,
    spans_for,
    visible_fractions,
)
from train.synth.scenes import Clip, OffscreenSound, Renderer, SceneObject, binary_gt
from train.synth.sounds import SR, gate_spans, mix
from train.synth.writer import build_clip


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _obj(category, centre, sounding, spans, radius=0.15):
    return SceneObject(
        category=category,
        radius=radius,
        centre=centre,
        amplitude=(0.0, 0.0),
        omega=(0.5, 0.5),
        phase=(0.0, 0.0),
        angle=0.0,
        spin=0.0,
        colour=(0.9, 0.1, 0.1),
        sounding=sounding,
        sound={"f0": 220.0, "loudness": 1.0, "seed": 1},
        spans=spans,
    )


def _background():
    return dict(
        grey=0.4,
        tint=(0.0, 0.0, 0.0),
        k=[[3.0, 0.0]],
        omega=[0.3],
        phase=[0.0],
        amplitude=[0.05],
        texture_seed=3,
    )


# --- the GT rule on a hand-built clip ---
def test_hand_built_clip_spans_gate_the_audio_and_decide_the_gt_per_second():
    # horn sounds from 1.2 s to 2.7 s (seconds 1 and 2), the guitar never; horn drawn first,
    # the guitar over it, overlapping its right part
    horn = _obj(0, (0.4, 0.5), (False, True, True, False, False), ((1.2, 2.7),))
    guitar = _obj(1, (0.62, 0.5), (False,) * 5, None, radius=0.12)
    clip = Clip(
        seconds=5,
        objects=[horn, guitar],
        offscreen=[],
        background=_background(),
        snr_db=0.0,
        noise_seed=5,
        pan=(0.02, 0.0),
    )
    # on-time per audio example window [i, i + 0.96): by hand 0, 0.96 - 0.2, 0.7, 0, 0
    assert [round(on_time(horn.spans, i), 6) for i in range(5)] == [0.0, 0.76, 0.7, 0.0, 0.0]
    heard = [clip.sounding_categories(i) for i in range(5)]
    assert heard == [set(), {0}, {0}, set(), set()]
    assert all((on_time(horn.spans, i) >= MIN_ON) == (0 in heard[i]) for i in range(5))
    # the envelope: 0 before 1.2 s and after 2.7 s, 1 in between (past the 10 ms ramps)
    env = gate_spans(horn.spans, 5 * SR)
    assert env[: int(1.2 * SR)].max() == 0.0 and env[int(2.7 * SR) :].max() == 0.0
    assert env[int(1.25 * SR) : int(2.65 * SR)].min() == 1.0
    wave = mix([("harmonic", horn.sound, horn.sounding, horn.spans)], 5, 0, None)
    rms = [
        float(np.sqrt(np.mean(wave[int(a * SR) : int(b * SR)] ** 2)))
        for a, b in [(0, 1.19), (1.3, 2.6), (2.71, 5)]
    ]
    assert rms[0] == 0.0 and rms[2] == 0.0 and rms[1] > 0.05
    # GT per frame: exactly the horn's visible pixels in seconds 1-2, nothing otherwise; the
    # guitar hides part of the horn, and the camera pans by 0.02 frame sides per second
    renderer = Renderer(clip, 64)
    areas = []
    for i, t in enumerate(frame_times(5)):
        _, ids = renderer(t)
        gt = binary_gt(ids, clip, heard[i])
        np.testing.assert_array_equal(gt, (ids == 0) if i in (1, 2) else np.zeros_like(gt))
        areas.append(int((ids == 0).sum()))
    alone = Renderer(Clip(**{**clip.__dict__, "objects": [horn]}), 64)
    assert int((alone(frame_times(5)[0])[1] == 0).sum()) > areas[0] > 0  # partly covered


def test_camera_pan_moves_objects_by_minus_pan_t_and_the_background_with_them():
    obj = _obj(2, (0.5, 0.5), (True,) * 5, None)
    clip = Clip(
        seconds=5,
        objects=[obj],
        offscreen=[],
        background=_background(),
        snr_db=10.0,
        noise_seed=1,
        pan=(0.04, -0.02),
    )
    t = 3.875
    _, ids = Renderer(clip, 64)(t)
    moved = _obj(2, (0.5 - 0.04 * t, 0.5 + 0.02 * t), (True,) * 5, None)
    still = Clip(**{**clip.__dict__, "objects": [moved], "pan": None})
    np.testing.assert_array_equal(ids, Renderer(still, 64)(t)[1])
    # the background seen at t is the one at t without pan, shifted: compare texture-free
    # waves at two instants through the panned renderer: not constant over time
    bg0, bg1 = Renderer(clip, 64).background(0.0), Renderer(clip, 64).background(2.0)
    assert np.abs(bg0 - bg1).mean() > 1e-3


# --- sampling rules ---
@pytest.mark.parametrize("single_source", [False, True])
def test_hard_clips_follow_the_sampling_rules(single_source):
    clips = [
        sample_hard_clip(np.random.default_rng(s), seconds=5, single_source=single_source)
        for s in range(24)
    ]
    offscreen = 0
    for clip in clips:
        cats = [o.category for o in clip.objects]
        assert 2 <= len(cats) <= 4 and len(set(cats)) == len(cats)  # audio always decides
        silent = [o for o in clip.objects if not any(o.sounding)]
        assert silent, "every hard clip shows a visible-but-silent object"
        sounding = [o for o in clip.objects if any(o.sounding)]
        assert len(sounding) == 1 if single_source else len(sounding) >= 1
        assert 0.0 <= clip.snr_db <= 15.0
        assert not {s.category for s in clip.offscreen} & set(cats)
        offscreen += bool(clip.offscreen)
        for src in [*sounding, *clip.offscreen]:
            for i in range(5):
                on = on_time(src.spans, i)
                assert (on >= MIN_ON) == src.sounding[i]
                assert on == 0.0 or on >= 0.55 - 1e-9  # never a borderline window
        if len(sounding) + len(clip.offscreen) >= 2:  # two sources overlap in some second
            srcs = [*sounding, *clip.offscreen]
            assert any(sum(s.sounding[i] for s in srcs) >= 2 for i in range(5))
        assert min(visible_fractions(clip)) >= MIN_VISIBLE
    assert 6 <= offscreen <= 18  # about half
    assert sum(c.pan is not None for c in clips) >= 9
    assert sum(min(visible_fractions(c)) < 0.97 for c in clips) >= 5  # partial occlusion


def test_spans_start_and_stop_inside_the_seconds_of_each_run():
    rng = np.random.default_rng(0)
    spans = spans_for(rng, (True, True, False, True, False))
    assert len(spans) == 2
    (a0, b0), (a1, b1) = spans
    assert 0 <= a0 <= 0.35 and 1.55 <= b0 <= 1.96
    assert 3 <= a1 <= 3.35 and 3.55 <= b1 <= 3.96 and b1 - a1 >= 0.55


# --- the data set ---
def test_hard_generation_is_deterministic_per_seed_and_differs_across_seeds(tmp_path):
    kw = dict(size=32, layouts=("ms3",), sizes={"train": 2, "val": 0, "test": 2}, progress=False)
    a = generate(tmp_path / "a", seed=4, workers=1, counterfactuals=True, difficulty="hard", **kw)
    b = generate(tmp_path / "b", seed=4, workers=2, counterfactuals=True, difficulty="hard", **kw)
    one = {**kw, "sizes": {"train": 1, "val": 0, "test": 0}}
    c = generate(tmp_path / "c", seed=5, workers=1, difficulty="hard", **one)
    d = generate(tmp_path / "d", seed=4, workers=1, **one)  # default difficulty, same seed
    assert _files(a) == _files(b)

    def clip0(root):
        return {k: v for k, v in _files(root).items() if "ms3_train_00000" in k}

    assert clip0(a).keys() == clip0(c).keys() == clip0(d).keys()
    for other in (c, d):  # another seed, or the default difficulty: another clip
        assert all(clip0(a)[k] != clip0(other)[k] for k in clip0(a) if k.endswith(".wav"))
    meta = json.loads((a / "metadata.json").read_text())
    assert meta["difficulty"] == "hard" and "difficulty" not in json.loads(
        (d / "metadata.json").read_text()
    )
    obj = meta["clips"]["ms3"][0]["objects"][0]
    assert {"sounding_spans", "min_visible_fraction"} <= set(obj)


def test_hard_swapped_partners_sound_a_category_the_clip_shows():
    tasks = [t for t in plan(("ms3",), {"test": 8}, "hard", seed=11) if t.split == "test"]
    shared = 0
    for task in tasks:
        clip, partner = build_clip(11, task), build_clip(11, task.partner)
        assert task.partner.index != task.index
        heard = set().union(*(partner.sounding_categories(i) for i in range(5)))
        shown = {o.category for o in clip.objects}
        others = [build_clip(11, t) for t in tasks if t.index != task.index]
        possible = any(
            shown & set().union(*(o.sounding_categories(i) for i in range(5))) for o in others
        )
        assert bool(shown & heard) == possible
        shared += bool(shown & heard)
    assert shared >= 4
    with pytest.raises(ValueError, match="seed"):
        plan(("ms3",), {"test": 3}, "hard")


def test_offscreen_sources_are_not_drawn():
    clip = sample_hard_clip(np.random.default_rng(3), seconds=5, single_source=False)
    extra = OffscreenSound(category=7, sounding=(True,) * 5, spans=((0.0, 4.9),))
    with_extra = Clip(**{**clip.__dict__, "offscreen": [*clip.offscreen, extra]})
    np.testing.assert_array_equal(Renderer(clip, 32)(1.875)[1], Renderer(with_extra, 32)(1.875)[1])
