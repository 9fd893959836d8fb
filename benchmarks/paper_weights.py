"""The weights of eq. 4 and eq. 6 in their paper forms, chosen on the validation judge alone.

Eq. 4 as written sums raw inner products over all same-class pairs, and eq. 6 sums squared errors
over every feature: both have another scale than the book's forms (a mean cosine, a mean over
features), so the book's weight of 1 does not carry over. This sweeps the two weights of
"CaG (paper)" on 25 images of each of five classes (25 is the sampling command's batch, so eq. 4
counts as many pairs as in the panel's runs), shows x (the paper's picture), and keeps the pair
with the lowest Fréchet distance in the validation judge's features (ties: the higher accuracy).
No test judge is read.

    python benchmarks/paper_weights.py            # -> benchmarks/results/paper_weights_fmnist.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch

from cag_lib import bench
from cag_lib.panel import VALIDATION, judge_row, reference_features
from cag_lib.recipes import recipe
from cag_lib.generate import generate
from cag_lib.zoo import load_bundle

OUT = Path(__file__).resolve().parent / "results" / "paper_weights_fmnist.json"
DIV = (1e-6, 1e-5, 1e-4)
DIST = (0.01, 1.0)
CLASSES = (0, 2, 4, 6, 8)
PER_CLASS = 25


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=250)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    b = load_bundle("fmnist")
    refs = reference_features({VALIDATION: b.judge})
    done = json.loads(OUT.read_text())["settings"] if OUT.exists() else {}
    for w_div, w_dist in itertools.product(DIV, DIST):
        key = f"div {w_div:g}, dist {w_dist:g}"
        if key in done:
            continue
        t0, xs, ys = time.time(), [], []
        for c in CLASSES:      # one class per batch, as the sampling command's shards
            cfg = recipe("CaG (paper)", diversity_weight=w_div, distribution_weight=w_dist, steps=a.steps,
                         seed=c, progress=False)
            res = generate(b, [c] * PER_CLASS, cfg)
            xs.append(res.images)
            ys.append(res.targets)
        row = judge_row(b.judge, torch.cat(xs), torch.cat(ys), refs[VALIDATION])
        done[key] = {"diversity_weight": w_div, "distribution_weight": w_dist, "acc": row["acc"], "fd": row["fd"],
                     "recall": row["recall"], "diversity": row["diversity"], "seconds": round(time.time() - t0, 1)}
        print(key, {k: round(v, 3) for k, v in done[key].items()}, flush=True)
        write(done, a)
    best = min(done.values(), key=lambda r: (round(r["fd"], 1), -r["acc"]))
    print("chosen:", best)
    write(done, a, best)


def write(done: dict, a, best=None) -> None:
    report = {"what": "CaG (paper) at 25 images of each of classes " + ", ".join(map(str, CLASSES))
              + f", {a.steps} steps, x shown; the validation judge only", "settings": done,
              "chosen": best, "rule": "lowest FD in the validation judge's features (ties: higher accuracy)",
              "command": "python benchmarks/paper_weights.py", "machine": bench.machine()}
    OUT.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
