"""The main job for now: look at the small worlds and their model zoo.

    python -m cag_lib.demo --out outputs/demo [--bundle fmnist shapes] [--n 2000]

For each bundle it writes <out>/<bundle>_samples.png (test images, one row per class),
<out>/<bundle>_mae.png (original / masked / reconstruction / decoder output) and prints the test
accuracy of every classifier, and of the held-out judge on MAE reconstructions of real test images
(how much of an image's meaning the reconstruction keeps). Numbers go to <out>/summary.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from .data import load_world
from .models import accuracy
from .viz import mae_rows, rows_figure
from .zoo import BUNDLES, load_bundle


def first_per_class(labels: torch.Tensor, num_classes: int, k: int) -> torch.Tensor:
    """Indices of the first k examples of every class, class by class: (num_classes * k,)."""
    return torch.cat([torch.nonzero(labels == c)[:k, 0] for c in range(num_classes)])


@torch.no_grad()
def judge_on_reconstructions(bundle, images, labels, mask_ratio=0.75, seed=0, batch_size=500) -> float:
    """Judge accuracy on g(x) of real images: 1.0 would mean the MAE keeps every image's class."""
    g = torch.Generator().manual_seed(seed)
    recs = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size]
        recs.append(bundle.mae.reconstruct(x, mask_ratio, noise=bundle.mae.mask_noise(len(x), g)))
    return accuracy(bundle.judge, torch.cat(recs), labels)


def summarise(name: str, out: Path, n: int) -> dict:
    b = load_bundle(name)
    x, y = load_world(b.spec.world, "test")
    x, y = x[:n], y[:n]
    row = {f"{c.name} (source) acc": accuracy(c, x, y) for c in b.classifiers}
    row[f"{b.judge.name} (judge) acc"] = accuracy(b.judge, x, y)
    row["judge acc on MAE reconstructions @0.75"] = judge_on_reconstructions(b, x, y)
    k = 8
    idx = first_per_class(y, len(b.class_names), k)
    rows_figure({cname: x[idx[i * k:(i + 1) * k]] for i, cname in enumerate(b.class_names)},
                out / f"{name}_samples.png", title=f"{name}: test images, one row per class")
    show = x[first_per_class(y, len(b.class_names), 1)]
    rows_figure(mae_rows(b.mae, show), out / f"{name}_mae.png",
                title=f"{name}: MAE at mask ratio 0.75 (one test image per class)", scale=3)
    return {k: round(v, 4) for k, v in row.items()}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m cag_lib.demo", description=__doc__.split("\n")[0])
    p.add_argument("--bundle", nargs="+", default=list(BUNDLES), choices=list(BUNDLES))
    p.add_argument("--out", default="outputs/demo")
    p.add_argument("--n", type=int, default=2000, help="test images to measure on")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for name in a.bundle:
        summary[name] = summarise(name, out, a.n)
        print(f"\n{name} ({a.n} test images)")
        for k, v in summary[name].items():
            print(f"  {k:<42} {v:.4f}")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\npictures and summary.json in {out}/")


if __name__ == "__main__":
    main()
