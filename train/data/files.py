"""Reading and writing AVSBench's files: frames, binary masks, AVSS palette labels, log-mel
pickles and 16 kHz wavs. Pickles are only ever loaded through an allow-list (never plain
`pickle.load`): `torch.load(weights_only=True)` for `torch.save` files, and for AVSBench's own
`pickle.dump`-ed tensors an unpickler that knows nothing but how to rebuild a tensor.
"""

from __future__ import annotations

import io
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import soundfile
import torch
from PIL import Image

from selm.render.palette import label_palette
from selm.transforms.log_mel import SAMPLE_RATE, to_mono_16k

NUM_AVSS_CLASSES = 71  # AVSBench-semantic: background + 70 categories


class DataFileError(ValueError):
    """A file of the data set cannot be read as what it should hold; the message names it and
    says what to do (training stops with it in one line, `python -m train`)."""


# --- images ---
def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def read_binary_mask(path: str | os.PathLike) -> np.ndarray:
    """(H, W) bool. Mode '1'/'L'/'I': value > 0; mode 'P': palette index > 0 (MS3's masks);
    RGB: any channel > 0."""
    with Image.open(path) as img:
        if img.mode in ("P", "1", "L", "I", "I;16"):
            return np.asarray(img) > 0
        return np.asarray(img.convert("RGB")).any(axis=-1)


def write_binary_mask(path: str | os.PathLike, mask: np.ndarray, mode: str = "1") -> None:
    """mode '1' (S4's masks) or 'P' with index 1 = white foreground (MS3's masks)."""
    mask = np.asarray(mask, dtype=bool)
    if mode == "1":
        img = Image.fromarray(mask)
    elif mode == "P":
        img = _palette_image(mask.astype(np.uint8), [0, 0, 0, 255, 255, 255])
    else:
        raise ValueError(f"mask mode must be '1' or 'P', got {mode!r}")
    img.save(path, compress_level=1)


# --- AVSS palette labels ---
def avss_palette(num_classes: int = NUM_AVSS_CLASSES) -> np.ndarray:
    """(num_classes, 3) uint8: the colours of AVSBench's label PNGs (`selm.render.palette`)."""
    return label_palette(num_classes)


_PALETTE = avss_palette()
_PALETTE_KEYS = (_PALETTE[:, 0].astype(np.int64) << 16) | (_PALETTE[:, 1].astype(np.int64) << 8)
_PALETTE_KEYS |= _PALETTE[:, 2]
_KEY_ORDER = np.argsort(_PALETTE_KEYS)


def write_label_png(path: str | os.PathLike, label: np.ndarray) -> None:
    """(H, W) class ids in [0, 71) -> palette PNG whose colours are `avss_palette()`."""
    label = np.asarray(label)
    if label.min(initial=0) < 0 or label.max(initial=0) >= NUM_AVSS_CLASSES:
        raise ValueError(f"AVSS labels must lie in [0, {NUM_AVSS_CLASSES}), got {label.max()}")
    _palette_image(label.astype(np.uint8), _PALETTE.reshape(-1).tolist()).save(
        path, compress_level=1
    )


def _palette_image(index: np.ndarray, palette: list[int]) -> Image.Image:
    """(H, W) uint8 palette indices -> mode 'P' image with `palette` (flat RGB list)."""
    img = Image.frombytes("P", (index.shape[1], index.shape[0]), np.ascontiguousarray(index))
    img.putpalette(palette)
    return img


def decode_label_colours(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """(H, W, 3) uint8 colours -> ((H, W) int64 class ids, number of pixels whose colour is not
    in the palette; those pixels become background, as AVSBench's argmax makes them)."""
    keys = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    sorted_keys = _PALETTE_KEYS[_KEY_ORDER]
    pos = np.clip(np.searchsorted(sorted_keys, keys), 0, len(sorted_keys) - 1)
    known = sorted_keys[pos] == keys
    label = np.where(known, _KEY_ORDER[pos], 0)
    return label.astype(np.int64), int((~known).sum())


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """(H, W) int64 AVSS class ids from a `labels_rgb` PNG (palette or RGB)."""
    return decode_label_colours(read_rgb(path))[0]


# --- audio ---
def read_wav(path: str | os.PathLike) -> torch.Tensor:
    """(S,) float32 mono at 16 kHz."""
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # (S, C)
    except (soundfile.LibsndfileError, RuntimeError) as err:
        raise DataFileError(f"{path}: not a readable wav file ({err}); {_FIX}") from err
    return to_mono_16k(torch.from_numpy(np.ascontiguousarray(data.T)), rate)


def write_wav(path: str | os.PathLike, wave: np.ndarray) -> None:
    """(S,) float in [-1, 1] -> 16-bit PCM mono wav at 16 kHz."""
    soundfile.write(str(path), quantize_pcm16(wave), SAMPLE_RATE, subtype="PCM_16")


def quantize_pcm16(wave: np.ndarray) -> np.ndarray:
    """The float waveform a 16-bit wav of `wave` reads back as (what the log-mel must see)."""
    return (np.round(np.clip(wave, -1.0, 32767 / 32768) * 32768) / 32768).astype(np.float32)


class _TensorUnpickler(pickle.Unpickler):
    """Unpickles what `pickle.dump(tensor)` writes and nothing else."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return torch._utils._rebuild_tensor_v2
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _storage_from_bytes
        if (module, name) == ("_codecs", "encode"):  # how protocol 2 spells bytes
            import codecs

            return codecs.encode
        if (module, name) == ("collections", "OrderedDict"):
            import collections

            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: not a plain tensor")


def _storage_from_bytes(data: bytes):
    return torch.load(io.BytesIO(data), weights_only=True)


_FIX = "replace the file (or run `python -m train.check_data` on the data root)"


def load_log_mel(path: str | os.PathLike) -> torch.Tensor:
    """A log-mel pickle -> float32 tensor (T, 1, 96, 64), loaded without running code."""
    path = Path(path)
    value = None
    if not zipfile.is_zipfile(path):  # AVSBench wrote its pickles with pickle.dump
        with open(path, "rb") as f:
            try:
                value = _TensorUnpickler(f).load()
            except Exception:  # damaged bytes fail in many ways; torch.load says why below
                value = None
    if not isinstance(value, torch.Tensor):  # torch.save files, zip or legacy
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "pickle protocol 4" notices
                value = torch.load(path, weights_only=True, map_location="cpu")
        except Exception as e:  # the weights-only unpickler's errors come in many types
            reason = " ".join(str(e).split())[:200]
            raise DataFileError(
                f"{path}: not a readable log-mel tensor pickle ({reason}); {_FIX}"
            ) from e
    if not isinstance(value, torch.Tensor) or value.dim() != 4 or value.shape[1:] != (1, 96, 64):
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise DataFileError(
            f"{path}: expected a log-mel tensor (T, 1, 96, 64), got {shape}; {_FIX}"
        )
    return value.detach().float()


def save_log_mel(path: str | os.PathLike, log_mel: torch.Tensor) -> None:
    torch.save(log_mel.detach().contiguous().clone(), path)
