"""`README.md` for a converted checkpoint of the authors' SelM: a Hugging Face model card.

Front matter (licence, tags, the paper's metrics as a model-index) and a body saying where the
weights come from, under which terms, what input they expect, and which behaviours of the
release the converted model reproduces or deliberately does not.
"""

from __future__ import annotations

from pathlib import Path

from selm.config import SelMConfig
from selm.files import atomic_path
from selm.presets import BACKBONE_NAMES
from selm.weights.checkpoint import CARD_NAME

_SETTINGS = {
    "s4": ("AVSBench-S4 (single sound source)", "M_J", "M_F"),
    "ms3": ("AVSBench-MS3 (multiple sound sources)", "M_J", "M_F"),
    "avss": ("AVSBench-AVSS (semantic, 71 classes)", "mIoU", "F-score"),
}


def _front_matter(source: dict) -> str:
    """The card's YAML front matter: licence, tags and, for a published model, its paper
    numbers as a model-index."""
    setting, backbone = source["setting"], source["backbone"]
    dataset, m1, m2 = _SETTINGS[setting]
    index = ""
    if "paper_mj" in source:
        index = (
            "model-index:\n"
            f"- name: selm-{setting}-{backbone}\n"
            "  results:\n"
            "  - task:\n"
            "      type: image-segmentation\n"
            "      name: audio-visual segmentation\n"
            "    dataset:\n"
            f"      name: {dataset}\n"
            "      type: avsbench\n"
            "    metrics:\n"
            f"    - {{type: {m1}, value: {source['paper_mj']}, name: {m1} (paper)}}\n"
            f"    - {{type: {m2}, value: {source['paper_mf']}, name: {m2} (paper)}}\n"
        )
    return (
        "---\n"
        "library_name: selm\n"
        "license: other\n"
        "license_name: apache-2.0-code-cc-by-nc-4.0-data\n"
        "license_link: https://creativecommons.org/licenses/by-nc/4.0/\n"
        "tags: [audio-visual-segmentation, selm, avsbench, pytorch]\n"
        "pipeline_tag: image-segmentation\n" + index + "---\n"
    )


def model_card(*, source: dict, config: SelMConfig) -> str:
    """The card's text for a checkpoint converted from `source` (selm.weights.release)."""
    setting, backbone = source["setting"], source["backbone"]
    dataset, m1, m2 = _SETTINGS[setting]
    title = (
        f"SelM ({BACKBONE_NAMES[backbone]}, {setting.upper()}), converted from the authors' release"
    )
    has_paper = "paper_mj" in source
    origin = source.get("spec") or source["file"]
    paper = (
        f"The paper reports **{m1} {source['paper_mj']} / {m2} {source['paper_mf']}** on "
        f"{dataset} for this model (published numbers, not re-measured here)."
        if has_paper
        else "No published number is attached: this file is not byte-identical to a "
        "published one whose hash is recorded."
    )
    body = f"""
# {title}

Source: `{origin}`, file `{source["file"]}` (sha256 `{source["sha256"]}`){_drive(source)}.
Converted by `selm.convert` into selm's `config.json` + `model.safetensors` (preset
`{source["preset"]}`); every published tensor is mapped, loaded strictly both ways.
VGGish: {source["vggish"]}.

{paper}

## Licence
- The authors' code (github.com/Cyyzpoi/SelM) is Apache-2.0; so is selm.
- The weights were trained on AVSBench, whose licence is **CC BY-NC 4.0** (non-commercial, with
  attribution). Treat these weights as bound by it: research and other non-commercial use.
- VGGish's weights (torchvggish's port of Google's VGGish) are Apache-2.0.

## Input
- Frames resized to **{config.input_size} x {config.input_size}**, ImageNet mean/std;
  one frame per second, T = {config.num_frames} per window; logits at
  {config.out_size} x {config.out_size}, {config.num_classes} class(es).
- Audio: 0.96-s log-mel examples (96 x 64) through VGGish, one per frame
  (short audio padded by {config.audio_padding}).

## Release behaviours
- **DAM's A2V half is degenerate**, as released: with one audio token its attention weight is
  the InstanceNorm of a constant, about 0, so that half adds `gate(g) * g` with
  g = GELU(out_conv.bias), the same for every pixel and every sound. Reproduced, not fixed.
- **Frozen VGGish embeddings**: the models were trained on VGGish embeddings (PCA off) with
  VGGish frozen; the converted model computes them itself from the log-mel input.
- **Test-time Gumbel noise: switched off** (`gumbel_at_eval: false`). The release samples it
  in CLEVER at test time too, so its masks are random: with K = 2 tokens a pixel's assignment
  flips with probability at least 1/(1+e^2), about 12 %, even for a fully confident model.
  Off, the output is the noise-free argmax and repeatable. `gumbel_at_eval=True` (or
  `python -m train.evaluate --release-protocol`) reproduces the release's statistics.
- **Clips in a batch**: the release's BCSM applies some gates in (t, b) order, so at B >= 2
  they land on other clips' frames (and AVSS runs the audio Mamba over all B*T frames as one
  sequence). Off by default (`release_batch_gates: false`, each clip on its own);
  `--release-protocol` emulates it for published-number comparisons.
"""
    return _front_matter(source) + body


def _drive(source: dict) -> str:
    return f", from Google Drive {source['drive_url']}" if "drive_url" in source else ""


def write_model_card(directory: str | Path, *, source: dict, config: SelMConfig) -> Path:
    path = Path(directory) / CARD_NAME
    with atomic_path(path) as tmp:
        tmp.write_text(model_card(source=source, config=config))
    return path
