"""Class-conditional generation on the coloured-shapes world, with plain and with robust sources.

Each row makes 25 pictures of each of the world's 8 shapes, one class per batch (every shape in
turn where the recipe has the BatchNorm prior), from the same seeds: the full recipe with the
bundle "shapes" (plain sources) and with "shapes-robust" (the same sources fine-tuned on L2 PGD
images of radius 1.0, the radius chosen on Fashion-MNIST's validation judge), three recipes of the
gap page on the robust sources (CaG with the class-Gaussian start, CaG with the levers chosen
together on Fashion-MNIST, and Santurkar et al.'s robust PGD, their ImageNet radius and step scaled
by sqrt(pixels) to 32 x 32 x 3 as the recipe scales them to 32 x 32 x 1), and four variations of
Santurkar et al.'s PGD. The bundle's ConvNeXt is the validation judge: of Santurkar et al.'s
rows, the one it names most often is "chosen". The world's test judges
(panel.TEST_JUDGES["shapes"]) read every stored row, and each judge's accuracy on clean, blurred
and noisy real shapes is measured (panel.judge_card).

    python benchmarks/shapes_conditional.py [--rows ROW ...]
        # -> benchmarks/results/shapes_conditional.json (the rows asked for replace their old
        #    numbers, the others stay; --rows with no row makes none and reads them all again),
        #    each row's pictures (uint8) and targets in benchmarks/results/samples/shapes_<row>.npz,
        #    and book/figures/shapes_conditional.png (the recipes and the chosen variation)
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from cag_lib import bench
from cag_lib.batchnorm import class_batches
from cag_lib.data import world_classes
from cag_lib.files import read_npz
from cag_lib.gap import SHAPES_ROWS
from cag_lib.generate import generate
from cag_lib.models import accuracy
from cag_lib.panel import TEST_JUDGES, VALIDATION, judge_card, load_judges, set_slug
from cag_lib.recipes import recipe, shown_images
from cag_lib.shards import to_uint8
from cag_lib.viz import rows_figure
from cag_lib.zoo import load_bundle

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "shapes_conditional.json"
FIGURE = ROOT / "book" / "figures" / "shapes_conditional.png"
SAMPLES = ROOT / "benchmarks" / "results" / "samples"
PER_CLASS = 25
CARD_IMAGES = 1000                   # real test shapes each judge is measured on, clean and corrupted
SHOWN = 3                            # pictures of each shape per row in the figure
# Santurkar et al.: eps 40 and step 1 at 224 x 224 x 3, times sqrt(32 * 32 * 3 / (224 * 224 * 3))
PIXELS = (32 * 32 * 3 / (224 * 224 * 3)) ** 0.5
SANTURKAR = {"pgd_eps": round(40 * PIXELS, 2), "pgd_step": round(PIXELS, 3)}
ROWS = {   # row: (bundle, recipe, changes)
    "shapes": ("shapes", "CaG full", {}),
    "shapes-robust": ("shapes-robust", "CaG full", {}),
    "shapes-robust, class-Gaussian start": ("shapes-robust", "CaG, class-Gaussian start", {}),
    # the levers together, as chosen on Fashion-MNIST's validation judge (book/gap.md; batches mix the shapes)
    "shapes-robust, levers together": ("shapes-robust", "CaG + BN prior", {"start": "class gaussian",
                                                                          "mask_ratio": 0.5}),
    "shapes-robust, Santurkar et al.": ("shapes-robust", "Santurkar et al. (robust PGD)", SANTURKAR),
    # variations of Santurkar et al.'s PGD, chosen among on the validation judge alone
    "shapes-robust, Santurkar et al., ViT": ("shapes-robust", "Santurkar et al. (robust PGD)",
                                             {**SANTURKAR, "classifiers": (1,)}),
    "shapes-robust, Santurkar et al., ResNet + ViT": ("shapes-robust", "Santurkar et al. (robust PGD)",
                                                      {**SANTURKAR, "classifiers": (0, 1)}),
    "shapes-robust, Santurkar et al., twice the radius": (
        "shapes-robust", "Santurkar et al. (robust PGD)",
        {"pgd_eps": round(2 * SANTURKAR["pgd_eps"], 2), "pgd_step": round(2 * SANTURKAR["pgd_step"], 3)}),
    "shapes-robust, Santurkar et al., 200 steps": ("shapes-robust", "Santurkar et al. (robust PGD)",
                                                   {**SANTURKAR, "steps": 200}),
}
VARIATIONS = [row for row in ROWS if ", Santurkar et al., " in row]   # in the figure only if chosen
SANTURKAR_ROWS = ["shapes-robust, Santurkar et al.", *VARIATIONS]     # the validation judge chooses among these


def make_row(row: str, per_class: int) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """(the row's numbers, its pictures (N, 3, 32, 32), their targets)."""
    name, recipe_name, changes = ROWS[row]
    b = load_bundle(name)
    t0, shown, ys = time.time(), [], []
    # one class per batch (as the sampling command's shards); every class in turn for the BatchNorm prior
    batches = class_batches(range(len(b.class_names)), per_class, recipe(recipe_name, **changes).bn_weight > 0)
    for seed, targets in enumerate(batches):
        res = generate(b, targets, recipe(recipe_name, seed=seed, progress=False, **changes))
        picture, what = shown_images(res)
        shown.append(picture)
        ys.append(res.targets)
    x, y = torch.cat(shown), torch.cat(ys)
    numbers = {"bundle": name, "recipe": recipe_name, "changes": changes, "shown": what, "n": len(y),
               "seconds": round(time.time() - t0, 1)}
    return numbers, x, y


def stored(row: str) -> Path:
    return SAMPLES / f"shapes_{set_slug(row)}.npz"


def read_row(row: str) -> tuple[torch.Tensor, torch.Tensor]:
    s = read_npz(stored(row), f"run benchmarks/shapes_conditional.py --rows '{row}'", "a stored sample set")
    return torch.from_numpy(s["images"]).float() / 255, torch.from_numpy(s["targets"])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--per-class", type=int, default=PER_CLASS)
    p.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS), metavar="ROW",
                   help=f"rows to (re)make; the others keep their stored numbers ({', '.join(ROWS)})")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    report = json.loads(OUT.read_text()) if OUT.exists() else {"rows": {}}
    for row in a.rows:
        numbers, x, y = make_row(row, a.per_class)
        report["rows"][row] = numbers
        np.savez_compressed(stored(row), images=to_uint8(x), targets=y.numpy())
        print(row, numbers, flush=True)
    # every judge reads the stored pictures (uint8), the validation judge (the bundle's ConvNeXt) first;
    # Santurkar et al.'s variation is chosen on it alone
    judges = load_judges(load_bundle("shapes"))
    classes = world_classes("shapes")
    sets = {row: read_row(row) for row in ROWS}
    for row, (x, y) in sets.items():
        numbers = report["rows"][row]
        numbers["command"] = (f"python benchmarks/shapes_conditional.py --per-class {numbers['n'] // len(classes)} "
                              f"--rows '{row}'")                                     # the command that makes it
        numbers["judge_acc"] = accuracy(judges[VALIDATION], x, y)
        numbers["per_class"] = {cls: accuracy(judges[VALIDATION], x[y == i], y[y == i]) for i, cls in enumerate(classes)}
        numbers["test_judges"] = {n: accuracy(j, x, y) for n, j in judges.items() if n != VALIDATION}
    report["chosen"] = max(SANTURKAR_ROWS, key=lambda row: report["rows"][row]["judge_acc"])
    report["judge_card"] = judge_card(judges, "shapes", CARD_IMAGES)
    report.update(judge_card_images=CARD_IMAGES, per_class=a.per_class, test_judges=list(TEST_JUDGES["shapes"]),
                  what=f"{a.per_class} pictures per shape, one class per batch (seed = batch index; with the "
                       "BatchNorm prior every batch holds every shape in turn), read by "
                       "the validation judge (the bundle's ConvNeXt), on which Santurkar et al.'s variation is "
                       "chosen, and by the test judges", machine=bench.machine())
    OUT.write_text(json.dumps(report, indent=1) + "\n")
    pictures = {}            # the first SHOWN stored pictures of each shape: the recipes, then the chosen
    shown = [row for row in ROWS if row not in VARIATIONS or row == report["chosen"]]
    for row in shown:
        x, y = sets[row]
        for i, cls in enumerate(classes):
            pictures.setdefault(cls, []).append(x[y == i][:SHOWN])
    rows_figure({cls: torch.cat(p) for cls, p in pictures.items()}, FIGURE, scale=2,    # the table's names
                columns=[SHAPES_ROWS[row].replace(", ", ",\n", 1) for row in shown])
    print(f"chosen: {report['chosen']}; wrote {OUT} and {FIGURE}")


if __name__ == "__main__":
    main()
