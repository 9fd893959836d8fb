"""Processes for the sampling command: torchrun's environment, a process group, the device,
threads, and SIGTERM treated as Ctrl-C."""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import resolve_device


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1


def init_distributed() -> Dist:
    """torchrun's environment -> a process group (nccl on GPUs, gloo on CPUs); one process: none."""
    env = os.environ
    d = Dist(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)),
             int(env.get("LOCAL_WORLD_SIZE", env.get("WORLD_SIZE", 1))))
    if d.active and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(d.local_rank)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return d


def barrier(d: Dist) -> None:
    if d.active:
        dist.barrier()


def broadcast(d: Dist, obj):
    """rank 0's obj on every rank."""
    if not d.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def pick_device(name: str, d: Dist) -> torch.device:
    """'auto': this process's GPU (cuda:LOCAL_RANK), else Apple's mps, else the CPU."""
    try:
        return resolve_device(name, d.local_rank)
    except ValueError as e:
        raise ValueError(f"--{e}") from None


def sigterm_as_interrupt() -> None:
    """SIGTERM (a scheduler's stop, torchrun passing on Ctrl-C) behaves like Ctrl-C: the shard in
    progress is dropped, the finished ones stay."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def set_threads(threads: int, d: Dist, device: torch.device) -> int:
    """torch's CPU threads for this process: given, or the cores shared among this node's processes."""
    n = threads or max(1, (os.cpu_count() or 1) // d.local_world)
    torch.set_num_threads(n)
    return n


