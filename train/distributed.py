"""Multi-process training helpers: `torchrun --nproc_per_node=N -m train ...` runs DDP.

One process per device; nccl on CUDA, gloo on CPU. A single process (no torchrun) gets a
`DistInfo` with world_size 1, and every helper here is then a no-op, so the trainer has one path.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, Sampler


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The device a name means: auto -> cuda if available, else cpu; a bare cuda -> this
    process's GPU (its local rank)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} asked for, but CUDA is not available; use cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def init_distributed(use_cuda: bool) -> DistInfo:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
    MASTER_PORT in the environment); without WORLD_SIZE > 1, a single-process DistInfo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        if local >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA device(s); start "
                "torchrun with --nproc_per_node <= the number of GPUs"
            )
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world)
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce(x: torch.Tensor, info: DistInfo, op: str = "sum") -> torch.Tensor:
    """Sum ("sum"), mean ("mean") or max ("max") of `x` over processes (in place; returns x)."""
    if info.enabled:
        reduce_op = dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM
        dist.all_reduce(x, op=reduce_op)
        if op == "mean":
            x /= info.world_size
    return x


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """[obj of rank 0, obj of rank 1, ...] on every process (picklable objects)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: DistInfo, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every process."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def wrap_ddp(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around `model` (broadcasting rank 0's weights), or `model`."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    # ablations and a backbone frozen for some epochs leave parameters without gradients
    return DistributedDataParallel(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=True,
    )


def epoch_seed(seed: int, epoch: int) -> int:
    """One 63-bit seed per (seed, epoch) pair: the order of epoch e is fixed by the pair alone."""
    return (seed * 1_000_003 + epoch * 7_919 + 17) % (2**63 - 1)


class ShardedShuffleSampler(Sampler[int]):
    """Shuffled indices for one process: a permutation drawn from a torch.Generator seeded by
    (seed, epoch), padded by wrapping to a multiple of world_size, and strided by rank (as
    `DistributedSampler`). `set_epoch(epoch, skip)` drops this process's first `skip` indices,
    which is how a run resumed in the middle of an epoch sees exactly the batches it had left.
    With `pairs=True` it yields (epoch, index) for an `EpochSeeded` data set.
    """

    def __init__(
        self,
        num_samples: int,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        pairs: bool = False,
    ) -> None:
        if num_samples < 1:
            raise ValueError("ShardedShuffleSampler: the data set is empty")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside [0, {world_size})")
        self.num_samples, self.seed = num_samples, seed
        self.rank, self.world_size = rank, world_size
        self.shuffle, self.pairs = shuffle, pairs
        self.per_rank = math.ceil(num_samples / world_size)
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        if not 0 <= skip <= self.per_rank:
            raise ValueError(f"skip={skip} outside [0, {self.per_rank}]")
        self.epoch, self.skip = epoch, skip

    def indices(self) -> list[int]:
        """This process's full index list for the current epoch (before `skip`)."""
        n = self.num_samples
        if self.shuffle:
            g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
            order = torch.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        total = self.per_rank * self.world_size
        order = (order * math.ceil(total / n))[:total]  # wrap so every rank gets per_rank
        return order[self.rank :: self.world_size]

    def __iter__(self):
        left = self.indices()[self.skip :]
        return iter([(self.epoch, i) for i in left] if self.pairs else left)

    def __len__(self) -> int:
        return self.per_rank - self.skip


class EpochSeeded(Dataset):
    """`dataset` read with (epoch, index) keys: item `index` of epoch `epoch` draws its random
    numbers (augmentation) from torch's CPU generator seeded by (seed, epoch, index), and the
    caller's generator state is restored afterwards. So an item is a function of (seed, epoch,
    index) alone: the same in any worker, with any number of workers, before or after a resume.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((epoch_seed(self.seed, epoch) * 1_000_033 + index) % (2**63 - 1))
            return self.dataset[index]
