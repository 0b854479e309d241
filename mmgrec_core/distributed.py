"""One training run over several processes: PyTorch distributed, started by `torchrun`.

    torchrun --standalone --nproc_per_node 2 -m mmgrec_core train --dataset demo --out runs/demo

`torchrun` starts N copies of the CLI with RANK, WORLD_SIZE and LOCAL_RANK set; `start()` joins them into one
process group (NCCL on CUDA, one GPU per process; gloo on CPU). Rank 0 does everything that reads or writes the
run directory's state: config, tokenizer, checkpoints, validation, baselines, metrics. The generator's steps are
shared: every rank draws the same global batch and takes its own rows of it, and DistributedDataParallel averages
the gradients, weighted so that the step is the one a single process takes on the whole batch. Without
WORLD_SIZE (a plain `python -m mmgrec_core train`) the world is one process and nothing changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

# How long the other ranks wait for rank 0's single-process stages (tokenizer, validation) before giving up.
STAGE_TIMEOUT = timedelta(hours=3)


@dataclass(frozen=True)
class World:
    """This process's place in the job: rank 0 of 1 outside torchrun."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """The one process that writes the run directory."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def broadcast(self, value):
        """Rank 0's `value` on every rank (any picklable object)."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sum(self, value: float) -> float:
        """The sum of a number over all ranks."""
        if self.size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=_device())
        dist.all_reduce(t)
        return float(t.item())

    def rows(self, n: int) -> slice:
        """This rank's rows of a global batch of n rows: every size-th one, starting at its rank."""
        return slice(self.rank, n, self.size)


SINGLE = World()


def start() -> World:
    """Join the process group torchrun describes in the environment; a world of one without it."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return SINGLE
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=STAGE_TIMEOUT)
    return World(rank=dist.get_rank(), size=dist.get_world_size())


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _device() -> torch.device:
    return torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
