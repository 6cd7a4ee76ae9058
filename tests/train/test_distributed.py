import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from train.distributed import (
    DistInfo,
    ShardedShuffleSampler,
    all_gather_objects,
    all_reduce,
    broadcast_object,
    cleanup,
    epoch_seed,
    init_distributed,
    wrap_ddp,
)


def test_sampler_is_a_function_of_seed_and_epoch():
    a = ShardedShuffleSampler(10, seed=3)
    b = ShardedShuffleSampler(10, seed=3)
    a.set_epoch(4)
    b.set_epoch(4)
    assert list(a) == list(b) and sorted(a) == list(range(10))
    b.set_epoch(5)
    assert list(a) != list(b)
    g = torch.Generator().manual_seed(epoch_seed(3, 4))  # the documented recipe, by hand
    assert list(a) == torch.randperm(10, generator=g).tolist()


def test_sampler_shards_cover_the_data_and_skip_resumes():
    shards = [ShardedShuffleSampler(7, seed=0, rank=r, world_size=3) for r in range(3)]
    for s in shards:
        s.set_epoch(2)
    got = [list(s) for s in shards]
    assert all(len(g) == 3 for g in got)  # 7 -> padded to 9 by wrapping
    flat = sorted(sum(got, []))
    assert set(flat) == set(range(7)) and len(flat) == 9
    full = got[1]
    shards[1].set_epoch(2, skip=2)
    assert list(shards[1]) == full[2:] and len(shards[1]) == 1
    with pytest.raises(ValueError, match="skip"):
        shards[1].set_epoch(2, skip=4)


def test_single_process_helpers_are_identity(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = init_distributed(use_cuda=False)
    assert info == DistInfo() and info.is_main and not info.enabled
    x = torch.tensor([2.0])
    assert all_reduce(x, info, "mean").item() == 2.0
    assert all_gather_objects("a", info) == ["a"] and broadcast_object(5, info) == 5
    m = torch.nn.Linear(2, 2)
    assert wrap_ddp(m, info, torch.device("cpu")) is m


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, results) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    info = init_distributed(use_cuda=False)
    try:
        out = {
            "sum": all_reduce(torch.tensor([rank + 1.0]), info).item(),
            "mean": all_reduce(torch.tensor([rank + 1.0]), info, "mean").item(),
            "max": all_reduce(torch.tensor([float(rank)]), info, "max").item(),
            "gather": all_gather_objects({"r": rank}, info),
            "bcast": broadcast_object(f"from {rank}", info),
        }
        # DDP averages gradients: two halves of a batch on two processes == the whole batch
        torch.manual_seed(100 + rank)  # different local init: DDP must broadcast rank 0's
        model = torch.nn.Linear(3, 1).double()
        ddp = wrap_ddp(model, info, torch.device("cpu"))
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(4, 3, generator=g).double(), torch.randn(4, 1, generator=g).double()
        half = slice(2 * rank, 2 * rank + 2)
        loss = ((ddp(x[half]) - y[half]) ** 2).mean()
        loss.backward()
        out["grad"] = [p.grad.clone() for p in model.parameters()]
        torch.manual_seed(100)  # rank 0's init, replayed
        ref = torch.nn.Linear(3, 1).double()
        ((ref(x) - y) ** 2).mean().backward()
        out["ref_grad"] = [p.grad.clone() for p in ref.parameters()]
        results[rank] = out
    finally:
        cleanup(info)


def test_two_gloo_processes():
    world, port = 2, _free_port()
    ctx = mp.get_context("spawn")
    results = ctx.Manager().dict()
    mp.start_processes(_worker, args=(world, port, results), nprocs=world, start_method="spawn")
    for rank in range(world):
        r = results[rank]
        assert (r["sum"], r["mean"], r["max"]) == (3.0, 1.5, 1.0)
        assert r["gather"] == [{"r": 0}, {"r": 1}] and r["bcast"] == "from 0"
        for got, ref in zip(r["grad"], r["ref_grad"]):
            torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


def test_torchrun_trains_with_two_cpu_processes(synth_root, tmp_path):
    """`python -m train` under torchrun: 2 gloo processes share each epoch's clips."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from train.run_state import load_state

    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "train",
        "--config",
        str(repo / "train/configs/synth_tiny.yaml"),
        "--out",
        str(out),
    ]
    sets = [
        f"data_root={synth_root}",
        "epochs=1",
        "batch_size=2",
        "num_workers=0",
        "progress=false",
        "tensorboard=false",
        "log_every=1",
        "device=cpu",
        "model.input_size=64",
        "model.dim=32",
        "model.bcsm_depth=1",
    ]
    cmd += [x for s in sets for x in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    start = records[0]
    # 5 train clips -> 3 per process (one wrapped), batch 2 -> 2 steps per epoch
    assert (start["world_size"], start["steps_per_epoch"]) == (2, 2)
    assert [r["event"] for r in records] == ["start", "train", "train", "val", "stop"]
    state = load_state(out / "last.pt")
    assert state["world_size"] == 2 and len(state["rng"]) == 2  # each process's generators
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])
    assert (out / "best" / "model.safetensors").is_file()
    # the state of a 2-process run resumes in one process (its generators are re-seeded)
    from train.__main__ import main as train_main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train_main(["--resume", str(out), "--set", "epochs=2"]) == 0
    finally:
        torch.set_num_threads(threads)
    state = load_state(out / "last.pt")
    assert (state["epoch"], state["world_size"], state["global_step"]) == (2, 1, 5)
