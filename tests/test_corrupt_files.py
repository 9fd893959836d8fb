"""Every kind of file the library reads: damaged, truncated, empty or of another kind, it gives one
CorruptFileError that names the file and says how to mend it (cag_lib.files)."""
import gzip
import json
import re
import shutil
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from cag_lib import bench, clip, data, mae, metrics, panel, sample, shards, stats, zoo
from cag_lib.errors import CorruptFileError
from cag_lib.files import save_checked

ROOT = Path(__file__).parents[1]
MEND = re.compile(r"delete|reinstall|restore|again|another folder|give another")


def _idx(tmp):
    p = tmp / "t10k-labels-idx1-ubyte.gz"
    p.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + (300).to_bytes(4, "big") + bytes(range(250)) + bytes(50)))
    return p, lambda: data.read_idx(p)


def _stats(tmp, monkeypatch):
    monkeypatch.setattr(stats, "CACHE", tmp)
    save_checked(stats._cache("k"), {"mean": torch.randn(3, 64), "std": torch.rand(3, 64)})
    return stats._cache("k"), lambda: stats.class_feature_stats(None, None, None, 3, cache_key="k")


def _grams(tmp, monkeypatch):
    monkeypatch.setattr(stats, "CACHE", tmp)
    save_checked(stats._cache("k", "_gram"), {"grams": torch.randn(3, 8, 8)})
    return stats._cache("k", "_gram"), lambda: stats.class_gram_stats(None, None, None, 3, cache_key="k")


def _manifest(tmp):
    shutil.copy(zoo.WEIGHTS_DIR / "manifest.json", tmp / "manifest.json")
    return tmp / "manifest.json", lambda: zoo.read_manifest(tmp)


def _weights(tmp):
    entry = zoo.read_manifest()["fmnist"]["vit"]
    (tmp / "fmnist").mkdir()
    shutil.copy(zoo.WEIGHTS_DIR / entry["file"], tmp / entry["file"])
    return tmp / entry["file"], lambda: zoo.load_entry(entry, tmp)


def _sample_set(tmp):
    np.savez(tmp / "a_row.npz", images=np.zeros((4, 1, 32, 32), np.uint8), targets=np.arange(4),
             meta=json.dumps({"command": "x"}))
    return tmp / "a_row.npz", lambda: panel.load_sample_set("a row", folder=tmp)


def _results(tmp):
    shutil.copy(ROOT / "benchmarks" / "results" / "ablation_fmnist.json", tmp / "ablation.json")
    return tmp / "ablation.json", lambda: metrics.ablation_markdown(tmp / "ablation.json")


def _bench_json(tmp):
    (tmp / "r.json").write_text(json.dumps({"rows": {"a": 1}, "command": "x"}))
    return tmp / "r.json", lambda: bench.merged_rows(tmp / "r.json", {"rows": {}})


def _shard(tmp):
    s = shards.Shard(cls=0, start=0, stop=2)
    shards.save_npz(tmp / "s.npz", dict(images=np.zeros((2, 1, 32, 32), np.uint8), targets=np.zeros(2, int),
                                        indices=np.arange(2), seeds=np.arange(2), run_id=np.array("r")))
    return tmp / "s.npz", lambda: shards.read_shard(tmp / "s.npz", s, "r")


def _run_manifest(tmp):
    spec = types.SimpleNamespace(identity=lambda: {"bundle": "fmnist"}, run_id=lambda: "r")
    sample.check_manifest(tmp, spec, {})
    return tmp / "run.json", lambda: sample.check_manifest(tmp, spec, {})


