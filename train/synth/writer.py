"""Writing one AVS-Synth clip in its AVSBench layout, and its counterfactual test versions.

A `ClipTask` names a clip; everything about it (scene, audio, files) is a pure function of
(seed, layout, split, index), so clips can be written by any number of worker processes.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from selm.media.video import frame_times
from selm.transforms.log_mel import log_mel_examples
from train.data.files import (
    quantize_pcm16,
    save_log_mel,
    write_binary_mask,
    write_label_png,
    write_wav,
)
from train.data.layout import ClipRecord, Layout, layout_class
from train.synth.scenes import (
    CATEGORIES,
    Clip,
    OffscreenSound,
    Renderer,
    binary_gt,
    sample_clip,
    semantic_gt,
)
from train.synth.sounds import LEVEL, SR, mix, sample_sound_params
from train.synth.video import write_mp4

LAYOUT_CODES = {"s4": 1, "ms3": 2, "avss": 3}
SPLIT_CODES = {"train": 1, "val": 2, "test": 3}
COUNTERFACTUALS = ("silent", "noise", "swapped", "offscreen")
DIFFICULTIES = ("default", "hard")  # hard: train/synth/hard.py
_SCENE, _OFFSCREEN_CF, _NOISE_CF = 0, 1, 2  # purposes of a clip's random streams


@dataclass(frozen=True, kw_only=True)
class ClipTask:
    layout: str  # s4 | ms3 | avss
    split: str
    index: int
    seconds: int
    subset: str = ""  # AVSS: v1s | v1m | v2
    partner: ClipTask | None = None  # test clips: whose audio the `swapped` version hears
    difficulty: str = "default"  # default | hard

    @property
    def name(self) -> str:
        return f"{self.layout}_{self.split}_{self.index:05d}"

    @property
    def single_source(self) -> bool:
        return self.layout == "s4" or self.subset == "v1s"


def clip_rng(seed: int, task: ClipTask, purpose: int = _SCENE) -> np.random.Generator:
    """The random stream of one clip: independent of worker count and of the other clips."""
    key = [seed, LAYOUT_CODES[task.layout], SPLIT_CODES[task.split], task.index, purpose]
    if task.difficulty != "default":  # hard clips: streams of their own
        key.append(DIFFICULTIES.index(task.difficulty))
    return np.random.default_rng(np.random.SeedSequence(key))


def build_clip(seed: int, task: ClipTask) -> Clip:
    if task.difficulty == "hard":
        from train.synth.hard import sample_hard_clip

        return sample_hard_clip(
            clip_rng(seed, task), seconds=task.seconds, single_source=task.single_source
        )
    if task.difficulty != "default":
        raise ValueError(f"unknown difficulty {task.difficulty!r}; known: {DIFFICULTIES}")
    return sample_clip(clip_rng(seed, task), seconds=task.seconds, single_source=task.single_source)


def clip_audio(clip: Clip) -> np.ndarray:
    """(seconds * 16000,) float32: the clip's mix as its 16-bit wav reads back."""
    sources = [
        (CATEGORIES[s.category].sound, s.sound, s.sounding, s.spans)
        for s in [*clip.objects, *clip.offscreen]
    ]
    return quantize_pcm16(mix(sources, clip.seconds, clip.noise_seed, clip.snr_db))


def offscreen_audio(seed: int, task: ClipTask, clip: Clip) -> tuple[np.ndarray, list]:
    """1-2 sounds of categories not in view (plus the clip's background noise)."""
    rng = clip_rng(seed, task, _OFFSCREEN_CF)
    visible = {o.category for o in clip.objects}
    hidden = [c for c in range(len(CATEGORIES)) if c not in visible]
    cats = rng.choice(hidden, int(rng.integers(1, 3)), replace=False)
    sounds = []
    for c in cats:
        on = rng.random(clip.seconds) < 0.6
        on[int(rng.integers(clip.seconds))] = True
        recipe = CATEGORIES[int(c)].sound
        sounds.append(
            OffscreenSound(
                category=int(c),
                sounding=tuple(bool(x) for x in on),
                sound=sample_sound_params(recipe, rng),
            )
        )
    sources = [(CATEGORIES[s.category].sound, s.sound, s.sounding) for s in sounds]
    return quantize_pcm16(mix(sources, clip.seconds, clip.noise_seed, clip.snr_db)), sounds


