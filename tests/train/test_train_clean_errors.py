"""Bad input and faults on the training side: `--resume --set lr`, one-line errors
with exit code 2, a full disk, stale temporaries and rolled-back log records."""

import errno
import json
import os

import pytest
import torch
import yaml

from train.__main__ import main as train_main
from train.config import config_from_dict
from train.evaluate import main as evaluate_main
from train.run_state import load_state
from train.synth import generate
from train.synth.__main__ import main as synth_main
from train.trainer import Trainer, TrainingDiverged

SMALL = {"input_size": 64, "dim": 32, "bcsm_depth": 1}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_config(root, **fields):
    values = dict(
        setting="ms3",
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
        log_every=1,
        model=dict(SMALL),
    )
    return config_from_dict({**values, **fields})


def write_config(path, root, **fields):
    values = small_config(root, **fields).to_dict()
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# --- item 12: --resume --set lr=X reaches the optimizer -------------------------------------


def test_resume_applies_the_new_lr_and_refuses_fixed_fields(
    synth_root, tmp_path, capsys, monkeypatch
):
    run = tmp_path / "run"
    assert Trainer(small_config(synth_root), run_dir=run, max_steps=1).fit()["step"] == 1
    assert train_main(["--resume", str(run), "--set", "lr=1e-5", "--max-steps", "2"]) == 0
    assert load_state(run / "last.pt")["optimizer"]["param_groups"][0]["lr"] == 1e-5
    assert yaml.safe_load((run / "config.yaml").read_text())["lr"] == 1e-5
    assert "lr 0.001 -> 1e-05" in capsys.readouterr().out

    # batch_size fixes where the resumed epoch continues: refused, one line, config unchanged
    assert train_main(["--resume", str(run), "--set", "batch_size=3"]) == 2
    assert "cannot change batch_size 2 -> 3" in _one_line_error(capsys)
    assert yaml.safe_load((run / "config.yaml").read_text())["batch_size"] == 2

    # the NaN message advises exactly this, now that it works
    def nan_loss(output, target, has_gt, cfg):
        return output.logits.sum() * float("nan"), {"loss": float("nan")}

    monkeypatch.setattr("train.trainer.selm_loss", nan_loss)
    with pytest.raises(TrainingDiverged) as info:
        Trainer(small_config(synth_root, lr=1e-5), run_dir=run, resume=True).fit()
    assert f"python -m train --resume {run} --set lr=1e-06" in str(info.value)


# --- item 13: config, data and resume errors are one line and exit code 2 ---------------------


def test_cli_errors_are_one_line_with_exit_code_2(synth_root, tmp_path, capsys):
    good = write_config(tmp_path / "good.yaml", synth_root)
    cases = [
        (["--config", str(good), "--set", f"data_root={tmp_path / 'nowhere'}"], "nowhere"),
        (["--config", str(good), "--set", "epochs=many"], "TrainConfig.epochs='many'"),
        (["--config", str(good), "--set", "epoks=2"], "unknown TrainConfig key(s) epoks"),
        (["--config", str(good), "--set", "model.dim=[64"], "not valid YAML"),
        (["--config", str(tmp_path / "missing.yaml")], "missing.yaml not found"),
        (["--resume", str(tmp_path)], "config.yaml not found"),
    ]
    (tmp_path / "broken.yaml").write_text("lr: 1e-3\n  epochs: [2\n")
    cases.append((["--config", str(tmp_path / "broken.yaml")], "not valid YAML at line"))
    run = tmp_path / "run"
    run.mkdir()
    write_config(run / "config.yaml", synth_root)
    (run / "last.pt").write_bytes(b"not a checkpoint")
    cases.append((["--resume", str(run)], "cannot read the training state"))
    for argv, message in cases:
        extra = ["--out", str(tmp_path / "out")] if "--config" in argv else []
        assert train_main([*argv, *extra]) == 2, argv
        err = _one_line_error(capsys)
        assert err.startswith("python -m train: error: ") and message in err, (argv, err)
        assert "Traceback" not in err


