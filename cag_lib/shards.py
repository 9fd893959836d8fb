"""Work cut into shards on disk: the plan of (class, index) jobs, per-job seeds, atomic writes.

A shard is a batch of jobs of one class, written as one .npz file. Writing goes to a temporary
name beside the target, then an atomic rename: a reader, or a rerun after a crash, sees a whole
shard or none. `read_shard` checks that a file holds the jobs it should.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import CorruptFileError
from .files import read_npz

MEND = "delete it and the same command makes it again"


class CorruptShardError(CorruptFileError):
    """A shard file that cannot be read back or does not hold the jobs it should."""


@dataclass(frozen=True)
class Shard:
    cls: int      # class index in the bundle
    start: int    # first image index within the class
    stop: int     # one past the last

    @property
    def name(self) -> str:
        return f"c{self.cls:04d}_i{self.start:06d}"

    @property
    def indices(self) -> list[int]:
        return list(range(self.start, self.stop))


def plan_shards(classes, per_class: int, shard_size: int) -> list[Shard]:
    """Every (class, index) job exactly once, in shards of at most shard_size jobs of one class."""
    return [Shard(c, s, min(s + shard_size, per_class))
            for c in classes for s in range(0, per_class, shard_size)]


def job_seed(seed: int, *key) -> int:
    """A deterministic 62-bit seed for (run seed, *key): the same on every machine and process."""
    digest = hashlib.sha256(":".join(map(str, (seed, *key))).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 2


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) in [0, 1] -> uint8, rounded."""
    return (images.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()



def write_atomic(path: Path, write) -> None:
    """write(file) into a temporary file beside path, then rename: a reader sees all or nothing."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_npz(path: Path, arrays: dict) -> None:
    write_atomic(path, lambda f: np.savez(f, **arrays))


def read_shard(path: Path, shard: Shard, run_id: str) -> dict:
    """A finished shard's arrays; CorruptShardError if the file is damaged or holds other jobs."""
    try:
        arrays = read_npz(path, MEND, "a sample shard")
    except CorruptFileError as e:   # truncated zip, bad CRC, not an npz at all
        raise CorruptShardError(str(e)) from None
    need = {"images", "targets", "indices", "seeds", "run_id"}
    if not need <= set(arrays):
        raise CorruptShardError(f"{path} lacks {sorted(need - set(arrays))}; {MEND}")
    if str(arrays["run_id"]) != run_id:
        raise CorruptShardError(f"{path} belongs to another run ({arrays['run_id']}); {MEND}")
    if arrays["indices"].tolist() != shard.indices or set(arrays["targets"].tolist()) != {shard.cls} \
            or len(arrays["images"]) != len(shard.indices):
        raise CorruptShardError(f"{path} does not hold the jobs of shard {shard.name}; {MEND}")
    return arrays


