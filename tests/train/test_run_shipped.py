import json

from train import run_shipped
from train.evaluate import COUNTERFACTUAL_SETS


def test_trains_evaluates_on_a_fresh_seed_and_tabulates(synth_root, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "shipped"
    sets = [
        "epochs=1",
        "batch_size=3",
        "num_workers=0",
        "progress=false",
        "tensorboard=false",
        "model.input_size=64",
        "model.dim=32",
        "model.bcsm_depth=1",
    ]
    argv = [
        "--data",
        str(synth_root),
        "--out",
        str(out),
        "--configs",
        "synth_tiny_no_bcsm",
        "--test-seed",
        "5",
        "--test-clips",
        "2",
        "--device",
        "cpu",
    ]
    argv += [x for s in sets for x in ("--set", s)]
    assert run_shipped.main(argv) == 0

    test_root = out / "test_seed5"
    meta = json.loads((test_root / "metadata.json").read_text())
    assert meta["seed"] == 5 and meta["size"] == 64  # the training data's frame size
    assert sorted(p.name for p in (test_root / "counterfactual").iterdir()) == sorted(
        COUNTERFACTUAL_SETS
    )
    report = json.loads((out / "synth_tiny_no_bcsm" / "eval_test_seed5.json").read_text())
    assert report["data_root"] == str(test_root) and report["setting"] == "ms3"
    lines = (out / "results.md").read_text().splitlines()
    row = next(x for x in lines if x.startswith("| synth_tiny_no_bcsm"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == f"{report['metrics']['j_legacy']:.4f}"
    assert cells[6] == f"{report['counterfactual']['silent']['fpr']:.4f}"

    def no_training(cmd):  # a finished run is evaluated again, never retrained
        raise AssertionError(f"trained again: {cmd}")

    monkeypatch.setattr(run_shipped.subprocess, "call", no_training)
    assert run_shipped.main(argv) == 0


def test_train_command_resumes_a_stopped_run(tmp_path):
    run = tmp_path / "run"
    cmd = run_shipped.train_command(tmp_path / "c.yaml", run, "DATA", 1, 5.0, ["model.dim=32"])
    assert "--config" in cmd and "data_root=DATA" in cmd and "model.dim=32" in cmd
    run.mkdir()
    (run / "last.pt").write_bytes(b"")
    cmd = run_shipped.train_command(
        tmp_path / "c.yaml", run, "DATA", 2, None, ["model.dim=32", "epochs=3"]
    )
    assert cmd[cmd.index("--resume") + 1] == str(run) and "model.dim=32" not in cmd
    assert "epochs=3" in cmd and "--nproc_per_node=2" in cmd
