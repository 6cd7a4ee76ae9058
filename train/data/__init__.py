"""AVSBench data: layouts (where files live), file I/O, augmentation and the loaders."""

from train.data.augment import ClipAugment, ClipParams
from train.data.datasets import (
    DATASETS,
    AVSDataset,
    AVSSDataset,
    MS3Dataset,
    S4Dataset,
    build_dataset,
    collate_clips,
    write_vggish_cache,
)
from train.data.layout import LAYOUTS, SPLITS, AVSSLayout, ClipRecord, MS3Layout, S4Layout

__all__ = [
    "AVSDataset",
    "AVSSDataset",
    "AVSSLayout",
    "ClipAugment",
    "ClipParams",
    "ClipRecord",
    "DATASETS",
    "LAYOUTS",
    "MS3Dataset",
    "MS3Layout",
    "S4Dataset",
    "S4Layout",
    "SPLITS",
    "build_dataset",
    "collate_clips",
    "write_vggish_cache",
]