def test_a_real_bug_keeps_its_traceback(synth_root, tmp_path, monkeypatch):
    good = write_config(tmp_path / "good.yaml", synth_root)

    def bug(self, *args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(Trainer, "__init__", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        train_main(["--config", str(good), "--out", str(tmp_path / "out")])


def test_evaluate_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    argv = ["--checkpoint", str(tmp_path / "nockpt"), "--data", str(tmp_path), "--setting", "s4"]
    assert evaluate_main(argv) == 2
    err = _one_line_error(capsys)
    assert err.startswith("python -m train.evaluate: error: ") and "nockpt" in err
    assert not list(tmp_path.iterdir())  # no report


# --- item 14: a full disk in training and in train.synth -------------------------------------


def test_full_disk_while_saving_the_training_state(synth_root, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    good = write_config(tmp_path / "good.yaml", synth_root)
    monkeypatch.setattr("train.run_state.torch.save", _enospc)
    assert train_main(["--config", str(good), "--out", str(run), "--max-steps", "1"]) == 2
    err = _one_line_error(capsys)
    assert f"no space left on {run}" in err and "Traceback" not in err
    assert not (run / "last.pt").exists()
    assert not [p for p in run.iterdir() if ".tmp" in p.name]  # nothing partial


def test_full_disk_in_synth_leaves_the_old_set(tmp_path, capsys, monkeypatch):
    out = tmp_path / "synth"
    kwargs = dict(
        size=32,
        layouts=("s4",),
        sizes={"train": 1, "val": 1, "test": 1},
        workers=1,
        progress=False,
    )
    generate(out, seed=1, **kwargs)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    calls = []

    def full_on_the_third(*args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            _enospc()

    monkeypatch.setattr("train.synth.writer.write_wav", full_on_the_third)
    with pytest.raises(OSError, match=f"no space left on {out}"):
        generate(out, seed=2, overwrite=True, **kwargs)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # the old set as it was, no part of the new one
    assert sorted(os.listdir(out)) == sorted({p.parts[0] for p in before})

    calls.clear()
    fresh = tmp_path / "fresh"
    argv = ["--out", str(fresh), "--clips", "3", "--layout", "s4", "--size", "32", "--quiet"]
    assert synth_main([*argv, "--workers", "1"]) == 2
    assert f"no space left on {fresh}" in _one_line_error(capsys)
    assert os.listdir(fresh) == []


# --- item 16: stale temporaries in the run dir; rolled-back records --------------------------


def test_resume_cleans_temporaries_and_rolled_back_records(synth_root, tmp_path):
    run = tmp_path / "run"
    Trainer(small_config(synth_root), run_dir=run, max_steps=2).fit()
    # what a process killed after step 3 leaves: records of steps 3 (and half a line), temporaries
    with (run / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"event": "train", "epoch": 1, "step": 3, "loss": 9.0}) + "\n")
        f.write('{"event": "train", "ep')
    stale = [run / ".last.0123456789ab.tmp.pt", run / "best" / ".model.abcdef012345.tmp.json"]
    for path in stale:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"\0" * 1000)
    trainer = Trainer(small_config(synth_root), run_dir=run, resume=True, max_steps=3)
    assert not any(p.exists() for p in stale)
    trainer.fit()
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["event"] == "train"]
    assert steps == [1, 2, 3]  # each step once, the resumed run's step 3
    assert [r["loss"] for r in records if r["event"] == "train"][-1] != 9.0


# --- a full disk while saving best/, an unreadable file of the training split ------------------


def test_full_disk_while_saving_best_is_one_line(synth_root, tmp_path, capsys, monkeypatch):
    """safetensors reports ENOSPC as its own SafetensorError: one line naming best/, exit 2."""
    from safetensors import SafetensorError

    def full(*args, **kwargs):
        raise SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    monkeypatch.setattr("selm.weights.checkpoint.save_file", full)
    run = tmp_path / "run"
    good = write_config(tmp_path / "good.yaml", synth_root)
    assert train_main(["--config", str(good), "--out", str(run)]) == 2
    err = _one_line_error(capsys)
    assert err.startswith("python -m train: error: ") and f"no space left on {run / 'best'}" in err
    assert not [p for p in (run / "best").iterdir() if ".tmp" in p.name]  # nothing partial


def test_an_unreadable_log_mel_file_is_one_line_naming_it(synth_root, tmp_path, capsys):
    import shutil

    from train.config import user_error_message
    from train.data.files import DataFileError

    root = tmp_path / "data"  # a copy of the MS3 part: the session's sample stays intact
    shutil.copytree(synth_root / "Multi-sources", root / "Multi-sources")
    mels = root / "Multi-sources" / "ms3_data" / "audio_log_mel" / "train"
    broken = sorted(mels.glob("*.pkl"))[0]
    broken.write_text("not a pickle\n")
    config = write_config(tmp_path / "c.yaml", root)
    assert train_main(["--config", str(config), "--out", str(tmp_path / "run")]) == 2
    err = _one_line_error(capsys)
    assert err.startswith("python -m train: error: ") and "Traceback" not in err
    assert f"{broken}: not a readable log-mel tensor pickle" in err

    # a DataLoader worker's error comes back with the worker's traceback in its message
    worker = DataFileError(
        "Caught DataFileError in DataLoader worker process 0.\nOriginal Traceback (most "
        'recent call last):\n  File "x.py", line 1, in f\ntrain.data.files.DataFileError: '
        f"{broken}: not a readable log-mel tensor pickle"
    )
    assert user_error_message(worker) == f"{broken}: not a readable log-mel tensor pickle"
