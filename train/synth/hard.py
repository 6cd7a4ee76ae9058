"""AVS-Synth `hard` difficulty (`--difficulty hard`): clips built to provoke auditory illusions.

What differs from the default clips (`scenes.sample_clip`):
- 2-4 objects of distinct categories, at least one of them visible but silent for the whole clip
  (S4 / AVSS v1s: exactly one sounds); categories never repeat in a clip, so the audio always
  decides which visible object sounds (no two objects of one category).
- Off-screen sounds (1-2 categories not in view) in about half of the clips, S4 included.
- Background noise at 0-15 dB SNR (default 10-30), source loudness 0.5-1.5 (default 0.7-1.3),
  and at least one second in which two sources sound together (when there are two).
- Sounds that start and stop inside a second: each run of sounding seconds i..j is on from
  i + a (a <= 0.35 s) to j + b (0.55 <= b <= 0.96 s).
- Partial occlusion: in most clips with 2+ objects, two of them are placed so that one covers
  part of the other; every object keeps at least `MIN_VISIBLE` of its area in view at every
  frame instant.
- Camera pan in most clips: the whole scene (objects, background waves and texture) drifts.

GT rule (the same as the default's, per second): an object is in the GT of frame i iff its
category sounds in second i, i.e. its source is on for at least 0.5 s of the audio example
window [i, i + 0.96) s. The spans above guarantee that a source is on for >= 0.55 s of every
window it sounds in and for none of the others, so no window is a borderline case.
"""

from __future__ import annotations

import numpy as np

from selm.media.video import frame_times
from train.synth.scenes import (
    CATEGORIES,
    SHAPE_EXTENT,
    Clip,
    OffscreenSound,
    Renderer,
    SceneObject,
    sample_background,
)
from train.synth.sounds import sample_sound_params

SNR_DB = (0.0, 15.0)
LOUDNESS = (0.5, 1.5)
MAX_START = 0.35  # a run of sounding seconds starts at most this late in its first second
MIN_STOP, MAX_STOP = 0.55, 0.96  # ... and stops this far into its last second
MIN_ON = 0.5  # the GT rule: on for at least this long in an example window [i, i + 0.96)
MIN_VISIBLE = 0.4  # fraction of an object's own area in view at every frame instant
PAN_SPEED = (0.01, 0.04)  # frame sides per second, scaled by 5 / seconds for longer clips
_CHECK_SIZE = 32  # render side for the visibility check


def on_time(spans, second: int) -> float:
    """Seconds a source with (start, stop) `spans` is on inside window [second, second + 0.96)."""
    lo, hi = second, second + 0.96
    return float(sum(max(0.0, min(b, hi) - max(a, lo)) for a, b in spans))


