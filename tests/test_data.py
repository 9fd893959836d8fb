import gzip

import numpy as np
import pytest
import torch

from cag_lib import data
from cag_lib.data import DataNotFoundError, load_fashion_mnist, read_idx


def write_idx(path, arr):
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_read_idx_roundtrip(tmp_path):
    arr = np.arange(2 * 3 * 4).reshape(2, 3, 4) % 256
    write_idx(tmp_path / "x.gz", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz"), arr)


def test_read_idx_rejects_other_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04" + bytes(16))
    with pytest.raises(ValueError, match="IDX"):
        read_idx(tmp_path / "bad")


def test_loader_reads_a_folder_and_pads_to_32(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 5), ("t10k", 3)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,)))
    x, y = load_fashion_mnist("test", root=tmp_path, download=False)
    assert x.shape == (3, 1, 32, 32) and y.shape == (3,) and y.dtype == torch.int64
    assert x[:, :, :2].abs().sum() == 0 and x[:, :, :, -2:].abs().sum() == 0  # the padded border
    raw = read_idx(tmp_path / "t10k-images-idx3-ubyte.gz")
    torch.testing.assert_close(x[:, 0, 2:30, 2:30], torch.from_numpy(raw.copy()).float() / 255)


def test_real_fashion_mnist(fmnist_test):
    x, y = fmnist_test
    assert x.shape == (10000, 1, 32, 32) and x.min() >= 0 and x.max() <= 1
    assert torch.bincount(y).tolist() == [1000] * 10  # the test split is balanced


def test_offline_without_files_gives_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "none1")
    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "none2")
    monkeypatch.delenv("CAG_FMNIST_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train")


def test_failed_download_gives_the_same_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "none1")
    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "none2")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("CAG_OFFLINE", raising=False)

    def no_network(dest):
        raise OSError("network unreachable")
    monkeypatch.setattr(data, "_download", no_network)
    with pytest.raises(DataNotFoundError, match="(?s)CAG_FMNIST_DIR.*network unreachable"):
        load_fashion_mnist("test")


def test_bad_split_and_world():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_fashion_mnist("val")
    with pytest.raises(ValueError, match="fmnist, shapes"):
        data.load_world("cifar")
