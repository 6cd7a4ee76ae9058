"""The S4 / MS3 / AVSS loaders on generated AVS-Synth files: shapes, value ranges, which frames
have GT, palettes, audio forms, augmentation consistency, root discovery."""

import json
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from selm.config import get_config
from selm.transforms.frames import IMAGENET_MEAN, IMAGENET_STD
from selm.transforms.log_mel import log_mel_examples
from train.data import (
    AVSSDataset,
    ClipAugment,
    ClipParams,
    MS3Dataset,
    S4Dataset,
    build_dataset,
    write_vggish_cache,
)
from train.data import augment as aug
from train.data.files import (
    avss_palette,
    load_log_mel,
    read_label_png,
    read_wav,
    write_label_png,
)


def _unnormalise(frames):
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    return frames * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + mean


def _meta(root):
    return json.loads((root / "metadata.json").read_text())


@pytest.mark.parametrize("cls, T", [(S4Dataset, 5), (MS3Dataset, 5), (AVSSDataset, 10)])
@pytest.mark.parametrize("split", ["train", "test"])
def test_items_have_the_documented_shapes_and_ranges(synth_root, cls, T, split):
    ds = cls(synth_root, split, size=32)
    item = ds[0]
    assert item["frames"].shape == (T, 3, 32, 32) and item["frames"].dtype == torch.float32
    real = _unnormalise(item["frames"][item["frame_mask"]])
    assert real.min() >= -1e-5 and real.max() <= 1 + 1e-5
    assert item["audio"].shape == (T, 1, 96, 64)
    assert item["masks"].shape == (T, 64, 64)  # masks keep their own size
    assert item["has_gt"].dtype == item["frame_mask"].dtype == torch.bool
    if cls is AVSSDataset:
        assert item["masks"].dtype == torch.int64 and item["masks"].max() <= 8
    else:
        assert item["masks"].dtype == torch.float32
        assert set(item["masks"].unique().tolist()) <= {0.0, 1.0}
        assert item["frame_mask"].all()


def test_s4_train_annotates_the_first_frame_only(synth_root):
    for split, want in [("train", [1, 0, 0, 0, 0]), ("val", [1] * 5), ("test", [1] * 5)]:
        ds = S4Dataset(synth_root, split, size=64)
        for item in ds:
            assert item["has_gt"].int().tolist() == want
            assert not item["masks"][~item["has_gt"]].any()
    ds = S4Dataset(synth_root, "train", size=64)
    rec = ds.records[0]
    path = ds.layout.mask_path(rec, 0)
    first = np.asarray(Image.open(path).convert("L")) > 0
    np.testing.assert_array_equal(ds[0]["masks"][0].numpy(), first)


