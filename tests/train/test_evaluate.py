"""`python -m train.evaluate`: the report, masks and a checkpoint round trip; the release's
test protocol loads the model with both of its switches."""

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scoring_kit import FakeModel, loader
from torch.utils.data import DataLoader

from selm.build import build_selm
from selm.metrics import SemanticMeter
from selm.weights.checkpoint import read_config, save_pretrained
from train.batch import predict_logits
from train.data import build_dataset, collate_clips, write_vggish_cache
from train.data.files import decode_label_colours
from train.evaluate import COUNTERFACTUAL_SETS, evaluate_checkpoint, main
from train.scoring import evaluate_model


def test_cli_report_masks_and_checkpoint_round_trip(synth_root, tmp_path, capsys):
    torch.manual_seed(0)
    model = build_selm("selm_tiny", input_size=64, dim=32, bcsm_depth=1).eval()
    ckpt = save_pretrained(model, tmp_path / "ckpt")
    out, masks = tmp_path / "report.json", tmp_path / "masks"
    assert (
        main(
            [
                "--checkpoint",
                str(ckpt),
                "--data",
                str(synth_root),
                "--setting",
                "s4",
                "--out",
                str(out),
                "--save-masks",
                str(masks),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report["batch_size"] == 2 and report["metrics"]["legacy_batch_size"] == 2
    assert set(report["counterfactual"]) == set(COUNTERFACTUAL_SETS)
    assert "j_legacy" in report["definitions"]
    direct = evaluate_model(model, loader(synth_root, "s4"), setting="s4")
    assert report["metrics"]["j_legacy"] == pytest.approx(direct["j_legacy"], abs=1e-12)
    pngs = sorted(masks.rglob("*.png"))
    assert len(pngs) == report["metrics"]["num_frames"]
    first = next(iter(loader(synth_root, "s4", batch_size=1)))
    logits = predict_logits(model, first, torch.device("cpu"))
    png = np.asarray(
        Image.open(masks / first["category"][0] / first["name"][0] / f"{first['name'][0]}_1.png")
    )
    assert set(np.unique(png)) <= {0, 255}
    assert np.array_equal(png == 255, (logits[0, 0, 0] > 0).numpy())
    assert "report written" in capsys.readouterr().out


def test_release_protocol_loads_the_model_with_both_release_switches(
    synth_root, tmp_path, monkeypatch
):
    import selm.weights.resolve

    torch.manual_seed(0)
    ckpt = save_pretrained(build_selm("selm_tiny", input_size=64, dim=32, bcsm_depth=1), tmp_path)
    real, loaded = selm.weights.resolve.load_pretrained, []

    def recording(*args, **kwargs):
        loaded.append(real(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(selm.weights.resolve, "load_pretrained", recording)
    torch.manual_seed(5)
    report = evaluate_checkpoint(
        str(ckpt), synth_root, "s4", counterfactual=False, release_protocol=True
    )
    assert report["release_protocol"] == {"gumbel_at_eval": True, "release_batch_gates": True}
    cfg = loaded[0].config
    assert cfg.gumbel_at_eval and cfg.release_batch_gates and report["batch_size"] == 2
    torch.manual_seed(5)  # the same random stream (build, then Gumbel noise): the same numbers
    again = real(ckpt, gumbel_at_eval=True, release_batch_gates=True)
    direct = evaluate_model(again, loader(synth_root, "s4"), setting="s4")
    assert report["metrics"]["j_legacy"] == pytest.approx(direct["j_legacy"], abs=1e-12)
    assert not read_config(ckpt).gumbel_at_eval  # the checkpoint itself is unchanged


AVSS_CLASSES = 9  # AVS-Synth AVSS: 8 categories + background


@pytest.fixture
def mixed_avss(synth_root, tmp_path):
    """AVS-Synth's AVSS layout with the second test clip's labels redrawn at 48 x 80 (nearest),
    so the first test batch of 2 holds labels of two sizes, as AVSBench's batches do."""
    root = tmp_path / "mixed"
    shutil.copytree(synth_root / "AVSS", root / "AVSS")
    data = build_dataset("avss", root, "test")
    rec = data.records[1]
    for t in rec.gt_frames:
        png = data.layout.mask_path(rec, t)
        Image.open(png).convert("RGB").resize((80, 48), Image.NEAREST).save(png)
    return root


def foreground_j_legacy(p_fg: torch.Tensor, labels: torch.Tensor) -> float:
    """AVSBench's frame IoU of P(not background) > 0.5; an empty GT scores the share of pixels
    predicted background."""
    pred, gt = p_fg > 0.5, labels > 0
    if not gt.any():
        return (~pred).double().mean().item()
    return ((pred & gt).sum() / ((pred | gt).sum() + 1e-7)).item()


def test_avss_labels_of_different_sizes_score_at_their_own_size(mixed_avss):
    data = build_dataset("avss", mixed_avss, "test", size=64)
    assert data[0]["masks"].shape[-2:] == (64, 64) and data[1]["masks"].shape[-2:] == (48, 80)
    with pytest.raises(RuntimeError):  # torch's default collate cannot stack them
        next(iter(DataLoader(data, batch_size=2)))
    model = FakeModel(n=AVSS_CLASSES)
    got = evaluate_model(
        model, DataLoader(data, batch_size=2, collate_fn=collate_clips), setting="avss"
    )
    semantic, batch_j = SemanticMeter(AVSS_CLASSES), []
    for first in range(0, len(data), 2):  # by hand, one clip at a time
        frame_j = []
        for item in (data[first], data[first + 1]):
            with torch.no_grad():
                logits = model(item["frames"][None], None).logits[0]  # (T, C, 64, 64)
            logits = F.interpolate(
                logits, size=item["masks"].shape[-2:], mode="bilinear", align_corners=True
            )
            semantic.update(logits, item["masks"])
            p_fg = 1 - torch.softmax(logits, dim=1)[:, 0]
            for t in torch.nonzero(item["has_gt"] & item["frame_mask"]).flatten().tolist():
                frame_j.append(foreground_j_legacy(p_fg[t], item["masks"][t]))
        batch_j.append(np.mean(frame_j))
    want = semantic.compute()
    assert got["miou_legacy"] == pytest.approx(want["miou_legacy"], abs=1e-12)
    assert got["fscore_legacy"] == pytest.approx(want["fscore_legacy"], abs=1e-12)
    assert got["num_frames"] == 10 * len(data)
    assert got["foreground"]["j_legacy"] == pytest.approx(np.mean(batch_j), abs=1e-6)
    assert got["foreground"]["legacy_num_batches"] == len(batch_j)


def tiny_avss_checkpoint(directory, **overrides):
    torch.manual_seed(0)
    model = build_selm(
        "selm_tiny",
        input_size=64,
        dim=32,
        bcsm_depth=1,
        num_classes=AVSS_CLASSES,
        num_frames=10,
        audio_padding="zeros",
        **overrides,
    )
    return model, save_pretrained(model, directory)


def test_release_protocol_scores_avss_on_224_labels_as_the_release(
    mixed_avss, tmp_path, monkeypatch
):
    import train.evaluate as evaluate

    _, ckpt = tiny_avss_checkpoint(tmp_path / "ckpt")
    loaders, real = [], evaluate.evaluate_model

    def recording(model, loader, **kwargs):
        loaders.append(loader)
        return real(model, loader, **kwargs)

    monkeypatch.setattr(evaluate, "evaluate_model", recording)
    native = evaluate_checkpoint(str(ckpt), mixed_avss, "avss", counterfactual=False)
    assert native["scored_at"].startswith("each label's own size")
    release = evaluate_checkpoint(
        str(ckpt), mixed_avss, "avss", counterfactual=False, release_protocol=True
    )
    assert release["scored_at"].startswith("labels resized to 224 x 224 (nearest")
    assert loaders[0].dataset[1]["masks"].shape[-2:] == (48, 80)
    data = loaders[1].dataset
    for i, rec in enumerate(data.records):  # the release's labels: PIL's nearest resize to 224
        masks = data[i]["masks"]
        assert masks.shape == (10, 224, 224)
        for t in rec.gt_frames:
            rgb = Image.open(data.layout.mask_path(rec, t)).convert("RGB")
            want, _ = decode_label_colours(np.asarray(rgb.resize((224, 224), Image.NEAREST)))
            assert np.array_equal(masks[t].numpy(), want), (rec.name, t)
    model = FakeModel(n=AVSS_CLASSES)  # scored at 224: logits resized to 224 by hand
    got = real(model, loaders[1], setting="avss")
    semantic = SemanticMeter(AVSS_CLASSES)
    for i in range(len(data)):
        item = data[i]
        with torch.no_grad():
            logits = model(item["frames"][None], None).logits[0]
        semantic.update(
            F.interpolate(logits, size=(224, 224), mode="bilinear", align_corners=True),
            item["masks"],
        )
    assert got["miou_legacy"] == pytest.approx(semantic.compute()["miou_legacy"], abs=1e-12)


def test_the_report_says_which_audio_path_ran(mixed_avss, tmp_path):
    model, ckpt = tiny_avss_checkpoint(tmp_path / "ckpt", freeze_vggish=True)
    plain = evaluate_checkpoint(str(ckpt), mixed_avss, "avss", counterfactual=False)
    assert plain["audio"].startswith("log-mel computed from each clip's wav")
    cache = write_vggish_cache(
        build_dataset("avss", mixed_avss, "test", audio="wav"), model.encoder.vggish.eval()
    )
    cached = evaluate_checkpoint(str(ckpt), mixed_avss, "avss", counterfactual=False)
    assert cached["audio"].startswith(f"VGGish embeddings cached under {cache} ")
    # the release computes the log-mel from the wav every time; so does --release-protocol
    release = evaluate_checkpoint(
        str(ckpt), mixed_avss, "avss", counterfactual=False, release_protocol=True
    )
    assert release["audio"] == plain["audio"]
    explicit = evaluate_checkpoint(str(ckpt), mixed_avss, "avss", counterfactual=False, audio="wav")
    assert explicit["audio"] == plain["audio"]
    # the cached embeddings are the model's own VGGish on the same log-mel: the same numbers
    assert cached["metrics"]["miou_legacy"] == pytest.approx(
        plain["metrics"]["miou_legacy"], abs=1e-6
    )
