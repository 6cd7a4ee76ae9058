"""The authors' releases as checkpoints (selm.weights.release), against a fake Google Drive
(tests/release_fakes.py): download, check, convert, cache; a dropped transfer resumes, within the
run and in the next one; a failure leaves nothing a later run would trust; digests recorded and
checked; either name for a file put by hand; layout detection; a malicious pickle is refused
without running."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import torch
from release_fakes import SPOTS, cache_files, published
from safetensors import safe_open

from selm import predict as predict_cli
from selm.config import get_config
from selm.media.writer import open_writer
from selm.weights.cache import read_records, sha256_of
from selm.weights.checkpoint import CheckpointError, read_config
from selm.weights.download import ATTEMPTS, GDOWN_RETRIES, RETRY_DELAYS_S
from selm.weights.pretrained import VGGISH_URL
from selm.weights.release import REGISTRY, ReleaseError, official_model
from selm.weights.resolve import resolve_checkpoint

slow = pytest.mark.slow
# one conversion by default (the raw-.pth test converts a PVT one); all six: -m slow
SPEC_CASES = [
    "s4_r50",
    pytest.param("s4_pvt", marks=slow),
    pytest.param("ms3_r50", marks=slow),
    pytest.param("ms3_pvt", marks=slow),
    pytest.param("avss_r50", marks=slow),
    pytest.param("avss_pvt", marks=slow),
]


def test_registry_holds_the_six_published_models():
    assert sorted(m.spec for m in REGISTRY.values()) == sorted(
        f"official:{s}_{b}" for s in ("s4", "ms3", "avss") for b in ("r50", "pvt")
    )
    s4_pvt = official_model("official:s4_pvt")
    assert (s4_pvt.drive_id, s4_pvt.paper_mj, s4_pvt.paper_mf) == (
        "1WFcfB5cawzqLSxUJH7yP3xL2JN0ZX27V",
        83.5,
        91.2,
    )
    assert s4_pvt.label == "authors' SelM-PVTv2, S4"
    assert official_model("official:avss_r50").label == "authors' SelM-R50, AVSS"
    with pytest.raises(ReleaseError, match="not one of the authors' published models"):
        official_model("official:s5_r50")


@pytest.mark.parametrize("name", SPEC_CASES)
def test_spec_downloads_converts_caches_and_then_never_downloads(fake_drive, name):
    model = REGISTRY[name]
    folder = resolve_checkpoint(model.spec)
    assert folder == fake_drive.home / "checkpoints" / f"official-{name}"
    assert fake_drive.calls == [model.drive_id, VGGISH_URL]
    assert fake_drive.progress  # the progress callback reached gdown
    for options in fake_drive.options:  # resumable, retried, with timeouts
        assert options["resume"] is True and options["retries"] == GDOWN_RETRIES
        assert options["timeout"] is not None
    assert cache_files(fake_drive.home) == sorted(
        [
            f"checkpoints/official-{name}/README.md",
            f"checkpoints/official-{name}/config.json",
            f"checkpoints/official-{name}/model.safetensors",
            "downloads/checksums.json",
            f"downloads/{model.file_name}",
            "downloads/vggish-10086976.pth",
        ]
    )
    assert read_config(folder) == get_config(model.preset)
    meta = json.loads((folder / "config.json").read_text())["converted_from"]
    served = fake_drive.store.official(name)
    assert meta["sha256"] == sha256_of(served) and meta["spec"] == model.spec
    records = read_records()  # the first good download of each file, recorded
    assert records[model.file_name]["sha256"] == meta["sha256"]
    assert records[model.file_name]["size"] == served.stat().st_size
    assert records[model.file_name]["source"] == model.download_url
    assert records["vggish-10086976.pth"]["sha256"] == sha256_of(fake_drive.store.vggish())
    theirs = torch.load(served, weights_only=True)
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        for published_name, ours in {**SPOTS[model.backbone], **SPOTS["both"]}.items():
            if published_name in theirs:
                assert torch.equal(f.get_tensor(ours), theirs[published_name]), ours
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: selm\n")
    assert "CC BY-NC 4.0" in card and "Apache-2.0" in card
    assert f"value: {model.paper_mj}" in card and f"value: {model.paper_mf}" in card
    size = read_config(folder).input_size
    assert f"**{size} x {size}**" in card and "1/(1+e^2)" in card

    fake_drive.mode = "offline"  # a second use: no download, even with no network
    assert resolve_checkpoint(model.spec) == folder
    assert fake_drive.calls == [model.drive_id, VGGISH_URL]


@pytest.mark.parametrize(
    "mode, message",
    [
        ("drop", r"download failed after 4 attempts \(ConnectionResetError: Connection broken"),
        ("html", r"web page instead of .*quota exceeded"),
        ("swap:ms3_r50", r"is the ms3 / ResNet-50 model, not the published official:s4_r50"),
        ("offline", r"drive\.google\.com cannot be reached"),
        ("refused", r"download failed after 4 attempts \(ConnectionError: \[Errno -3\]"),
    ],
)
def test_failures_say_what_to_do_and_leave_nothing_to_trust(fake_drive, mode, message):
    if mode == "drop":  # every attempt drops the connection halfway through what is left
        fake_drive.drops = ATTEMPTS
    else:
        fake_drive.mode = mode
    with pytest.raises(ReleaseError, match=message) as err:
        resolve_checkpoint("official:s4_r50")
    text = str(err.value)
    # the file, its Drive link, where to put it (the folder, under either name), the command
    downloads = fake_drive.home / "downloads"
    assert "https://drive.google.com/file/d/1kJI00umTGOa05HxDdrHYVPozLn32cc_o/view" in text
    assert f"put it in the folder {downloads} as SelM_S4_R50.pth or S4_R50.pth" in text
    assert "python -m selm.convert SelM_S4_R50.pth --setting s4 --backbone r50" in text
    assert len(text.splitlines()) == 4  # the reason on one line, then the steps
    assert re.search(message, text.splitlines()[0])
    if mode == "drop":  # what came is kept for the next run, outside what a run would trust
        (part,) = cache_files(fake_drive.home)
        assert part.startswith("downloads/.partial/SelM_S4_R50.pth-") and part.endswith(".part")
        assert f"received are kept in {downloads / '.partial'}" in text
    else:
        assert cache_files(fake_drive.home) == []  # no partial file, no scratch folder
    assert not (downloads / "SelM_S4_R50.pth").exists()
    retried = mode in ("drop", "refused")  # the others are not worth another try
    assert fake_drive.waits == (list(RETRY_DELAYS_S) if retried else [])
    assert len(fake_drive.calls) == (ATTEMPTS if retried else 0 if mode == "offline" else 1)


def test_selm_offline_forbids_downloads(fake_drive, monkeypatch):
    monkeypatch.setenv("SELM_OFFLINE", "1")
    with pytest.raises(ReleaseError, match="SELM_OFFLINE is set"):
        resolve_checkpoint("official:ms3_pvt")
    assert fake_drive.calls == [] and cache_files(fake_drive.home) == []


def test_clis_exit_2_with_the_message(fake_drive, tmp_path, capsys):
    from train.evaluate import main as evaluate_main

    fake_drive.mode = "offline"
    clip = tmp_path / "clip.mp4"
    with open_writer(clip, size=(64, 48), fps=4, sample_rate=16000) as out:
        out.write_audio(np.zeros(16000, np.float32))
        for _ in range(4):
            out.write_frame(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(SystemExit) as exit_info:
        predict_cli.main(
            [str(clip), "--checkpoint", "official:s4_pvt", "--out", str(tmp_path / "o.mp4")]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "drive.google.com/file/d/1WFcfB5cawzqLSxUJH7yP3xL2JN0ZX27V" in err
    assert "Traceback" not in err and not (tmp_path / "o.mp4").exists()
    code = evaluate_main(
        ["--checkpoint", "official:s4_pvt", "--data", str(tmp_path), "--setting", "s4"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "error: could not get authors' SelM-PVTv2, S4" in err


@slow
def test_a_raw_pth_is_detected_converted_once_and_reused(fake_drive, capsys):
    served = fake_drive.store.official("ms3_pvt")
    folder = resolve_checkpoint(served)
    digest = sha256_of(served)
    assert folder == fake_drive.home / "checkpoints" / f"pth-{digest[:16]}"
    err = capsys.readouterr().err
    assert "found the MS3 / PVT-v2-b5 layout (that of official:ms3_pvt)" in err
    assert fake_drive.calls == [VGGISH_URL]  # only VGGish is fetched
    assert read_config(folder) == get_config("selm_pvt_b5_official_ms3")
    card = (folder / "README.md").read_text()
    assert "No published number is attached" in card and "model-index" not in card
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert resolve_checkpoint(str(served)) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert "converting" not in capsys.readouterr().err


def test_an_ambiguous_or_foreign_pth_asks_for_setting_and_backbone(fake_drive, tmp_path):
    state = published("avss", "pvt")
    path = tmp_path / "partial.pth"
    torch.save({k: v.clone() for k, v in state.items() if "audio_linear" not in k}, path)
    with pytest.raises(ReleaseError, match=r"cannot be read off \(classes missing\)") as err:
        resolve_checkpoint(path)
    assert "python -m selm.convert FILE --setting {s4,ms3,avss} --backbone pvt" in str(err.value)
    with pytest.raises(CheckpointError, match="no such file"):
        resolve_checkpoint(tmp_path / "absent.pth")
    assert fake_drive.calls == [] and cache_files(fake_drive.home) == []


class _Payload:
    """Unpickling this calls os.mkdir(marker): code execution, if the loader allowed it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_pickle_payload_is_refused_and_never_runs(fake_drive, tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "S4_SelM_PVT.pth"
    torch.save(
        {"state_dict": {"resnet.conv1.weight": torch.zeros(1)}, "x": _Payload(str(marker))}, path
    )
    with pytest.raises(ReleaseError, match=r"could not be read as a PyTorch state dict") as err:
        resolve_checkpoint(path)
    assert "Weights only load failed" in str(err.value) and "mkdir" in str(err.value)
    assert not marker.exists()  # nothing ran
    assert cache_files(fake_drive.home) == []
    torch.load(path, weights_only=False)  # the control: an unsafe load does run it
    assert marker.is_dir()


@slow
def test_files_put_by_hand_are_used_offline(fake_drive):
    downloads = fake_drive.home / "downloads"
    downloads.mkdir(parents=True)
    (downloads / "S4_R50.pth").write_bytes(fake_drive.store.official("s4_r50").read_bytes())
    (downloads / "vggish-10086976.pth").write_bytes(fake_drive.store.vggish().read_bytes())
    fake_drive.mode = "offline"
    folder = resolve_checkpoint("official:s4_r50")
    assert read_config(folder) == get_config("selm_r50_official_s4") and fake_drive.calls == []


@pytest.mark.parametrize("name", ["SelM_MS3_PVT.pth", "MS3_PVT.pth"])
def test_a_file_put_by_hand_is_found_under_either_name(fake_drive, conversions, name):
    """Ours, or the name the authors' test scripts load (`--weights ../MS3_PVT.pth`)."""
    downloads = fake_drive.home / "downloads"
    downloads.mkdir(parents=True)
    served = fake_drive.store.official("ms3_pvt")
    (downloads / name).write_bytes(served.read_bytes())
    fake_drive.mode = "offline"
    resolve_checkpoint("official:ms3_pvt")
    (seen,) = conversions
    assert seen["file"] == name and (seen["setting"], seen["backbone"]) == ("ms3", "pvt")
    assert seen["sha256"] == sha256_of(served) and fake_drive.calls == []
    assert seen["sha256_checked_against"] == "nothing yet (recorded now)"
    record = read_records()["SelM_MS3_PVT.pth"]  # one record for the file, whatever its name
    assert record["sha256"] == sha256_of(served) and record["source"] == str(downloads / name)


def test_a_bad_file_put_by_hand_is_discarded(fake_drive, capsys):
    downloads = fake_drive.home / "downloads"
    downloads.mkdir(parents=True)
    (downloads / "SelM_S4_R50.pth").write_bytes(b"<html><body>Quota exceeded</body></html>")
    fake_drive.mode = "offline"
    with pytest.raises(ReleaseError, match="cannot be reached"):
        resolve_checkpoint("official:s4_r50")
    assert "discarding" in capsys.readouterr().err and cache_files(fake_drive.home) == []


def test_a_spec_reads_its_layout_once(fake_drive, monkeypatch):
    """The downloaded file's tensors are described once, then (setting, backbone) is passed on
    to the conversion instead of being read off again."""
    import selm.weights.release_layout as layout

    calls = []
    real = layout.describe
    monkeypatch.setattr(layout, "describe", lambda state: calls.append(1) or real(state))
    resolve_checkpoint("official:s4_r50")
    assert len(calls) == 1
