"""The library's error types, the offline check and the device check: one small module that every
other imports from, and that imports nothing of cag_lib."""
from __future__ import annotations

import os
import socket

import torch

OFFLINE_HINT = ("the 'fmnist' and 'shapes' bundles ship with cag_lib and work offline "
                "(load_bundle('fmnist')); or pass local files: checkpoints={timm name: path, 'mae': path}")


class OfflineError(RuntimeError):
    """Weights that need the internet, asked for without it."""


class CorruptFileError(ValueError):
    """A file the library reads is there but damaged, truncated, empty or of another kind; the
    message names the file, says what is wrong with it and how to mend it."""


class FolderInUseError(RuntimeError):
    """Another live run is writing into the output folder a run was given."""


class NonFiniteError(FloatingPointError):
    """The sampler's objective or images became inf or NaN."""


def is_offline() -> bool:
    """HF_HUB_OFFLINE read the way huggingface_hub reads it: 1, ON, YES or TRUE (any case)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def require_hub(what: str, host: str = "huggingface.co", timeout: float = 3.0) -> None:
    """Fail at once, naming `what`, if downloads are off (HF_HUB_OFFLINE) or `host` cannot be
    reached, instead of retrying a download for a minute."""
    if is_offline():
        raise OfflineError(f"{what} needs {host}, and HF_HUB_OFFLINE is set; " + OFFLINE_HINT)
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as e:
        raise OfflineError(f"{what} needs {host}, which cannot be reached ({type(e).__name__}: {e}); "
                           + OFFLINE_HINT) from e


def resolve_device(device="auto", local_rank: int = 0) -> torch.device:
    """'auto' (this process's GPU, else Apple's mps, else the CPU), 'cpu', 'cuda', 'cuda:N', 'mps' or
    a torch.device -> torch.device; an unknown name or a GPU that is not there is a ValueError."""
    name = str(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: no CUDA GPU is visible here; use device='auto' or 'cpu'")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps': no Apple GPU here; use device='auto' or 'cpu'")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise ValueError(f"device {name!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    try:
        return torch.device("cuda", local_rank) if name == "cuda" else torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"device {name!r}: {e}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
