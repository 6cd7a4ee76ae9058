"""The demo's family example: one hard AVS-Synth test clip on which the default and a
shipped sibling differ most, written as an mp4 with its audio and described in one line.

The clip is chosen by a fixed rule over the per-clip numbers of the evaluation, never by eye:
for every test clip, averaged over the training seeds, |J(default) - J(sibling)| under the real
audio plus the |FPR difference| under each negative audio (silent, noise, off-screen); the clip
with the largest sum wins (ties: the first in the test set's order). The mp4 is the same clip
rendered again by the generator (same seed, same clip; a larger frame side for the demo).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from selm.files import atomic_path, write_text
from selm.metrics import NEGATIVE_AUDIO
from train.synth.scenes import CATEGORIES

# how each category looks in AVS-Synth (train/synth/scenes.py: its shape and base colour)
COLOUR_NAMES = {
    "horn": "red",
    "guitar": "yellow",
    "drum": "blue",
    "bird": "green",
    "siren": "magenta",
    "engine": "orange",
    "fountain": "cyan",
    "voice": "white",
}
LOOKS = {c.name: f"{COLOUR_NAMES[c.name]} {c.shape}" for c in CATEGORIES}


def _per_clip(stats: list[dict]) -> dict[str, np.ndarray]:
    """Seed-averaged per-clip J (real audio) and FPR per negative set, in test-set order."""
    from train.compare import seed_average

    avg = seed_average(stats)
    out = {"j": avg["real"]["j"], "clips": np.asarray(avg["real"]["clips"])}
    for kind in NEGATIVE_AUDIO:  # the GT (so `neg`) of a clip is the same for every seed
        out[kind] = avg[kind]["fp"] / np.maximum(1, avg[kind]["neg"])
    return out


def choose_clip(default: list[dict], sibling: list[dict]) -> dict:
    """The clip where `default` and `sibling` (clip_stats per seed) differ most (module rule):
    its name, the two models' J and FPRs there, and the score."""
    a, b = _per_clip(default), _per_clip(sibling)
    if list(a["clips"]) != list(b["clips"]):
        raise ValueError("the two models were evaluated on different clips")
    score = np.abs(a["j"] - b["j"]) + sum(np.abs(a[k] - b[k]) for k in NEGATIVE_AUDIO)
    i = int(np.argmax(score))
    return {
        "clip": str(a["clips"][i]),
        "score": float(score[i]),
        "default": {"j": float(a["j"][i]), **{k: float(a[k][i]) for k in NEGATIVE_AUDIO}},
        "sibling": {"j": float(b["j"][i]), **{k: float(b[k][i]) for k in NEGATIVE_AUDIO}},
    }


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def describe(meta: dict, choice: dict, default_name: str, sibling_name: str) -> dict:
    """examples.json's entry: what is in the clip, and the one line saying what to look at."""
    objects = {o["category"]: LOOKS[o["category"]] for o in meta["objects"]}
    sounding = [o["category"] for o in meta["objects"] if o["sounding_seconds"]]
    silent = [o["category"] for o in meta["objects"] if not o["sounding_seconds"]]
    offscreen = [s["category"] for s in meta.get("offscreen", [])]
    parts = [
        f"hard AVS-Synth test clip {meta['name']} (seed {meta.get('seed', '?')}, "
        f"{meta.get('snr_db', 0):.0f} dB SNR): "
        + (
            _listed(sounding) + (" sounds" if len(sounding) == 1 else " sound")
            if sounding
            else "nothing in view sounds"
        )
        + (f"; {_listed(silent)} visible but silent" if silent else "")
        + (f"; off-screen: {_listed(offscreen)}" if offscreen else "")
    ]
    d, s = choice["default"], choice["sibling"]
    worst = max(NEGATIVE_AUDIO, key=lambda k: abs(d[k] - s[k]))
    label = {"silent": "mute", "noise": "noise", "offscreen": "an off-screen sound"}[worst]
    look = (
        f"Look at: Compare tab, {default_name} vs {sibling_name}. With the real audio they "
        f"score J {d['j']:.2f} vs {s['j']:.2f} here (mean of the seeds); with {label} they "
        f"mark {100 * d[worst]:.1f}% vs {100 * s[worst]:.1f}% of the background (chosen by the "
        "largest difference over the test set, not by eye)."
    )
    return {"description": parts[0] + ". " + look, "objects": objects, "look": look}


def write_example(
    test_root: Path,
    render_root: Path,
    choice: dict,
    examples_dir: Path,
    default_name: str,
    sibling_name: str,
) -> Path:
    """Copy the chosen clip's mp4 from `render_root` (the test set generated again with mp4,
    same seed) into `examples_dir` as hard_<clip>.mp4 and add its examples.json entry; any
    earlier hard_* example is replaced. Returns the mp4's path."""
    clip = choice["clip"]
    meta = json.loads((test_root / "metadata.json").read_text())
    by_name = {c["name"]: c for c in meta["clips"]["ms3"]}
    if clip not in by_name:
        raise ValueError(f"{clip} is not a clip of {test_root}")
    rendered = json.loads((render_root / "metadata.json").read_text())
    twin = {c["name"]: c for c in rendered["clips"]["ms3"]}.get(clip)
    keys = ("objects", "offscreen", "gt_categories", "snr_db")
    if twin is None or any(
        json.dumps(twin[k], sort_keys=True) != json.dumps(by_name[clip][k], sort_keys=True)
        for k in keys
    ):
        raise ValueError(f"{render_root} does not hold the same clip {clip} as {test_root}")
    source = render_root / "mp4" / "ms3" / "test" / f"{clip}.mp4"
    examples_dir.mkdir(parents=True, exist_ok=True)
    target = examples_dir / f"hard_{clip}.mp4"
    for old in examples_dir.glob("hard_*.mp4"):
        if old != target:
            old.unlink()
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    index = examples_dir / "examples.json"
    entries = json.loads(index.read_text()) if index.is_file() else {}
    entries = {k: v for k, v in entries.items() if not k.startswith("hard_")}
    entry = describe(
        {**by_name[clip], "seed": meta.get("seed")}, choice, default_name, sibling_name
    )
    entries[target.name] = {
        "description": entry["description"],
        "objects": entry["objects"],
        "compare": sibling_name,
    }
    write_text(index, json.dumps(entries, indent=2) + "\n")
    return target
