"""Class-conditional generation on the coloured-shapes world, with plain and with robust sources.

The full recipe makes 25 pictures of each of the world's 8 shapes from the bundle "shapes" (plain
sources) and from "shapes-robust" (the same sources fine-tuned on L2 PGD images of radius 1.0, the
radius chosen on Fashion-MNIST's validation judge); the bundle's judge (a ConvNeXt, never a source,
and the world's only judge of shape) says how many show the shape they were made for. The same
seeds for both bundles; nothing here is chosen by the judge.

    python benchmarks/shapes_conditional.py    # -> benchmarks/results/shapes_conditional.json
                                               #    and book/figures/shapes_conditional.png
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from cag_lib import bench
from cag_lib.generate import GenerateConfig, generate
from cag_lib.models import accuracy
from cag_lib.viz import rows_figure
from cag_lib.zoo import load_bundle

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "shapes_conditional.json"
FIGURE = ROOT / "book" / "figures" / "shapes_conditional.png"
PER_CLASS = 25


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--per-class", type=int, default=PER_CLASS)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    report, pictures = {"rows": {}}, {}
    for name in ("shapes", "shapes-robust"):
        b = load_bundle(name)
        t0, shown, ys = time.time(), [], []
        for c in range(len(b.class_names)):      # one class per batch, as the sampling command's shards
            res = generate(b, [c] * a.per_class, GenerateConfig(seed=c, progress=False))
            shown.append(res.reconstructions)
            ys.append(res.targets)
        x, y = torch.cat(shown), torch.cat(ys)
        report["rows"][name] = {"judge_acc": accuracy(b.judge, x, y), "n": len(y),
                                "per_class": {cls: accuracy(b.judge, x[y == i], y[y == i])
                                              for i, cls in enumerate(b.class_names)},
                                "seconds": round(time.time() - t0, 1)}
        print(name, report["rows"][name], flush=True)
        for i, cls in enumerate(b.class_names):
            pictures.setdefault(f"{cls}", []).append(x[y == i][:4])
    report.update(what=f"CaG full, {a.per_class} pictures per shape, g(x) shown, judged by the bundle's ConvNeXt",
                  command="python " + " ".join(["benchmarks/shapes_conditional.py", *sys.argv[1:]]),
                  machine=bench.machine())
    OUT.write_text(json.dumps(report, indent=1) + "\n")
    rows_figure({f"{cls}: plain | robust": torch.cat(p) for cls, p in pictures.items()}, FIGURE, scale=1.2)
    print(f"wrote {OUT} and {FIGURE}")


if __name__ == "__main__":
    main()
