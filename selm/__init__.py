"""SelM: selective audio-visual segmentation (ACM MM 2024), in PyTorch."""

from selm.config import SelMConfig, get_config, preset_names

__all__ = ["SelMConfig", "get_config", "preset_names"]
__version__ = "0.1.0"
