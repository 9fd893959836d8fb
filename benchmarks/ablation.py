"""Ablation of the CaG recipe on a small world, judged by the held-out judge.

    python benchmarks/ablation.py [--bundle fmnist] [--steps 250] [--per-class 8] [--workers 2] \
        [--json outputs/ablation/ablation.json] [--out outputs/ablation] [--rows eq1 "CaG full"]

Every row generates the same targets (each class x per-class) from the same start noise (seed 0)
and is measured on the same numbers: source accuracy, judge accuracy and confidence, Frechet
distance to real test images in the judge's feature space, intra-class diversity of judge
features (real test images give the reference), seconds. The image judged and shown is the
reconstruction g(x) (mean over 4 masks) for rows with an MAE and x for rows without one, unless
--show x. A grid per row is written to --out.

Rows run in --workers processes with one thread each: on a 2-core CPU two one-thread runs side by
side finish sooner than one two-thread run after another. A row's seconds are its own wall time.
"""
from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import replace
from pathlib import Path

import torch

from cag_lib import bench
from cag_lib.generate import GenerateConfig
from cag_lib.metrics import format_table
from cag_lib.recipes import ABLATION_ROWS, RECIPES, run_recipe
from cag_lib.stats import bundle_class_stats
from cag_lib.zoo import load_bundle

FULL = RECIPES["CaG full"]
ROWS = RECIPES


def run_row(name: str, cfg: GenerateConfig, bundle: str, per_class: int, show: str, out: str,
            threads: int) -> tuple[str, dict]:
    """Generate and measure one row (runs in a worker process)."""
    torch.set_num_threads(threads)
    b = load_bundle(bundle)
    row, _, _ = run_recipe(b, name, replace(cfg, progress=False), per_class, 2000, out, show)
    return name, row


def main(argv=None):
    p = bench.parser(__doc__)
    p.add_argument("--bundle", default="fmnist")
    p.add_argument("--steps", type=int, default=FULL.steps)
    p.add_argument("--per-class", type=int, default=8)
    p.add_argument("--rows", nargs="+", default=ABLATION_ROWS, choices=list(ROWS))
    p.add_argument("--show", choices=["x", "g(x)"], default="g(x)",
                   help="judge and show g(x) where the row has an MAE (default) or always x")
    p.add_argument("--workers", type=int, default=2, help="rows run side by side, one thread each")
    p.add_argument("--json", default="outputs/ablation/ablation.json")
    p.add_argument("--out", default="outputs/ablation")
    a = p.parse_args(argv)
    bench.set_threads(a.threads)

    t0 = time.time()
    b = load_bundle(a.bundle)
    for i in range(len(b.classifiers)):  # measure (or read) the class statistics once, before the workers
        bundle_class_stats(b, i)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    jobs = [(name, replace(ROWS[name], steps=a.steps), a.bundle, a.per_class, a.show, a.out,
             1 if a.workers > 1 else torch.get_num_threads()) for name in a.rows]
    if a.workers > 1:
        with mp.get_context("spawn").Pool(a.workers) as pool:
            done = dict(pool.starmap(run_row, jobs, chunksize=1))
    else:
        done = dict(run_row(*j) for j in jobs)
    rows = {name: done[name] for name in a.rows}
    total = time.time() - t0
    print(format_table(rows))
    print(f"total {total:.0f} s with {a.workers} worker(s); real test images' diversity in the judge's "
          f"features: {next(iter(rows.values()))['real_diversity']:.2f}")
    bench.write_report(a.json, {"bundle": a.bundle, "steps": a.steps, "per_class": a.per_class,
                                "workers": a.workers, "total_seconds": round(total, 1), "rows": rows})


if __name__ == "__main__":
    main()