def spans_for(rng: np.random.Generator, sounding: tuple[bool, ...]) -> tuple:
    """(start, stop) spans, one per run of consecutive sounding seconds."""
    spans, i, n = [], 0, len(sounding)
    while i < n:
        if not sounding[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and sounding[j + 1]:
            j += 1
        start = i + float(rng.uniform(0.0, MAX_START))
        low = MIN_STOP if j > i else max(MIN_STOP, start - i + MIN_STOP)
        stop = j + float(rng.uniform(low, MAX_STOP))
        spans.append((round(start, 4), round(stop, 4)))
        i = j + 1
    return tuple(spans)


def _flags(rng: np.random.Generator, seconds: int, p: float) -> list[bool]:
    on = rng.random(seconds) < p
    if not on.any():
        on[rng.integers(seconds)] = True
    return [bool(x) for x in on]


def _sound(rng: np.random.Generator, category: int) -> dict:
    params = sample_sound_params(CATEGORIES[category].sound, rng)
    params["loudness"] = float(rng.uniform(*LOUDNESS))
    return params


def _visible_fractions(objects: list[SceneObject], clip: Clip) -> list[float]:
    """Per object, the smallest fraction of its own (unoccluded) area in view over the frame
    instants, at `_CHECK_SIZE` px."""
    out = [1.0] * len(objects)
    full = Renderer(clip, _CHECK_SIZE)
    alone = [
        Renderer(
            Clip(
                seconds=clip.seconds,
                objects=[o],
                offscreen=[],
                background=clip.background,
                snr_db=clip.snr_db,
                noise_seed=0,
                pan=clip.pan,
            ),
            _CHECK_SIZE,
        )
        for o in objects
    ]
    for t in frame_times(clip.seconds):
        _, ids = full(t)
        for k, r in enumerate(alone):
            own = int((r(t)[1] == 0).sum())
            seen = int((ids == k).sum())
            out[k] = min(out[k], seen / own if own else 0.0)
    return out


def _placement(rng, n: int, seconds: int, pan, occlude: bool, shrink: float = 1.0):
    """Radii, centres (world coordinates) and motion amplitudes that keep every object inside
    the frame for the whole clip; with `occlude`, object 1 starts overlapping object 0."""
    radii = rng.uniform(0.08, 0.19 - 0.02 * n, n) * shrink
    amps = rng.uniform(0.0, 0.04, (n, 2)) * shrink
    reach = radii[:, None] * SHAPE_EXTENT * 0.85 + amps
    shift = np.asarray(pan if pan is not None else (0.0, 0.0)) * seconds  # camera at the end
    low = reach + np.maximum(shift, 0.0)  # frame position = centre - camera(t) stays inside
    high = 1.0 - reach + np.minimum(shift, 0.0)
    if np.any(low >= high):
        return None
    centres = rng.uniform(low, high)
    if occlude and n >= 2:
        angle = rng.uniform(0, 2 * np.pi)
        dist = rng.uniform(0.6, 1.0) * (radii[0] + radii[1])
        centres[1] = centres[0] + dist * np.array([np.cos(angle), np.sin(angle)])
        if np.any(centres[1] < low[1]) or np.any(centres[1] > high[1]):
            return None
    for i in range(n):  # the others keep apart (no accidental full cover)
        for j in range(i):
            if occlude and (i, j) == (1, 0):
                continue
            if np.linalg.norm(centres[i] - centres[j]) <= reach[i].max() + reach[j].max():
                return None
    return radii, centres, amps


def sample_hard_clip(
    rng: np.random.Generator,
    *,
    seconds: int,
    single_source: bool,
    num_categories: int = len(CATEGORIES),
) -> Clip:
    """A random hard clip (see the module docstring)."""
    n = int(rng.choice([2, 3, 4], p=[0.3, 0.4, 0.3]))
    cats = [int(c) for c in rng.choice(num_categories, n, replace=False)]
    silent = [False] * seconds
    if single_source:
        sources = {int(rng.integers(n))}
    else:
        count = int(rng.integers(1, n))  # 1 .. n-1 sounding: at least one stays silent
        sources = {int(c) for c in rng.choice(n, count, replace=False)}
    flags = [_flags(rng, seconds, 0.6) if i in sources else list(silent) for i in range(n)]
    offscreen_cats: list[int] = []
    if rng.random() < 0.5:
        hidden = [c for c in range(num_categories) if c not in cats]
        k = 1 if rng.random() < 0.7 else 2
        offscreen_cats = [int(c) for c in rng.choice(hidden, min(k, len(hidden)), replace=False)]
    off_flags = [_flags(rng, seconds, 0.6) for _ in offscreen_cats]
    heard = [f for i, f in enumerate(flags) if i in sources] + off_flags
    if len(heard) >= 2:  # overlapping sources: two sound together in some second
        s = int(rng.integers(seconds))
        for f in (heard[0], heard[1]):
            f[s] = True
    pan = None
    if rng.random() < 0.7:
        direction = rng.uniform(0, 2 * np.pi)
        speed = float(rng.uniform(*PAN_SPEED)) * min(1.0, 5.0 / seconds)
        pan = (float(speed * np.cos(direction)), float(speed * np.sin(direction)))
    occlude = n >= 2 and rng.random() < 0.7
    background = sample_background(rng)
    snr_db = float(rng.uniform(*SNR_DB))
    noise_seed = int(rng.integers(2**31))
    sounds = [_sound(rng, c) for c in cats]
    off_sounds = [_sound(rng, c) for c in offscreen_cats]
    spans = [spans_for(rng, tuple(f)) if any(f) else None for f in flags]
    off_spans = [spans_for(rng, tuple(f)) for f in off_flags]
    motion = [
        dict(
            omega=tuple(float(x) for x in rng.uniform(0.3, 1.2, 2)),
            phase=tuple(float(x) for x in rng.uniform(0, 2 * np.pi, 2)),
            angle=float(rng.uniform(0, 2 * np.pi)),
            spin=float(rng.uniform(-0.4, 0.4)),
            jitter=rng.uniform(0.85, 1.1, 3),
        )
        for _ in range(n)
    ]
    offscreen = [
        OffscreenSound(category=c, sounding=tuple(f), sound=snd, spans=sp)
        for c, f, snd, sp in zip(offscreen_cats, off_flags, off_sounds, off_spans)
    ]
    for _attempt in range(400):
        shrink = 0.93 ** (_attempt // 40)
        placed = _placement(rng, n, seconds, pan, occlude and _attempt < 300, shrink)
        if placed is None:
            continue
        objects = _scene_objects(cats, placed, motion, flags, sounds, spans)
        clip = Clip(
            seconds=seconds,
            objects=objects,
            offscreen=offscreen,
            background=background,
            snr_db=snr_db,
            noise_seed=noise_seed,
            pan=pan,
        )
        if min(_visible_fractions(objects, clip)) >= MIN_VISIBLE:
            return clip
    raise AssertionError("hard clip placement did not converge")


def _scene_objects(cats, placed, motion, flags, sounds, spans) -> list[SceneObject]:
    """The clip's objects at a placement (radii, centres, amplitudes) that fits."""
    radii, centres, amps = placed
    objects = []
    for i, c in enumerate(cats):
        m = motion[i]
        colour = np.clip(np.asarray(CATEGORIES[c].colour) * m["jitter"], 0.0, 1.0)
        objects.append(
            SceneObject(
                category=c,
                radius=float(radii[i]),
                centre=(float(centres[i][0]), float(centres[i][1])),
                amplitude=(float(amps[i][0]), float(amps[i][1])),
                omega=m["omega"],
                phase=m["phase"],
                angle=m["angle"],
                spin=m["spin"],
                colour=tuple(float(x) for x in colour),
                sounding=tuple(flags[i]),
                sound=sounds[i],
                spans=spans[i],
            )
        )
    return objects


def visible_fractions(clip: Clip) -> list[float]:
    """Per object of `clip`, the smallest fraction of its own area in view at a frame instant."""
    return _visible_fractions(clip.objects, clip)
