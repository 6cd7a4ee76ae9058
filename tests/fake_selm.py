"""A fake SelM and the video it is tested on: a bright object that is 'sounding' whenever the
frame's audio is not silent, on a dark background whose level says which second it is."""

import math
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from selm.config import SelMConfig
from selm.inference.prediction import Prediction
from selm.media.writer import open_writer
from selm.transforms.frames import IMAGENET_MEAN, IMAGENET_STD

SILENCE = math.log(0.01)  # log-mel of a waveform of zeros


W, H, FPS, SECONDS = 64, 48, 4, 7


RECT = (slice(8, 24), slice(16, 40))  # rows, cols of the bright object


class FakeSelM(nn.Module):
    """Bright pixels are 'sounding' whenever the frame's audio example is not silent.

    logits = 40 (brightness - 1/2) where mean(log-mel) > log(0.01), else -20; the maps carry
    each frame's mean brightness so stitching can be checked.
    """

    def __init__(self, num_classes: int = 1) -> None:
        super().__init__()
        self.config = SelMConfig(input_size=32, num_frames=5, num_classes=num_classes)
        self.scale = nn.Parameter(torch.ones(()))  # so .to(device) has something to move
        self.calls = []

    def forward(self, frames, audio, frame_mask, return_maps=False):
        self.calls.append((frames.clone(), audio.clone(), frame_mask.clone()))
        mean = torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1)
        bright = (frames * std + mean).mean(2)  # (B, T, S, S) in [0, 1]
        sound = audio.mean((2, 3, 4)) > SILENCE + 1e-3  # (B, T)
        fg = torch.where(sound[..., None, None], 40 * (bright - 0.5), torch.full_like(bright, -20))
        if self.config.num_classes == 1:
            logits = fg[:, :, None]
        else:  # class 0 background, class 2 the object
            logits = torch.stack([-fg, torch.full_like(fg, -30), fg], 2)
        b, t = bright.shape[:2]
        level = bright.mean((2, 3))  # (B, T)
        hit = (bright > 0.5).float()
        hits = [
            torch.stack([1 - h, h], 2)
            for h in (F.interpolate(hit, size=s, mode="nearest") for s in (4, 8, 16))
        ]
        dams = [level[..., None, None].expand(b, t, s, s) for s in (8, 4, 2, 1)]
        bcsm = [
            {
                "norm_before": d,
                "norm_after": 2 * d,
                "gate_audio": sound.float()[..., None].expand(b, t, 32),
                "gate_video": None,
            }
            for d in dams
        ]
        return SimpleNamespace(logits=logits * self.scale, hit_maps=hits, dam_maps=dams, bcsm=bcsm)


def scene(second: int) -> np.ndarray:
    image = np.full((H, W, 3), 10 + 12 * second, np.uint8)  # dark background, known level
    image[RECT] = 240
    return image


def make_video(path, seconds=SECONDS, audio=True):
    with open_writer(path, size=(W, H), fps=FPS, sample_rate=44100 if audio else None) as out:
        if audio:
            out.write_audio(0.5 * np.sin(2 * np.pi * 440 * np.arange(seconds * 44100) / 44100))
        for index in range(seconds * FPS):
            out.write_frame(scene(index // FPS))
    return path


def expected_mask() -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[RECT] = True
    return mask


def assert_object_segmented(mask):
    """The bright rectangle is segmented, 3 px inside its border; nothing 4 px outside it."""
    assert mask[11:21, 19:37].all()
    outside = np.ones((H, W), bool)
    outside[4:28, 12:44] = False
    assert not mask[outside].any()


def predict_with_overlay(predictor, video, path, *, threshold: float = 0.5, **options):
    """What the CLI and the demo do: one pass that predicts and writes the overlay video."""
    from selm.inference.prediction import Prediction
    from selm.render.overlay import OverlayVideo

    windows = predictor.windows(video, video_frames=True, **options)
    with OverlayVideo(path, threshold=threshold) as overlay:
        return Prediction.from_windows(windows, overlay.add)


WIDTH, HEIGHT = 96, 64  # the frame size of `handmade_prediction`


def handmade_prediction(
    source, *, num_classes=1, with_dam=True, with_bcsm=True, seconds=3, size=(WIDTH, HEIGHT)
) -> Prediction:
    """A hand-made Prediction: left half of every frame certain (p = 0.9), right half 0.1."""
    width, height = size
    probs = np.full((seconds, num_classes, height, width), 0.1, np.float32)
    probs[:, 0, :, : width // 2] = 0.9
    if num_classes > 1:  # semantic: class 2 wins on the left, background on the right
        probs[:, :] = 0.0
        probs[:, 2, :, : width // 2] = 1.0
        probs[:, 0, :, width // 2 :] = 1.0
    levels = [
        np.random.default_rng(i).random((seconds, 8 // 2**i + 1, 8 // 2**i + 1), dtype=np.float32)
        for i in range(4)
    ]
    return Prediction(
        frames=np.zeros((seconds, height, width, 3), np.uint8),
        times=np.arange(seconds) + 0.875,
        probs=probs,
        hit_maps=[np.zeros((seconds, 2, s, s), np.float32) for s in (2, 4, 8)],
        dam_maps=levels if with_dam else None,
        bcsm=[
            {"norm_before": m, "norm_after": m, "gate_audio": None, "gate_video": None}
            for m in levels
        ]
        if with_bcsm
        else None,
        waveform=np.zeros(seconds * 16000, np.float32),
        audio_label="mute",
        fps=8.0,
        source=str(source),
        duration=float(seconds),
    )
