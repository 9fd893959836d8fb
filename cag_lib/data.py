"""Real data for the small worlds: Fashion-MNIST, read from its IDX files.

Images come back as float tensors in [0, 1], shape (N, 1, 32, 32): the 28x28 originals padded
by two black pixels on each side, so patch sizes 2, 4, 8 and 16 divide them.

Where the files are looked for, in order: the `root` argument, the `CAG_FMNIST_DIR` environment
variable, Debian's `dataset-fashion-mnist` package (/usr/share/datasets/fashion-mnist), and the
user cache (~/.cache/cag_lib/fashion-mnist). With none of them and a network, torchvision
downloads the files into the cache; offline, one error says how to get them.
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import CorruptFileError, is_offline

FMNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cag_lib" / "fashion-mnist"
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


class DataNotFoundError(FileNotFoundError):
    """Raised when a data set is neither on disk nor downloadable."""


class CorruptDataError(CorruptFileError):
    """A data file that exists but cannot be read; the message names it."""


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into a uint8 array of its stored shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    fix = "; delete it and get the file again (see cag_lib.data.fashion_mnist_dir)"
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:   # gzip.BadGzipFile, a truncated or damaged stream
        raise CorruptDataError(f"{path} cannot be read ({type(e).__name__}: {e}){fix}") from None
    if len(data) < 4 or data[0] * 256 + data[1] != 0 or data[2] != 0x08:
        raise CorruptDataError(f"{path} is not an unsigned-byte IDX file{fix}")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(data) != 4 + 4 * ndim + int(np.prod(shape)):
        raise CorruptDataError(f"{path} holds {len(data) - 4 - 4 * ndim} bytes of data, its header says "
                               f"{shape} = {int(np.prod(shape))}: the file is truncated or corrupt{fix}")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        for p in (folder / name, folder / "FashionMNIST" / "raw" / name):
            if p.exists():
                return p
    return None


def _candidate_dirs(root) -> list[Path]:
    dirs = [Path(root)] if root is not None else []
    if os.environ.get("CAG_FMNIST_DIR"):
        dirs.append(Path(os.environ["CAG_FMNIST_DIR"]))
    return dirs + [DEBIAN_DIR, CACHE_DIR]


def _download(dest: Path) -> None:
    from torchvision.datasets import FashionMNIST
    dest.mkdir(parents=True, exist_ok=True)
    FashionMNIST(str(dest), train=True, download=True)
    FashionMNIST(str(dest), train=False, download=True)


def fashion_mnist_dir(root=None, download: bool = True) -> Path:
    """The folder that holds the four Fashion-MNIST IDX files (downloading them if allowed)."""
    dirs = _candidate_dirs(root)
    for d in dirs:
        if all(_find(d, s) for pair in _FILES.values() for s in pair):
            return d
    hint = ("Fashion-MNIST was not found in: " + ", ".join(map(str, dirs)) + ".\n"
            "Fix: on Debian/Ubuntu `sudo apt-get install dataset-fashion-mnist`; or put the four "
            "*-ubyte.gz files in a folder and pass root=... (or set CAG_FMNIST_DIR); or run once "
            "with internet so torchvision downloads them to " + str(CACHE_DIR) + ".")
    if download and not is_offline() and os.environ.get("CAG_OFFLINE") != "1":
        try:
            _download(CACHE_DIR)
            return CACHE_DIR
        except Exception as e:  # no network, proxy, ...: one clear error instead
            raise DataNotFoundError(hint + f"\n(The download failed: {type(e).__name__}: {e})") from None
    raise DataNotFoundError(hint)


def load_fashion_mnist(split: str = "train", root=None, download: bool = True,
                       size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST as (images (N, 1, size, size) float in [0, 1], labels (N,) int64)."""
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    folder = fashion_mnist_dir(root, download)
    img_stem, lbl_stem = _FILES[split]
    x = torch.from_numpy(read_idx(_find(folder, img_stem)).copy()).float().div_(255)  # (N, 28, 28)
    y = torch.from_numpy(read_idx(_find(folder, lbl_stem)).astype(np.int64))
    x = F.pad(x[:, None], (2, 2, 2, 2))  # (N, 1, 32, 32): the black border the originals already have
    if size != 32:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x, y


# --- the small worlds, uniformly -------------------------------------------------------------
WORLDS = ("fmnist", "shapes")


def world_classes(world: str) -> tuple[str, ...]:
    """Class names of a small world's classification task."""
    if world == "fmnist":
        return FMNIST_CLASSES
    if world == "shapes":
        from .shapes import SHAPES
        return SHAPES
    raise ValueError(f"unknown world {world!r}; valid: {', '.join(WORLDS)}")


def load_world(world: str, split: str = "train", n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, C, 32, 32) in [0, 1], labels (N,)) of a small world's split; the first n if given.

    For `shapes` the label is the shape; the other attributes are in `cag_lib.shapes.load_shapes`."""
    world_classes(world)  # validates the name
    if world == "fmnist":
        x, y = load_fashion_mnist(split)
        return (x[:n], y[:n]) if n else (x, y)
    from .shapes import load_shapes
    d = load_shapes(split, n=n)
    return d.images, d.labels["shape"]
