import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from selm.losses import selm_loss
from selm.weights.resolve import load_pretrained
from train.__main__ import main as train_main
from train.config import config_from_dict
from train.run_state import load_state
from train.trainer import Trainer, TrainingDiverged

CONFIGS = Path(__file__).resolve().parents[2] / "train" / "configs"
SMALL = {"input_size": 64, "dim": 32, "bcsm_depth": 1}  # a faster selm_tiny for the loop tests


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: more threads only slow the tiny model down
    yield
    torch.set_num_threads(threads)


def tiny_config(root, setting="ms3", model=None, **fields):
    model = dict(model or {"input_size": 64})
    if setting == "avss":
        model.update(num_classes=9, num_frames=10, audio_padding="zeros")
    values = dict(
        setting=setting,
        data_root=str(root),
        preset="selm_tiny",
        epochs=1,
        batch_size=2,
        eval_batch_size=2,
        lr=1e-3,
        seed=0,
        num_workers=0,
        progress=False,
        tensorboard=False,
        model=model,
    )
    return config_from_dict({**values, **fields})


def fixed_loss(trainer, batch) -> float:
    """The loss on `batch` in training mode with the noise (Gumbel, dropout) fixed."""
    torch.manual_seed(1234)
    with torch.no_grad():
        out = trainer.model(batch["frames"], batch["audio"], batch["frame_mask"])
        return selm_loss(out, batch["masks"], batch["has_gt"], trainer.model_cfg)[0].item()


@pytest.mark.parametrize("setting", ["s4", "ms3", "avss"])
def test_three_steps_reduce_the_loss_on_a_fixed_batch(synth_root, tmp_path, setting):
    trainer = Trainer(tiny_config(synth_root, setting), run_dir=tmp_path / "run")
    batch = next(iter(trainer.loader))  # (epoch, index) keys -> a dict of stacked tensors
    if setting == "s4":  # S4 train: GT on the first frame only
        assert batch["has_gt"][:, 0].all() and not batch["has_gt"][:, 1:].any()
    if setting == "avss":
        assert batch["masks"].dtype == torch.int64 and batch["masks"].max() < 9
    trainer.model.train()
    before = fixed_loss(trainer, batch)
    for _ in range(3):
        parts = trainer.train_step(batch)
        assert math.isfinite(parts["loss"])
    after = fixed_loss(trainer, batch)
    assert after < before, (before, after)


def _val_records(run_dir):
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["epoch"]: r for r in lines if r["event"] == "val"}


class _Killed(BaseException):
    """Stands for SIGKILL: nothing of the process runs after it."""


def test_kill_and_resume_equals_straight_through(synth_root, tmp_path, monkeypatch):
    cfg = tiny_config(synth_root, model=SMALL, epochs=2, augment=True)  # 3 steps per epoch
    straight = Trainer(cfg, run_dir=tmp_path / "straight")
    summary = straight.fit()
    assert summary["reason"] == "done" and straight.global_step == 6
    vals = _val_records(tmp_path / "straight")  # best/ holds the best validation epoch
    best_epoch = max(vals, key=lambda e: vals[e]["j_legacy"])
    assert summary["best_epoch"] == best_epoch
    assert summary["best_j_legacy"] == vals[best_epoch]["j_legacy"]
    saved = json.loads((tmp_path / "straight" / "best" / "config.json").read_text())
    assert saved["training"]["epoch"] == best_epoch

    run = tmp_path / "resumed"
    first = Trainer(cfg, run_dir=run, max_steps=2)  # stops cleanly in the middle of epoch 1
    assert first.fit()["reason"] == "max_steps"
    assert load_state(run / "last.pt")["step_in_epoch"] == 2

    original = Trainer.train_step

    def dies_at_step_5(self, batch):
        if self.global_step == 4:
            raise _Killed
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_step", dies_at_step_5)
    second = Trainer(cfg, run_dir=run, resume=True)  # epoch 1 ends (saved), then it is killed
    with pytest.raises(_Killed):
        second.fit()
    monkeypatch.setattr(Trainer, "train_step", original)
    state = load_state(run / "last.pt")
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 0, 3)

    third = Trainer(cfg, run_dir=run, resume=True)
    assert third.fit()["reason"] == "done" and third.global_step == 6

    a, b = straight.model.state_dict(), third.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    opt_a, opt_b = straight.optimizer.state_dict()["state"], third.optimizer.state_dict()["state"]
    assert all(torch.equal(opt_a[i]["exp_avg_sq"], opt_b[i]["exp_avg_sq"]) for i in opt_a)
    va, vb = _val_records(tmp_path / "straight"), _val_records(run)
    for epoch in (1, 2):
        assert va[epoch]["j_legacy"] == vb[epoch]["j_legacy"]
    best_a, best_b = load_pretrained(tmp_path / "straight" / "best"), load_pretrained(run / "best")
    sa, sb = best_a.state_dict(), best_b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_nan_loss_stops_with_a_clear_message(synth_root, tmp_path, monkeypatch):
    trainer = Trainer(tiny_config(synth_root, model=SMALL), run_dir=tmp_path / "run")
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    def nan_loss(output, target, has_gt, cfg):
        loss = output.logits.sum() * float("nan")
        return loss, {"loss": float("nan")}

    monkeypatch.setattr("train.trainer.selm_loss", nan_loss)
    with pytest.raises(TrainingDiverged, match="lr"):
        trainer.fit()
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # no step with a NaN loss
    last = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1]
    assert json.loads(last)["reason"] == "nan"