def _fit(wave: np.ndarray, n: int) -> np.ndarray:
    return wave[:n] if wave.size >= n else np.pad(wave, (0, n - wave.size))


def _names(cats) -> list[str]:
    return sorted(CATEGORIES[c].name for c in cats)


def clip_metadata(task: ClipTask, clip: Clip, heard: list[set[int]]) -> dict:
    """What metadata.json records of a clip: its objects, when each sounds, and the GT's
    categories per second (`heard` (seconds,) sets of category ids heard in each second)."""

    def seconds(flags):
        return [i for i, on in enumerate(flags) if on]

    meta = dict(
        name=task.name,
        layout=task.layout,
        split=task.split,
        subset=task.subset,
        seconds=clip.seconds,
        snr_db=round(clip.snr_db, 3),
        objects=[
            dict(
                category=CATEGORIES[o.category].name,
                category_id=o.category,
                sounding_seconds=seconds(o.sounding),
                radius=round(o.radius, 4),
                centre=[round(c, 4) for c in o.centre],
            )
            for o in clip.objects
        ],
        offscreen=[
            dict(
                category=CATEGORIES[s.category].name,
                category_id=s.category,
                sounding_seconds=seconds(s.sounding),
            )
            for s in clip.offscreen
        ],
        gt_categories=[_names(h & {o.category for o in clip.objects}) for h in heard],
    )
    if task.difficulty != "default":  # the default's metadata stays as it was
        from train.synth.hard import visible_fractions

        meta["difficulty"] = task.difficulty
        meta["pan"] = None if clip.pan is None else [round(v, 5) for v in clip.pan]
        fractions = visible_fractions(clip)
        for o, d, f in zip(clip.objects, meta["objects"], fractions):
            d["sounding_spans"] = [list(x) for x in (o.spans or ())]
            d["min_visible_fraction"] = round(f, 3)
        for s, d in zip(clip.offscreen, meta["offscreen"]):
            d["sounding_spans"] = [list(x) for x in (s.spans or ())]
    return meta


class ClipWriter:
    """Writes one clip's files (frames, GT, log-mel pickle, wav, optional mp4) into a layout."""

    def __init__(self, size: int, *, mp4: bool = False, fps: int = 24) -> None:
        self.size, self.mp4, self.fps = size, mp4, fps

    def record(self, layout: Layout, task: ClipTask, clip: Clip, heard: list[set[int]]):
        """The clip's CSV row. S4 `category`: the one sounding object's (its folder name);
        AVSS `a_obj`: the visible categories heard at some point, joined by '_'."""
        category = ""
        if task.layout == "s4":
            category = next(CATEGORIES[o.category].name for o in clip.objects if any(o.sounding))
        elif task.layout == "avss":
            category = "_".join(_names(set().union(*heard) & {o.category for o in clip.objects}))
        gt = layout.gt_frames(task.split, task.subset, clip.seconds)
        return ClipRecord(
            name=task.name,
            split=task.split,
            category=category,
            subset=task.subset,
            num_frames=clip.seconds,
            gt_frames=gt,
        )

    def write(
        self,
        root: Path,
        task: ClipTask,
        clip: Clip,
        frames,
        ids,
        wave,
        heard: list[set[int]],
        frame_source: Path | None = None,
    ) -> ClipRecord:
        """Write under the output root `root`. frames (T, H, W, 3) uint8 and ids (T, H, W) of the
        clip; wave (S,) float32 (already PCM-16 exact); heard[i]: categories heard in second i.
        With `frame_source` (another root), frames are copied from there, not encoded again."""
        layout = layout_class(task.layout).standard(root)
        rec = self.record(layout, task, clip, heard)
        source = None if frame_source is None else layout_class(task.layout).standard(frame_source)
        for i in range(clip.seconds):
            path = layout.frame_path(rec, i)
            path.parent.mkdir(parents=True, exist_ok=True)
            if source is not None:
                shutil.copyfile(source.frame_path(rec, i), path)
            elif path.suffix == ".jpg":
                Image.fromarray(frames[i]).save(path, quality=92)
            else:
                Image.fromarray(frames[i]).save(path, compress_level=1)
        for i in rec.gt_frames:
            path = layout.mask_path(rec, i)
            path.parent.mkdir(parents=True, exist_ok=True)
            if task.layout == "avss":
                write_label_png(path, semantic_gt(ids[i], clip, heard[i]))
            else:
                write_binary_mask(
                    path,
                    binary_gt(ids[i], clip, heard[i]),
                    mode="1" if task.layout == "s4" else "P",
                )
        wav = layout.wav_path(rec)
        wav.parent.mkdir(parents=True, exist_ok=True)
        write_wav(wav, wave)
        pkl = layout.pkl_path(rec)
        if pkl is not None:
            pkl.parent.mkdir(parents=True, exist_ok=True)
            save_log_mel(pkl, log_mel_examples(torch.from_numpy(wave), SR, clip.seconds))
        if self.mp4:
            path = root / "mp4" / task.layout / task.split / f"{task.name}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_mp4(path, Renderer(clip, self.size), clip.seconds, wave, self.fps)
        return rec


