"""Every file the library reads, read one way: a file that is there but damaged, truncated, empty
or of another kind gives one CorruptFileError that names it, says what is wrong and how to mend it,
never a raw error from deep inside json, numpy, torch or safetensors.

    read_json(path, mend)            # results, manifests
    read_npz(path, mend)             # stored sample sets
    save_checked / load_checked      # caches of tensors, with a checksum of their contents (torch.load
                                     # reads a file with flipped bytes without a word)
    read_or_explain(path, read, what, mend)   # anything else: read(path), or the one error

and one rule for the folders the commands write into: `hold_folder(out, what)` keeps a second live
run out of a folder that one run is writing (FolderInUseError), so neither overwrites the other.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import CorruptFileError, FolderInUseError

try:
    import fcntl                              # advisory file locks (Linux, macOS)
except ImportError:                           # Windows
    fcntl = None

__all__ = ["CorruptFileError", "FolderInUseError", "read_or_explain", "read_json", "read_npz", "save_checked",
           "load_checked", "hold_folder"]


def read_or_explain(path, read: Callable, what: str, mend: str):
    """read(path); if that fails for any reason but a missing file, one CorruptFileError:
    '{path} is empty / cannot be read as {what} ({the error}); {mend}'."""
    path = Path(path)
    try:
        return read(path)
    except (FileNotFoundError, PermissionError, IsADirectoryError, MemoryError, CorruptFileError):
        raise                # missing, unreadable or too big: not a damaged file
    except Exception as e:   # json, zip, pickle, safetensors, unicode: all mean a damaged file here
        size = path.stat().st_size if path.exists() else 0
        detail = str(e).split("\n")[0].split(". ")[0][:160]          # the first sentence of the cause
        problem = "is empty" if size == 0 else f"cannot be read as {what} ({type(e).__name__}: {detail})"
        raise CorruptFileError(f"{path} {problem}; {mend}") from None


def read_json(path, mend: str, what: str = "JSON") -> dict:
    """A JSON object (every JSON file the library reads is one)."""
    def read(p):
        value = json.loads(p.read_text(encoding="utf-8"))
        if not isinstance(value, dict):
            raise ValueError(f"it holds a JSON {type(value).__name__}, not an object")
        return value
    return read_or_explain(path, read, what, mend)


def read_npz(path, mend: str, what: str = "a NumPy .npz archive") -> dict:
    """Every array of an .npz file (its zip checksums catch flipped bytes)."""
    def read(p):
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    return read_or_explain(path, read, what, mend)


def _digest(tensors: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(k.encode() + str(tuple(t.shape)).encode() + str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checked(path, tensors: dict) -> None:
    """torch.save of {name: tensor} with a sha256 of their contents, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"tensors": tensors, "sha256": _digest(tensors)}, tmp)
    tmp.replace(path)


def load_checked(path, mend: str, what: str = "a cag_lib cache of tensors") -> dict:
    """{name: tensor} that save_checked wrote; CorruptFileError if damaged or another kind of file."""
    def read(p):
        d = torch.load(p, map_location="cpu", weights_only=True)
        if not isinstance(d, dict) or set(d) != {"tensors", "sha256"}:
            raise ValueError("it is not a file that cag_lib wrote")
        if _digest(d["tensors"]) != d["sha256"]:
            raise ValueError("its contents do not match their checksum")
        return d["tensors"]
    return read_or_explain(path, read, what, mend)


LOCK = ".lock"


@contextmanager
def hold_folder(folder, what: str):
    """Create `folder` and hold it for this run: an exclusive lock on <folder>/.lock (flock), which
    names the holder (what, pid, host, since). A second run while one holds it gets FolderInUseError
    naming the holder. The kernel drops the lock when the holder ends, however it ends (killed
    outright too), so a stale lock cannot keep a folder. (Windows has no flock: runs there are not
    kept apart.)"""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK
    me = {"what": what, "pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FolderInUseError(_in_use(folder, lock, _read_holder(lock))) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(me).encode())
        yield folder
    finally:
        os.close(fd)                           # releases the lock


def _read_holder(lock: Path) -> dict | None:
    try:
        got = json.loads(lock.read_text())
        return got if isinstance(got, dict) else None
    except (OSError, ValueError):          # being written this instant: held, holder unknown
        return None


def _in_use(folder: Path, lock: Path, holder: dict | None) -> str:
    who = (f"{holder.get('what')} (pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')})"
           if holder else "another run")
    return (f"{folder} is in use by {who}: two runs in one folder would overwrite each other's files. Wait for "
            f"it to finish, or give another folder")
