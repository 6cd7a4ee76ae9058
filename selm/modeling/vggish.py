"""VGGish: log-mel examples (N, 1, 96, 64) -> audio embeddings (N, 128) (docs/model.md, section
'Inputs').

`official` is the architecture of Google's VGGish as ported to PyTorch by torchvggish, with the
same parameter names, so its release file `vggish-10086976.pth` loads strictly
(`selm.weights.pretrained.load_vggish_weights`). `slim` keeps the
front end and the 128-d output with far fewer channels, for small models trained on a CPU.
PCA post-processing (the AudioSet release's quantisation step) is not applied: SelM consumes the
raw 128-d ReLU embeddings.
"""

from __future__ import annotations

import torch
from torch import nn

EMBEDDING_DIM = 128

# conv channels, "M" = 2x2 max-pool; four pools take 96 x 64 to 6 x 4
_LAYOUTS: dict[str, tuple[tuple[int | str, ...], tuple[int, ...]]] = {
    # features.{0,3,6,8,11,13} are the convs, embeddings.{0,2,4} the linears (torchvggish names)
    "official": ((64, "M", 128, "M", 256, 256, "M", 512, 512, "M"), (4096, 4096)),
    "slim": ((16, "M", 32, "M", 64, "M", 64, "M"), (128,)),
}
_GRID = (6, 4)  # (H, W) of the last feature map for a 96 x 64 example


class VGGish(nn.Module):
    """(N, 1, 96, 64) log-mel examples -> (N, 128) embeddings, ReLU after every layer."""

    def __init__(self, variant: str = "official") -> None:
        super().__init__()
        if variant not in _LAYOUTS:
            raise ValueError(f"VGGish variant {variant!r}: expected one of {sorted(_LAYOUTS)}")
        self.variant = variant
        convs, hidden = _LAYOUTS[variant]
        layers: list[nn.Module] = []
        channels = 1
        for c in convs:
            if c == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, c, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = c
        self.features = nn.Sequential(*layers)
        widths = (channels * _GRID[0] * _GRID[1], *hidden, EMBEDDING_DIM)
        fc: list[nn.Module] = []
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            fc += [nn.Linear(w_in, w_out), nn.ReLU(inplace=True)]
        self.embeddings = nn.Sequential(*fc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1:] != (1, 96, 64):
            raise ValueError(f"VGGish takes log-mel examples (N, 1, 96, 64), got {tuple(x.shape)}")
        x = self.features(x)  # (N, C, 6, 4)
        # flatten in (H, W, C) order: the TF-trained FC weights were laid out channels-last
        x = x.permute(0, 2, 3, 1).flatten(1)  # (N, 6 * 4 * C)
        return self.embeddings(x)  # (N, 128)