def write_task(
    out: Path, seed: int, task: ClipTask, writer: ClipWriter, counterfactuals: bool
) -> dict:
    """Write a clip (and, for test clips with `counterfactuals`, its four counterfactual
    versions). Returns {"": (record, metadata), kind: (record, metadata), ...}."""
    clip = build_clip(seed, task)
    renderer = Renderer(clip, writer.size)
    rendered = [renderer(t) for t in frame_times(clip.seconds)]
    frames = np.stack([np.round(rgb * 255).astype(np.uint8) for rgb, _ in rendered])
    ids = np.stack([i for _, i in rendered])
    heard = [clip.sounding_categories(i) for i in range(clip.seconds)]
    rec = writer.write(out, task, clip, frames, ids, clip_audio(clip), heard)
    results = {"": (rec, clip_metadata(task, clip, heard))}
    if not (counterfactuals and task.split == "test"):
        return results
    for kind in COUNTERFACTUALS:
        wave, heard_cf, extra = counterfactual_audio(kind, seed, task, clip)
        cf_rec = writer.write(
            out / "counterfactual" / kind, task, clip, frames, ids, wave, heard_cf, frame_source=out
        )
        results[kind] = (cf_rec, clip_metadata(task, clip, heard_cf) | extra)
    return results


def swapped_heard(partner: Clip, seconds: int) -> list[set[int]]:
    """Categories heard in each of `seconds` seconds of the partner's audio (trimmed, or padded
    with silence): a visible object is GT in a second iff its category is heard then."""
    return [partner.sounding_categories(i) for i in range(seconds)]


def counterfactual_audio(kind: str, seed: int, task: ClipTask, clip: Clip):
    """The audio of a counterfactual version of a test clip and what it makes the GT:
    (wave (S,) float32, heard: per-second sets of category ids, extra metadata)."""
    n = clip.seconds * SR
    silence: list[set[int]] = [set() for _ in range(clip.seconds)]
    if kind == "silent":  # zeros: nothing sounds
        return np.zeros(n, dtype=np.float32), silence, {"counterfactual": kind}
    if kind == "noise":  # white noise: no category sounds
        noise = clip_rng(seed, task, _NOISE_CF).standard_normal(n) * LEVEL
        return quantize_pcm16(noise), silence, {"counterfactual": kind}
    if kind == "swapped":  # another test clip's audio
        assert task.partner is not None, "test clips get a partner when planned"
        other = build_clip(seed, task.partner)
        extra = {"counterfactual": kind, "audio_from": task.partner.name}
        return _fit(clip_audio(other), n), swapped_heard(other, clip.seconds), extra
    if kind == "offscreen":  # only categories that are not in view
        wave, sounds = offscreen_audio(seed, task, clip)
        described = [
            dict(
                category=CATEGORIES[s.category].name,
                sounding_seconds=[i for i, on in enumerate(s.sounding) if on],
            )
            for s in sounds
        ]
        return wave, silence, {"counterfactual": kind, "offscreen_audio": described}
    raise ValueError(f"unknown counterfactual {kind!r}; known: {COUNTERFACTUALS}")
