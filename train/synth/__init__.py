"""AVS-Synth: a synthetic audio-visual segmentation benchmark with exact ground truth under any
audio, written in the AVSBench layouts (docs/model.md, section 'Data layouts').

`generate(out, clips=..., seed=...)` writes a data set; `python -m train.synth --help` is the CLI.
"""

from train.synth.generate import VERSION, generate, plan, split_sizes
from train.synth.scenes import CATEGORIES, Category, Clip, Renderer, sample_clip
from train.synth.writer import COUNTERFACTUALS, ClipTask, build_clip, clip_audio

__all__ = [
    "CATEGORIES",
    "COUNTERFACTUALS",
    "VERSION",
    "Category",
    "Clip",
    "ClipTask",
    "Renderer",
    "build_clip",
    "clip_audio",
    "generate",
    "plan",
    "sample_clip",
    "split_sizes",
]
