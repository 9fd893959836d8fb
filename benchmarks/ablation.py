"""Ablation of the CaG recipe on a small world, judged by the held-out judge.

    python benchmarks/ablation.py [--bundle fmnist] [--steps 300] [--per-class 8] \
        [--json outputs/ablation/ablation.json] [--out outputs/ablation] [--rows eq1 "CaG full"]

Every row generates the same targets (each class x per-class) from the same start noise (seed 0)
and is measured on the same numbers: source accuracy, judge accuracy and confidence, Frechet
distance to real test images in the judge's feature space, intra-class diversity of judge
features (real test images give the reference), seconds. A grid per row is written to --out.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cag_lib.data import load_world  # noqa: E402
from cag_lib.generate import GenerateConfig, generate  # noqa: E402
from cag_lib.metrics import evaluate, format_table  # noqa: E402
from cag_lib.stats import class_feature_stats  # noqa: E402
from cag_lib.viz import rows_figure  # noqa: E402
from cag_lib.zoo import load_bundle  # noqa: E402

FULL = GenerateConfig(use_mae=True, resolutions=(8, 16, 32), diversity_weight=0.5, distribution_weight=0.5)
ROWS = {
    "eq1": replace(FULL, use_mae=False, resolutions=(32,), classifiers=(0,), diversity_weight=0,
                   distribution_weight=0),
    "no-MAE control (ens+prog+blur)": replace(FULL, use_mae=False, blur_sigma=1.0, diversity_weight=0,
                                              distribution_weight=0),
    "CaG (MAE only)": replace(FULL, resolutions=(32,), classifiers=(0,), diversity_weight=0, distribution_weight=0),
    "CaG full": FULL,
    "full - MAE": replace(FULL, use_mae=False),
    "full - progressive": replace(FULL, resolutions=(32,)),
    "full - diversity": replace(FULL, diversity_weight=0),
    "full - distribution": replace(FULL, distribution_weight=0),
    "full - ensemble": replace(FULL, classifiers=(0,)),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bundle", default="fmnist")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--per-class", type=int, default=8)
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--show", choices=["x", "g(x)"], default="x", help="which image is judged and shown")
    p.add_argument("--json", default="outputs/ablation/ablation.json")
    p.add_argument("--out", default="outputs/ablation")
    a = p.parse_args(argv)

    b = load_bundle(a.bundle)
    k = len(b.class_names)
    targets = torch.arange(k).repeat_interleave(a.per_class)
    x_train, y_train = load_world(b.spec.world, "train")
    x_real, y_real = load_world(b.spec.world, "test", 2000)
    stats = [class_feature_stats(c, x_train, y_train, k, cache_key=f"{b.name}_{c.name}_{b.manifest[c.name]['sha256'][:12]}")
             for c in b.classifiers]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name in a.rows:
        cfg = replace(ROWS[name], steps=a.steps)
        used = stats if cfg.classifiers is None else [stats[i] for i in cfg.classifiers]
        res = generate(b, targets, cfg, class_stats=used)
        shown = res.reconstructions if (a.show == "g(x)" and res.reconstructions is not None) else res.images
        row = evaluate(b, shown, targets, x_real, y_real)
        row.update(seconds=round(res.seconds, 1), shown="g(x)" if shown is res.reconstructions else "x")
        rows[name] = row
        per = {c: shown[targets == i][: a.per_class] for i, c in enumerate(b.class_names)}
        slug = name.replace(" ", "_").replace("(", "").replace(")", "").replace("+", "")
        rows_figure(per, out / f"{slug}.png", title=f"{name}: judge acc {row['judge_acc']:.2f}, fd {row['fd']:.1f}")
        print(f"{name}: {row}", flush=True)
    print(format_table(rows))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps({"steps": a.steps, "per_class": a.per_class, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