def _mae_checkpoint(tmp):
    m = mae.MaskedAutoencoder(img_size=32, patch_size=8, in_chans=1, embed_dim=16, depth=1, num_heads=2,
                              decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
    torch.save({"model": m.state_dict()}, tmp / "mae.pth")
    return tmp / "mae.pth", lambda: mae.load_checkpoint(m, tmp / "mae.pth")


def _clip_state(tmp):
    torch.save({"w": torch.randn(64, 64)}, tmp / "clip.pt")
    return tmp / "clip.pt", lambda: clip.load_state(tmp / "clip.pt")


def _training_checkpoint(tmp):
    from cag_lib.train import TrainConfig, checkpoint_path, resume, save_checkpoint
    cfg = TrainConfig(name="r", out=str(tmp), checkpoint_every=2)
    model = torch.nn.Linear(2, 2)
    save_checkpoint(cfg, 2, [torch.arange(3)], 1.0, torch.Generator(), model)
    return checkpoint_path(cfg), lambda: resume(cfg, torch.Generator(), model)


# kind -> (make a good file, the corruptions it must survive). A checkpoint that the user brings has no
# checksum, so bytes flipped inside its tensors cannot be told from other weights: no "flipped" there.
ALL = ("truncated", "empty", "flipped", "foreign")
KINDS = {
    "Fashion-MNIST IDX (.gz)": (_idx, ALL),
    "class statistics cache": (_stats, ALL),
    "class Gram matrices cache": (_grams, ALL),
    "weights manifest": (_manifest, ALL),
    "shipped weights (.safetensors)": (_weights, ALL),
    "stored sample set (.npz)": (_sample_set, ALL),
    "stored results (JSON)": (_results, ALL),
    "a benchmark's JSON": (_bench_json, ALL),
    "sample shard (.npz)": (_shard, ALL),
    "sampling run manifest": (_run_manifest, ALL),
    "MAE checkpoint (.pth)": (_mae_checkpoint, ("truncated", "empty", "foreign")),
    "CLIP state dict (.pt)": (_clip_state, ("truncated", "empty", "foreign")),
    "training checkpoint (.pt)": (_training_checkpoint, ("truncated", "empty", "foreign")),
}


def corrupt(path: Path, how: str) -> None:
    b = bytearray(path.read_bytes())
    if how == "truncated":
        b = b[: len(b) // 2]
    elif how == "empty":
        b = b""
    elif how == "flipped":   # at a quarter, a half and three quarters: not all of it zip padding
        for at in (len(b) // 4, len(b) // 2, 3 * len(b) // 4):
            b[at:at + 16] = bytes(x ^ 0xFF for x in b[at:at + 16])
    else:   # another kind of file under this name: a PNG's signature and some text
        b = b"\x89PNG\r\n\x1a\n" + b"not what you think" * 8
    path.write_bytes(bytes(b))


CASES = [(k, how) for k, (_, hows) in KINDS.items() for how in hows]


@pytest.mark.parametrize("kind,how", CASES, ids=[f"{k}-{h}" for k, h in CASES])
def test_a_damaged_file_is_named_with_what_is_wrong_and_the_mend(kind, how, tmp_path, monkeypatch):
    make = KINDS[kind][0]
    path, read = make(tmp_path, monkeypatch) if "monkeypatch" in make.__code__.co_varnames else make(tmp_path)
    read()                                               # the good file reads
    corrupt(path, how)
    with pytest.raises(CorruptFileError) as e:
        read()
    msg = str(e.value)
    assert (str(path) in msg or path.name in msg) and MEND.search(msg), msg


def test_every_reader_in_the_library_goes_through_cag_lib_files():
    """A file kind added later joins the test above by default: a raw reader (json, numpy, torch,
    safetensors) anywhere in the library fails here until it reads through cag_lib.files, that is in
    files.py, inside a function named read... or _read... (what read_or_explain is handed), or in a
    lambda on a read_or_explain line."""
    import ast
    raw = re.compile(r"torch\.load\(|np\.load\(|load_file\(|safe_open\(|json\.loads?\(.*read_text")
    found = []
    for p in sorted((ROOT / "cag_lib").glob("*.py")):
        if p.name == "files.py":
            continue
        lines = p.read_text().splitlines()
        readers = [range(f.lineno, f.end_lineno + 1) for f in ast.walk(ast.parse(p.read_text()))
                   if isinstance(f, ast.FunctionDef) and f.name.lstrip("_").startswith("read")]
        found += [f"{p.name}:{i}" for i, line in enumerate(lines, 1)
                  if raw.search(line) and "read_or_explain(" not in line and not any(i in r for r in readers)]
    assert not found, f"read these through cag_lib.files (and add the kind to KINDS): {found}"
