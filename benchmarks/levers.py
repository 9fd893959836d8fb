"""The levers that might close CaG's realism gap, and the rivals' settings, chosen on the validation
judge alone.

Each setting makes 25 images of each of five classes (as benchmarks/paper_weights.py) and is scored
in the validation judge's features only, against the reference's real images of the same five
classes: accuracy, Fréchet distance, precision and recall. Within a
group the setting with the lowest FD wins (ties: the higher accuracy; the plain ResNet is there to
compare with, not to be chosen); the winners become the
recipes and the bundle that the panel then measures at N = 1,000 with the test judges, which this
script never reads.

    python benchmarks/levers.py                                   # every group but the radius
    python benchmarks/levers.py --radius-dirs DIR [DIR ...]       # + the robust ResNets to choose from
        (folders that `python -m cag_lib.train ... --adv-eps R --out DIR` wrote)

Resumable: settings already in the JSON are skipped.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from cag_lib import bench, zoo
from cag_lib.batchnorm import class_batches
from cag_lib.generate import generate
from cag_lib.panel import VALIDATION, judge_row, reference_features
from cag_lib.recipes import recipe, shown_images

OUT = Path(__file__).resolve().parent / "results" / "levers_fmnist.json"
CLASSES = (0, 2, 4, 6, 8)
PER_CLASS = 25
RULE = "lowest FD in the validation judge's features (ties: higher accuracy)"

# group -> {setting: (bundle, recipe, changes)}; "robust:DIR" is the robust ResNet in DIR, alone
GROUPS = {
    "reference": {"CaG full": ("fmnist", "CaG full", {})},
    # CaG on one ResNet (the recipe "full - ensemble"): the plain one, then each robust candidate
    "robust ResNet radius": {"plain ResNet (no attack)": ("fmnist", "full - ensemble", {})},
    # the BatchNorm prior matches a batch's statistics to the running ones over *all* classes, so its
    # batches mix the classes, as DeepInversion's do (batches()); every other setting makes one class per batch
    "DeepInversion BN weight": {f"bn {w:g}": ("fmnist", "DeepInversion", {"bn_weight": w})
                                for w in (0.01, 0.1, 1.0, 10.0, 100.0)},
    "CaG + BN prior weight": {f"bn {w:g}": ("fmnist", "CaG + BN prior", {"bn_weight": w}) for w in (0.01, 0.1, 1.0)},
    "diversity": {
        "class-Gaussian start": ("fmnist", "CaG full", {"start": "class gaussian"}),
        "diversity weight 3": ("fmnist", "CaG full", {"diversity_weight": 3.0}),
        "diversity weight 10": ("fmnist", "CaG full", {"diversity_weight": 10.0}),
    },
    # g: the picture CaG shows is g(x) averaged over final_masks fresh masks, through the book's MAE (4 x 4
    # patches) or one of 2 x 2 patches (the bundle fmnist-mae-p2)
    "g and the picture shown": {
        "mean of 4 masks (CaG full)": ("fmnist", "CaG full", {}),
        "one mask": ("fmnist", "CaG full", {"final_masks": 1}),
        "2 x 2-patch MAE, mean of 4 masks": ("fmnist-mae-p2", "CaG full", {}),
    },
    # the paper gives no mask ratio; the book uses the MAE's training ratio, 0.75. A lower one hides less of
    # x from g at every step and in the picture shown: g is sharper, and a weaker prior
    "g's mask ratio": {f"mask ratio {r:g}": ("fmnist", "CaG full", {"mask_ratio": r}) for r in (0.75, 0.5, 0.25)},
    # the levers chosen one at a time, together: the robust sources with the class-Gaussian start, then
    # with the other winners added (the 2 x 2-patch MAE is left out: at N = 1,000 the validation judge
    # no longer preferred it)
    "levers together": {
        "robust sources, class-Gaussian start": ("fmnist-robust", "CaG, class-Gaussian start", {}),
        "+ mask ratio 0.5": ("fmnist-robust", "CaG, class-Gaussian start", {"mask_ratio": 0.5}),
        "+ BN prior 0.01": ("fmnist-robust", "CaG + BN prior", {"start": "class gaussian"}),
        "+ mask ratio 0.5 + BN prior 0.01": ("fmnist-robust", "CaG + BN prior",
                                            {"start": "class gaussian", "mask_ratio": 0.5}),
        # with robust sources g may hide less: the ratio the plain sources could not take
        "+ mask ratio 0.25 + BN prior 0.01": ("fmnist-robust", "CaG + BN prior",
                                             {"start": "class gaussian", "mask_ratio": 0.25}),
    },
}


def robust_bundle(folder: Path) -> zoo.Bundle:
    """The fmnist bundle with the robust ResNet of `folder` as its only source."""
    base = zoo.load_bundle("fmnist")
    entry = zoo.read_manifest(folder)["fmnist"]["resnet_robust"]
    clf = zoo.load_entry(entry, folder).to(memory_format=torch.channels_last)
    spec = dataclasses.replace(base.spec, name=f"fmnist-robust-{entry['sha256'][:8]}", sources=("resnet_robust",))
    return zoo.Bundle(spec, [clf], base.judge, base.mae, {**base.manifest, "resnet_robust": entry})


def batches(name: str, changes: dict) -> list[list[int]]:
    """The targets of each batch: one class per batch (as the sampling command's shards), or for a
    setting with the BatchNorm prior batches that hold every class in turn (5 batches of 25 either way)."""
    return class_batches(CLASSES, PER_CLASS, recipe(name, **changes).bn_weight > 0)


def run(bundle, name: str, changes: dict, steps: int, refs) -> dict:
    t0, xs, ys = time.time(), [], []
    for seed, targets in enumerate(batches(name, changes)):
        res = generate(bundle, targets, recipe(name, seed=CLASSES[seed], progress=False, **changes,
                                               **({"steps": steps} if steps else {})))
        xs.append(shown_images(res)[0])
        ys.append(res.targets)
    row = judge_row(bundle.judge, torch.cat(xs), torch.cat(ys), refs[VALIDATION])
    return {"recipe": name, "changes": changes, **{k: row[k] for k in ("acc", "fd", "precision", "recall")},
            "seconds": round(time.time() - t0, 1)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=0, help="override every recipe's steps (0: the recipe's)")
    p.add_argument("--radius-dirs", nargs="*", type=Path, default=[])
    p.add_argument("--groups", nargs="*", default=None, help="only these groups")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    base = zoo.load_bundle("fmnist")
    refs = reference_features({VALIDATION: base.judge}, classes=CLASSES)   # the real images of those classes
    report = json.loads(OUT.read_text()) if OUT.exists() else {"groups": {}}
    groups = {k: dict(v) for k, v in GROUPS.items()}
    for d in a.radius_dirs:
        eps = zoo.read_manifest(d)["fmnist"]["resnet_robust"]["training"]["config"]["adv_eps"]
        groups["robust ResNet radius"][f"L2 {eps:g}"] = (f"robust:{d}", "full - ensemble", {})
    for group, settings in groups.items():
        if a.groups and group not in a.groups:
            continue
        done = report["groups"].setdefault(group, {"settings": {}})
        for key, (bundle_name, name, changes) in settings.items():
            if key in done["settings"]:
                continue
            bundle = (robust_bundle(Path(bundle_name[7:])) if bundle_name.startswith("robust:")
                      else base if bundle_name == "fmnist" else zoo.load_bundle(bundle_name))
            done["settings"][key] = {"bundle": bundle_name, **run(bundle, name, changes, a.steps, refs)}
            print(group, "|", key, {k: v for k, v in done["settings"][key].items() if k in ("acc", "fd", "recall")},
                  flush=True)
            choices = [k for k in done["settings"] if not k.startswith("plain")] or list(done["settings"])
            done["chosen"] = min(choices, key=lambda k: (round(done["settings"][k]["fd"], 1),
                                                         -done["settings"][k]["acc"]))
            write(report)
    for group, done in report["groups"].items():
        print(f"{group}: chosen {done.get('chosen')}")


def write(report: dict) -> None:
    report.update(what=f"{PER_CLASS} images of each of classes {', '.join(map(str, CLASSES))}, the recipe's "
                       "own picture (g(x) where there is an MAE), the validation judge only", rule=RULE,
                  machine=bench.machine())
    command = "python " + " ".join(["benchmarks/levers.py", *sys.argv[1:]])   # every run that added settings
    report["commands"] = [*[c for c in report.get("commands", []) if c != command], command]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