def test_cli_trains_logs_and_refuses_to_overwrite(synth_root, tmp_path, capsys):
    out = tmp_path / "cli"
    args = [
        "--config",
        str(CONFIGS / "synth_tiny.yaml"),
        "--out",
        str(out),
        "--set",
        f"data_root={synth_root}",
        "--set",
        "epochs=1",
        "--set",
        "num_workers=0",
        "--set",
        "batch_size=3",
        "--set",
        "log_every=1",
        "--set",
        "progress=false",
    ]
    args += [x for k, v in SMALL.items() for x in ("--set", f"model.{k}={v}")]
    assert train_main(args) == 0
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["event"] for r in records] == ["start", "train", "train", "val", "stop"]
    assert all({"loss", "bce", "dice", "aux", "grad_norm"} <= set(r) for r in records[1:3])
    assert any(p.name.startswith("events.out.tfevents") for p in (out / "tb").iterdir())
    assert (out / "best" / "model.safetensors").is_file()
    with pytest.raises(SystemExit):
        train_main(args)  # last.pt exists: --resume or another --out
    assert "--resume" in capsys.readouterr().err
    assert train_main(["--resume", str(out), "--set", "epochs=2"]) == 0  # one more epoch
    assert load_state(out / "last.pt")["epoch"] == 2
    assert train_main(["--resume", str(out), "--set", "model.bcsm=false"]) == 2  # one line
    err = capsys.readouterr().err
    assert "model fields" in err and len(err.strip().splitlines()) == 1


def test_missing_data_root_and_random_frozen_vggish_are_errors(synth_root, tmp_path):
    with pytest.raises(ValueError, match="data_root"):
        Trainer(tiny_config(synth_root, data_root=None), run_dir=tmp_path / "a")
    cfg = tiny_config(synth_root, model={**SMALL, "vggish": "official", "freeze_vggish": True})
    with pytest.raises(ValueError, match="vggish_weights"):
        Trainer(cfg, run_dir=tmp_path / "b")


def test_frozen_vggish_trains_on_cached_embeddings(synth_root, tmp_path):
    cache = tmp_path / "vggish"
    model = {**SMALL, "freeze_vggish": True}  # selm_tiny's slim VGGish, frozen
    trainer = Trainer(
        tiny_config(synth_root, model=model, vggish_cache=str(cache)), run_dir=tmp_path / "run"
    )
    written = sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*.pt"))
    assert len(written) == 5 + 4 and {w.split("/")[0] for w in written} == {"train", "val"}
    batch = next(iter(trainer.loader))
    assert batch["audio"].shape[-1] == 128  # (B, T, 128) embeddings, no log-mel
    name = batch["name"][0]
    source = Trainer._dataset(trainer, "train", cached=False)
    index = [r.name for r in source.records].index(name)
    with torch.no_grad():
        expect = trainer.model.encoder.vggish(source[index]["audio"])
    torch.testing.assert_close(batch["audio"][0], expect)
    vggish = {k: v.clone() for k, v in trainer.model.encoder.vggish.state_dict().items()}
    trainer.train_step(batch)
    after = trainer.model.encoder.vggish.state_dict()
    assert all(torch.equal(vggish[k], after[k]) for k in vggish)  # frozen


def test_backbone_frozen_for_the_first_epochs(synth_root, tmp_path):
    def params(module):
        return {k: p.detach().clone() for k, p in module.named_parameters()}

    cfg = tiny_config(synth_root, model=SMALL, batch_size=5, freeze_backbone_epochs=1)
    first = Trainer(cfg, run_dir=tmp_path / "run")  # epoch 1 of 2: backbone frozen
    backbone, decoder = params(first.model.encoder.backbone), params(first.model.decoder)
    first.fit()
    now = params(first.model.encoder.backbone)
    assert all(torch.equal(backbone[k], now[k]) for k in backbone)
    assert not all(torch.equal(decoder[k], v) for k, v in params(first.model.decoder).items())
    second = Trainer(
        tiny_config(synth_root, model=SMALL, batch_size=5, epochs=2, freeze_backbone_epochs=1),
        run_dir=tmp_path / "run",
        resume=True,
    )
    second.fit()
    now = params(second.model.encoder.backbone)
    assert not all(torch.equal(backbone[k], now[k]) for k in backbone)  # epoch 2 trains it


def test_avss_labels_of_different_sizes(synth_root, tmp_path):
    """AVSBench's AVSS labels come in several sizes: validation scores each at its own size; a
    training batch needs one size and says how to get it (data_options.mask_size)."""
    from PIL import Image

    from train.data import build_dataset, collate_clips

    root = tmp_path / "mixed"
    shutil.copytree(synth_root / "AVSS", root / "AVSS")
    for split in ("train", "val"):
        data = build_dataset("avss", root, split)
        rec = data.records[1]
        for t in rec.gt_frames:
            png = data.layout.mask_path(rec, t)
            Image.open(png).convert("RGB").resize((80, 48), Image.NEAREST).save(png)
    trainer = Trainer(tiny_config(root, "avss", model=SMALL), run_dir=tmp_path / "run")
    batch = collate_clips([trainer.train_set[0], trainer.train_set[1]])
    assert isinstance(batch["masks"], list)
    with pytest.raises(ValueError, match=r"different sizes.*data_options.mask_size"):
        trainer.train_step(batch)
    trainer._validate()  # the val batch of two sizes is scored
    assert math.isfinite(trainer.best_value) and trainer.best_epoch == 0
    fixed = tiny_config(root, "avss", model=SMALL, data_options={"mask_size": 32})
    trainer = Trainer(fixed, run_dir=tmp_path / "fixed")
    batch = collate_clips([trainer.train_set[0], trainer.train_set[1]])
    assert batch["masks"].shape == (2, 10, 32, 32)
    assert math.isfinite(trainer.train_step(batch)["loss"])
