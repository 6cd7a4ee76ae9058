"""What the scoring and evaluation tests share: a fake model with fixed, varied logits, and the
AVS-Synth test loaders they read."""

from types import SimpleNamespace

import torch
from torch.utils.data import DataLoader

from train.batch import to_device
from train.data import build_dataset


class FakeModel(torch.nn.Module):
    """Logits as a fixed function of the frames (a 1x1 conv of fixed weights): varied, repeatable
    predictions with no training, N channels at the frames' size."""

    def __init__(self, n: int = 1) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(n)
        self.weight = torch.randn(n, 3, generator=g) * 2
        self.bias = torch.randn(n, generator=g) * 0.5

    def forward(self, frames, audio, frame_mask=None):
        logits = torch.einsum("btchw,nc->btnhw", frames, self.weight)
        return SimpleNamespace(logits=logits + self.bias[:, None, None])


def loader(root, setting, batch_size=2, split="test"):
    data = build_dataset(setting, root, split, size=64)
    return DataLoader(data, batch_size=batch_size, shuffle=False)


def batches(root, setting, model, batch_size=2, split="test"):
    """(logits (B, T, N, H, W), batch) for every test batch, run by hand."""
    for batch in loader(root, setting, batch_size, split):
        with torch.no_grad():
            b = to_device(batch, torch.device("cpu"))
            yield model(b["frames"], b["audio"], b["frame_mask"]).logits, batch