def test_frames_and_masks_are_the_files(synth_root):
    ds = MS3Dataset(synth_root, "val", size=64)  # native size: no resampling
    item, rec = ds[1], ds.records[1]
    for i in range(5):
        png = np.asarray(Image.open(ds.layout.frame_path(rec, i))).astype(np.float32) / 255
        got = _unnormalise(item["frames"][i : i + 1])[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(got, png, atol=1e-5)
        mask = np.asarray(Image.open(ds.layout.mask_path(rec, i))) > 0
        np.testing.assert_array_equal(item["masks"][i].numpy().astype(bool), mask)
    assert item["has_gt"].all() and item["category"] == ""


def test_avss_temporal_flags_padding_and_labels(synth_root):
    meta = {m["name"]: m for m in _meta(synth_root)["clips"]["avss"]}
    cats = {c["name"]: c["label"] for c in _meta(synth_root)["categories"]}
    for split in ("train", "val"):
        ds = AVSSDataset(synth_root, split, size=32)
        seen = set()
        for rec, item in zip(ds.records, ds):
            n = 10 if rec.subset == "v2" else 5
            seen.add(rec.subset)
            assert item["frame_mask"].tolist() == [True] * n + [False] * (10 - n)
            gt = [True] + [rec.subset != "v1s" or split != "train"] * (n - 1)
            assert item["has_gt"].tolist() == gt + [False] * (10 - n)
            assert (item["frames"][n:] == 0).all() and (item["audio"][n:] == 0).all()
            assert (item["audio"][:n] != 0).any(dim=(1, 2, 3)).all()
            for i in np.nonzero(item["has_gt"].numpy())[0]:
                labels = set(item["masks"][i].unique().tolist()) - {0}
                want = {cats[c] for c in meta[rec.name]["gt_categories"][i]}
                assert labels == want
        assert seen == {"v1s", "v1m", "v2"}


def test_avss_palette_is_the_voc_bit_shift_colour_map_and_round_trips(tmp_path):
    palette = avss_palette()
    for label in range(71):  # the colour map, bit by bit
        rgb, c, i = [0, 0, 0], label, 0
        while c:
            for ch in range(3):
                rgb[ch] |= ((c >> ch) & 1) << (7 - i)
            c, i = c >> 3, i + 1
        assert palette[label].tolist() == rgb
    assert palette[1].tolist() == [128, 0, 0] and palette[8].tolist() == [64, 0, 0]
    labels = np.random.default_rng(0).integers(0, 71, (13, 17))
    write_label_png(tmp_path / "a.png", labels)
    np.testing.assert_array_equal(read_label_png(tmp_path / "a.png"), labels)
    Image.fromarray(palette[labels]).save(tmp_path / "rgb.png")  # AVSBench's RGB form
    np.testing.assert_array_equal(read_label_png(tmp_path / "rgb.png"), labels)


def test_log_mel_from_pickle_equals_log_mel_from_wav(synth_root):
    a, b = S4Dataset(synth_root, "test", audio="pkl"), S4Dataset(synth_root, "test", audio="wav")
    torch.testing.assert_close(a[0]["audio"], b[0]["audio"], atol=1e-4, rtol=0)
    wav = read_wav(a.layout.wav_path(a.records[0]))
    torch.testing.assert_close(a[0]["audio"], log_mel_examples(wav, 16000, 5), atol=1e-4, rtol=0)


def test_avsbench_pickle_dump_files_load_without_running_code(tmp_path):
    x = torch.randn(5, 1, 96, 64)
    with open(tmp_path / "a.pkl", "wb") as f:
        pickle.dump(x, f)  # how AVSBench wrote its log-mel files
    torch.testing.assert_close(load_log_mel(tmp_path / "a.pkl"), x)

    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    with open(tmp_path / "b.pkl", "wb") as f:
        pickle.dump(Payload(), f)
    with pytest.raises(ValueError, match="not a readable log-mel"):
        load_log_mel(tmp_path / "b.pkl")


def test_vggish_cache_round_trip(synth_root, tmp_path):
    weight = torch.randn(64, 128)

    def fake_vggish(x):  # (N, 1, 96, 64) -> (N, 128)
        return x.mean(dim=(1, 2)) @ weight

    ds = MS3Dataset(synth_root, "val")
    write_vggish_cache(ds, fake_vggish, tmp_path / "cache")
    cached = MS3Dataset(synth_root, "val", audio="vggish", vggish_cache=tmp_path / "cache")
    torch.testing.assert_close(cached[2]["audio"], fake_vggish(ds[2]["audio"]))
    assert cached[2]["audio"].shape == (5, 128)
    with pytest.raises(FileNotFoundError, match="write_vggish_cache"):
        MS3Dataset(synth_root, "val", audio="vggish")  # the default cache is empty


@pytest.mark.parametrize("h, w", [(64, 64), (48, 80), (240, 360), (7, 500), (224, 224)])
def test_nearest_resize_picks_the_pixels_pils_nearest_resize_picks(h, w):
    """The release resizes AVSS labels with PIL (NEAREST) to 224 x 224; 64 -> 224 puts pixel
    centres exactly on borders, where only Pillow's own rounding decides."""
    labels = np.random.default_rng(h * w).integers(0, 71, size=(h, w), dtype=np.int32)
    for size in ((224, 224), (33, 97)):
        want = np.asarray(Image.fromarray(labels).resize(size[::-1], Image.NEAREST))
        got = aug.nearest_resize(torch.from_numpy(labels.astype(np.int64))[None], size)[0]
        assert np.array_equal(got.numpy(), want), size


def test_augmentation_keeps_frames_masks_and_audio_consistent():
    mask = torch.zeros(2, 48, 48)
    mask[:, 10:30, 5:20] = 1
    mask[1, 35:45, 30:46] = 1
    frames = mask[:, None].repeat(1, 3, 1, 1) * 0.9  # the object painted where its mask is
    for seed in range(5):
        params = ClipAugment(min_scale=0.5).sample(torch.Generator().manual_seed(seed))
        f = aug.frames_geometry(frames, params, 48)
        m = aug.masks_geometry(mask, params)
        seen = f[:, 0] > 0.45
        iou = (seen & (m > 0)).sum() / (seen | (m > 0)).sum()
        assert iou > 0.9, (seed, params)
    flip = ClipParams(flip=True)
    torch.testing.assert_close(aug.masks_geometry(mask, flip), mask.flip(-1))
    torch.testing.assert_close(aug.frames_geometry(frames, flip, 48), frames.flip(-1))
    wave = torch.randn(16000 * 2) * 0.1
    valid = torch.tensor([True, True])
    scaled = aug.log_mel_gain(log_mel_examples(wave, 16000, 2), 0.5, valid)
    torch.testing.assert_close(scaled, log_mel_examples(wave * 0.5, 16000, 2), atol=2e-4, rtol=0)


def test_dataset_augmentation_flips_frames_and_masks_together(synth_root):
    plain = S4Dataset(synth_root, "test", size=64)
    flipped = S4Dataset(
        synth_root,
        "test",
        size=64,
        augment=ClipAugment(min_scale=1.0, flip_p=1.0, brightness=0.0, contrast=0.0, gain_db=0.0),
    )
    a, b = plain[0], flipped[0]
    torch.testing.assert_close(b["frames"], a["frames"].flip(-1))
    torch.testing.assert_close(b["masks"], a["masks"].flip(-1))
    torch.testing.assert_close(b["audio"], a["audio"])
    assert S4Dataset(synth_root, "train", augment=True)[0]["frames"].shape == (5, 3, 224, 224)


def test_roots_are_found_below_a_parent_or_taken_explicitly(synth_root, tmp_path):
    explicit = S4Dataset(
        tmp_path,
        "val",
        csv_path=synth_root / "Single-source" / "s4_meta_data.csv",
        data_dir=synth_root / "Single-source" / "s4_data",
    )
    assert [r.name for r in explicit.records] == [
        r.name for r in S4Dataset(synth_root / "Single-source", "val").records
    ]
    with pytest.raises(FileNotFoundError, match="ms3_meta_data.csv"):
        MS3Dataset(tmp_path, "train")
    selm_layout = tmp_path / "selm" / "data" / "avsbench_data"  # SelM's release keeps S4 here
    shutil.copytree(synth_root / "Single-source" / "s4_data", selm_layout / "s4_data" / "s4_data")
    shutil.copy(synth_root / "Single-source" / "s4_meta_data.csv", selm_layout)
    found = S4Dataset(tmp_path / "selm", "val", size=32)
    assert found.layout.data_dir == selm_layout / "s4_data" / "s4_data" and len(found[0]) == 7
    cf = synth_root / "counterfactual" / "swapped"
    with pytest.raises(ValueError, match="splits present: test"):
        AVSSDataset(cf, "train")
    with pytest.raises(ValueError, match="no log-mel pickles"):
        AVSSDataset(synth_root, "test", audio="pkl")
    with pytest.raises(ValueError, match="audio must be"):
        S4Dataset(synth_root, "test", audio="mp3")


def test_build_dataset_follows_the_model_config(synth_root):
    cfg = get_config("selm_tiny", input_size=64, freeze_vggish=False)
    ds = build_dataset("ms3", synth_root, "test", config=cfg)
    assert isinstance(ds, MS3Dataset) and ds[0]["frames"].shape[-1] == 64 and ds.audio == "pkl"
    ds = build_dataset(
        "avss", synth_root, "test", input_size=32, num_frames=10, audio="auto", mask_size=16
    )
    assert ds.audio == "wav" and ds.size == 32 and ds[0]["masks"].shape == (10, 16, 16)
    small = ds[0]["masks"]
    full = build_dataset("avss", synth_root, "test", input_size=32)[0]["masks"]
    torch.testing.assert_close(small, full[:, 2::4, 2::4])  # nearest: centre pixels
    with pytest.raises(ValueError, match="num_frames to 10"):
        build_dataset("avss", synth_root, "test", num_frames=5)
    with pytest.raises(ValueError, match="setting must be"):
        build_dataset("s5", synth_root, "test")


def test_dataloader_with_workers_batches_clips(synth_root):
    loader = DataLoader(AVSSDataset(synth_root, "test", size=32), batch_size=2, num_workers=2)
    batch = next(iter(loader))
    assert batch["frames"].shape == (2, 10, 3, 32, 32) and batch["masks"].shape == (2, 10, 64, 64)
    assert batch["has_gt"].shape == batch["frame_mask"].shape == (2, 10)
    assert len(batch["name"]) == 2
