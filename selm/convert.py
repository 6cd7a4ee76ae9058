"""Convert a published SelM checkpoint (the authors' .pth) into selm's `config.json` +
`model.safetensors`:

    python -m selm.convert OFFICIAL.pth --setting s4|ms3|avss --backbone r50|pvt --out DIR \
        --vggish-weights vggish-10086976.pth     # or --embeddings-only

Every tensor of the file is mapped onto our names and loaded strictly
(selm.weights.release_layout). The published files hold no VGGish: `--vggish-weights` loads
torchvggish's weights so the converted model runs on raw audio; `--embeddings-only` keeps a
random VGGish, for a model that only ever sees precomputed (B, T, 128) VGGish embeddings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from selm.presets import BACKBONES, SETTINGS, official_preset_name
from selm.weights.checkpoint import save_pretrained
from selm.weights.pretrained import VGGISH_FILE
from selm.weights.release_layout import (
    ConversionError,
    convert_official,
    detect_layout,
    read_official,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m selm.convert",
        description="Convert a published SelM checkpoint (the authors' .pth) into selm's "
        "config.json + model.safetensors, strictly: every published tensor is mapped.",
        epilog="The published files hold no VGGish: pass --vggish-weights (the model then runs "
        "on audio) or --embeddings-only (precomputed VGGish embeddings only).",
    )
    parser.add_argument("checkpoint", type=Path, help="the published SelM .pth file")
    parser.add_argument("--setting", required=True, choices=SETTINGS)
    parser.add_argument("--backbone", required=True, choices=tuple(BACKBONES))
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    vggish = parser.add_mutually_exclusive_group()
    vggish.add_argument("--vggish-weights", type=Path, help=f"torchvggish's {VGGISH_FILE}")
    vggish.add_argument(
        "--embeddings-only",
        action="store_true",
        help="keep a random VGGish: the model then only works on precomputed embeddings",
    )
    args = parser.parse_args(argv)
    try:
        state = read_official(args.checkpoint)
        setting, backbone = detect_layout(state, args.setting, args.backbone)
        conversion = convert_official(
            state,
            setting=setting,
            backbone=backbone,
            vggish_weights=args.vggish_weights,
            embeddings_only=args.embeddings_only,
        )
    except (ConversionError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(conversion.summary())
    for note in conversion.notes:
        print(note, file=sys.stderr)
    source = dict(
        file=args.checkpoint.name,
        setting=args.setting,
        backbone=args.backbone,
        preset=official_preset_name(args.setting, args.backbone),
        vggish=conversion.vggish,
    )
    try:
        save_pretrained(conversion.model, args.out, converted_from=source)
    except OSError as err:
        print(f"error: could not write the checkpoint to {args.out} ({err})", file=sys.stderr)
        return 2
    print(f"wrote {args.out / 'config.json'} and {args.out / 'model.safetensors'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
