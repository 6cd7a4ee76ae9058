"""AVSBench loaders (S4, MS3, AVSS) that read AVSBench and AVS-Synth alike (docs/model.md,
section 'Data layouts').

Each item is a dict:
  frames      (T, 3, S, S) float32, ImageNet-normalised; padded frames are 0
  audio       (T, 1, 96, 64) VGGish log-mel examples, or (T, 128) cached VGGish embeddings
  masks       (T, Hm, Wm) at the masks' own size (or mask_size): float {0, 1} (S4, MS3) or
              int64 class ids (AVSS); 0 where a frame has no GT
  has_gt      (T,) bool: which frames are annotated (S4 train: the first only)
  frame_mask  (T,) bool: real frames (False: AVSS padding of 5-frame clips to 10)
  name, category (S4 category, AVSS a_obj, MS3 "")
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from selm.files import atomic_write
from selm.transforms.frames import normalize
from selm.transforms.log_mel import fit_examples, log_mel_examples
from train.data import augment as aug
from train.data.files import (
    load_log_mel,
    read_binary_mask,
    read_label_png,
    read_rgb,
    read_wav,
)
from train.data.layout import ClipRecord, Layout, layout_class

AUDIO_MODES = ("pkl", "wav", "vggish")
# what train.config calls them: log-mel examples (pickle where the layout has them, else wav),
# cached embeddings, or embeddings when a cache exists and log-mel otherwise
AUDIO_ALIASES = ("log_mel", "embeddings", "auto")
VGGISH_CACHE_DIR = "vggish_embeddings"  # default cache: <data dir>/vggish_embeddings/<split>/


class AVSDataset(Dataset):
    """Base of the three loaders; `setting` picks the layout."""

    setting = ""
    semantic = False  # AVSS: masks are class ids
    audio_padding = "repeat"  # short audio: repeat the last example (S4/MS3) or zeros (AVSS)

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        *,
        size: int = 224,
        audio: str | None = None,
        augment: bool | aug.ClipAugment = False,
        vggish_cache: str | os.PathLike | None = None,
        csv_path: str | os.PathLike | None = None,
        data_dir: str | os.PathLike | None = None,
        mask_size: int | None = None,
    ) -> None:
        """root: the folder holding the layout (or a parent of it); csv_path/data_dir override
        the search. audio: "pkl" (log-mel pickles), "wav" (log-mel computed from the wav),
        "vggish" (embeddings written by `write_vggish_cache` to `vggish_cache`, by default
        <data dir>/vggish_embeddings), or an alias of AUDIO_ALIASES; None: log-mel.
        mask_size: masks keep their own size unless this is set (nearest-neighbour resize to
        mask_size x mask_size, as the release does for AVSS's frames of varying size)."""
        if audio is not None and audio not in AUDIO_MODES + AUDIO_ALIASES:
            raise ValueError(f"audio must be one of {AUDIO_MODES + AUDIO_ALIASES}, got {audio!r}")
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        self.layout: Layout = layout_class(self.setting).find(
            root, csv_path=csv_path, data_dir=data_dir
        )
        self.vggish_cache = Path(vggish_cache or self.layout.data_dir / VGGISH_CACHE_DIR)
        log_mel = "pkl" if self.layout.has_log_mel else "wav"
        audio = {None: log_mel, "log_mel": log_mel, "embeddings": "vggish"}.get(audio, audio)
        if audio == "auto":
            audio = "vggish" if (self.vggish_cache / split).is_dir() else log_mel
        if audio == "pkl" and not self.layout.has_log_mel:
            raise ValueError(
                f"the {self.setting} layout has no log-mel pickles; use "
                "audio='wav' or audio='vggish'"
            )
        if audio == "vggish" and not (self.vggish_cache / split).is_dir():
            raise FileNotFoundError(
                f"no VGGish embeddings of split {split!r} under {self.vggish_cache}; write them "
                "with train.data.write_vggish_cache, or read log-mel (audio='log_mel')"
            )
        self.split, self.size, self.audio, self.mask_size = split, size, audio, mask_size
        self.augment = aug.ClipAugment() if augment is True else (augment or None)
        self.records = self.layout.records(split)
        if not self.records:
            present = sorted({r.split for r in self.layout.records()})
            raise ValueError(
                f"{self.layout.csv_path} lists no {split!r} clips "
                f"(splits present: {', '.join(present) or 'none'})"
            )

    @property
    def num_frames(self) -> int:
        return self.layout.num_frames

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        rec = self.records[index]
        T, n = self.num_frames, rec.num_frames
        params = self.augment.sample() if self.augment else aug.ClipParams()
        frames = torch.stack([self._frame(rec, i) for i in range(n)])  # (n, 3, H, W) in [0, 1]
        frames = aug.photometric(aug.frames_geometry(frames, params, self.size), params)
        frames = normalize(frames)
        frames = torch.cat([frames, frames.new_zeros(T - n, *frames.shape[1:])])

        has_gt = torch.zeros(T, dtype=torch.bool)
        has_gt[list(rec.gt_frames)] = True
        masks = self._masks(rec)
        if self.augment:
            masks = aug.masks_geometry(masks, params)
        if self.mask_size is not None and masks.shape[-2:] != (self.mask_size,) * 2:
            masks = aug.nearest_resize(masks, (self.mask_size, self.mask_size))

        frame_mask = torch.arange(T) < n
        audio = self._audio(rec)
        if self.audio != "vggish":
            audio = aug.log_mel_gain(audio, params.gain, frame_mask)
        return dict(
            frames=frames,
            audio=audio,
            masks=masks,
            has_gt=has_gt,
            frame_mask=frame_mask,
            name=rec.name,
            category=rec.category,
        )

    def _frame(self, rec: ClipRecord, i: int) -> torch.Tensor:
        path = self.layout.frame_path(rec, i)
        if not path.is_file():
            raise FileNotFoundError(
                f"{rec.name}: frame {i + 1} missing ({path}); "
                f"run `python -m train.check_data` on the data root"
            )
        return torch.from_numpy(read_rgb(path).copy()).permute(2, 0, 1).float() / 255

    def _masks(self, rec: ClipRecord) -> torch.Tensor:
        read = read_label_png if self.semantic else read_binary_mask
        gt = {}
        for i in rec.gt_frames:
            path = self.layout.mask_path(rec, i)
            if not path.is_file():
                raise FileNotFoundError(
                    f"{rec.name}: mask of frame {i + 1} missing ({path}); "
                    f"run `python -m train.check_data` on the data root"
                )
            gt[i] = read(path)
        shapes = {m.shape for m in gt.values()}
        if len(shapes) != 1:
            raise ValueError(f"{rec.name}: masks of different sizes {sorted(shapes)}")
        h, w = shapes.pop()
        dtype = np.int64 if self.semantic else np.float32
        out = np.zeros((self.num_frames, h, w), dtype=dtype)
        for i, m in gt.items():
            out[i] = m
        return torch.from_numpy(out)

    def _audio(self, rec: ClipRecord) -> torch.Tensor:
        T = self.num_frames
        if self.audio == "vggish":
            path = vggish_cache_path(self.vggish_cache, rec)
            if not path.is_file():
                raise FileNotFoundError(
                    f"no cached VGGish embedding for {rec.name} ({path}); "
                    "write the cache with train.data.write_vggish_cache"
                )
            emb = torch.load(path, weights_only=True, map_location="cpu").float()
            if emb.shape != (T, 128):
                raise ValueError(f"{path}: expected ({T}, 128) embeddings, got {tuple(emb.shape)}")
            return emb
        if self.audio == "pkl":
            log_mel = load_log_mel(self.layout.pkl_path(rec))
        else:
            log_mel = log_mel_examples(
                read_wav(self.layout.wav_path(rec)), num_examples=T, padding=self.audio_padding
            )
        if self.audio_padding == "zeros":  # AVSS: examples past the clip's real frames are 0
            log_mel[rec.num_frames :] = 0.0
        return fit_examples(log_mel, T, self.audio_padding)


class S4Dataset(AVSDataset):
    """Single-source: 5 frames; train annotates frame 1 only."""

    setting = "s4"


class MS3Dataset(AVSDataset):
    """Multi-source: 5 frames, all annotated."""

    setting = "ms3"


class AVSSDataset(AVSDataset):
    """Semantic: 10 frames (v1 clips padded from 5), 71-class labels, audio from the wav."""

    setting = "avss"
    semantic = True
    audio_padding = "zeros"


DATASETS: dict[str, type[AVSDataset]] = {"s4": S4Dataset, "ms3": MS3Dataset, "avss": AVSSDataset}


def build_dataset(
    setting: str,
    root: str | os.PathLike,
    split: str,
    *,
    config=None,
    input_size: int | None = None,
    num_frames: int | None = None,
    **kwargs,
) -> AVSDataset:
    """`DATASETS[setting](root, split, **kwargs)`. `input_size` is `size`; `num_frames`, when
    given, must be the setting's T. With a `SelMConfig` (`config`), both come from it, and a
    frozen VGGish reads cached embeddings where the data has them (audio="auto")."""
    if setting not in DATASETS:
        raise ValueError(f"setting must be one of {tuple(DATASETS)}, got {setting!r}")
    cls = DATASETS[setting]
    if config is not None:
        input_size = input_size or config.input_size
        num_frames = num_frames or config.num_frames
        kwargs.setdefault("audio", "auto" if config.freeze_vggish else "log_mel")
    if input_size is not None:
        kwargs.setdefault("size", input_size)
    T = layout_class(setting).num_frames
    if num_frames is not None and num_frames != T:
        raise ValueError(
            f"{setting} clips have {T} frames but the model expects {num_frames}; "
            f"set the model's num_frames to {T}"
        )
    return cls(root, split, **kwargs)


def collate_clips(items: list[dict]) -> dict:
    """A DataLoader's `collate_fn` for these items: `default_collate`, except that masks of
    different sizes (AVSS labels keep their own size unless `mask_size` is set) stay a list of
    (T, Hm, Wm) tensors, one per clip, instead of failing to stack."""
    if len({tuple(item["masks"].shape) for item in items}) <= 1:
        return default_collate(items)
    batch = default_collate([{k: v for k, v in item.items() if k != "masks"} for item in items])
    batch["masks"] = [item["masks"] for item in items]
    return batch


def vggish_cache_path(cache: Path, rec: ClipRecord) -> Path:
    return cache / rec.split / f"{rec.name}.pt"


@torch.no_grad()
def write_vggish_cache(dataset: AVSDataset, vggish, cache: str | os.PathLike | None = None) -> Path:
    """Run `vggish` ((N, 1, 96, 64) -> (N, 128)) once on every clip's log-mel examples and
    save (T, 128) per clip under `cache` (default: the dataset's `vggish_cache`, inside its
    data folder, so each data root, counterfactual ones included, has its own)."""
    if dataset.audio == "vggish":
        raise ValueError("build the dataset with audio='pkl' or 'wav' to fill a VGGish cache")
    cache = Path(cache) if cache is not None else dataset.vggish_cache
    for rec in dataset.records:
        emb = vggish(dataset._audio(rec)).reshape(dataset.num_frames, -1)
        emb = emb.float().cpu().clone()
        atomic_write(vggish_cache_path(cache, rec), lambda tmp, emb=emb: torch.save(emb, tmp))
    return cache


def seeded_loader(
    dataset, batch_size: int, sampler, num_workers: int, pin_memory: bool, seed: int
) -> DataLoader:
    """A DataLoader in `sampler`'s order whose workers draw from their own generator, seeded
    with `seed` (never the global one), kept alive across epochs; batches of labels of
    different sizes stay lists (`collate_clips`)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(seed),
        collate_fn=collate_clips,
    )
