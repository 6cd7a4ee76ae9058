"""SelM: selective audio-visual segmentation (ACM MM 2024), in PyTorch.

`build_selm(preset_or_config)` builds a model; `load_pretrained(dir_or_repo)` and
`save_pretrained(model, dir)` read and write `config.json` + `model.safetensors`
(`load_pretrained("official:s4_pvt")`: the authors' published models, fetched once);
`Predictor` runs a model on any video.
"""

from selm.config import SelMConfig, get_config, preset_names

__all__ = [
    "SelMConfig",
    "get_config",
    "preset_names",
    "build_selm",
    "SelM",
    "SelMOutput",
    "save_pretrained",
    "load_pretrained",
    "Predictor",
]
__version__ = "0.1.0"

_LAZY = {
    "build_selm": "selm.build",
    "SelM": "selm.modeling.model",
    "SelMOutput": "selm.modeling.model",
    "save_pretrained": "selm.weights.checkpoint",
    "load_pretrained": "selm.weights.resolve",
    "Predictor": "selm.inference.predictor",
}


def __getattr__(name: str):
    # torch-heavy modules load on first use, so `import selm` stays cheap
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'selm' has no attribute {name!r}")
