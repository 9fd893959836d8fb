"""Short seeded runs of the sampler whose outputs are stored (tests/data/reference_runs.pt), so a
change of the loop's code that changes its numbers is noticed (tests/test_generate.py).

What is compared, and why not pixel by pixel at the end: Adam's first steps of a stage move every
pixel by about ±lr whatever the size of its gradient, so a pixel whose gradient is near zero
flips its step when another CPU's kernels round differently, and later steps carry the flip on
(measured: 0.22 at one pixel after 9 steps of the full recipe). So a run is compared

- tightly on its first PREFIX steps (`prefix`, the largest pixel difference), before that happens;
- at the end by numbers that a few flipped pixels do not move: the mean pixel difference of x and
  of g(x), and the largest difference of the per-step loss.

Each key's tolerance comes from the spread of these differences across CPU kernel paths
(tests/data/kernel_spread.json, written by `python scripts/kernel_spread.py runs`).

    python tests/reference_runs.py                 # this machine's differences from the stored runs
    python tests/reference_runs.py --save OUT.pt   # this machine's outputs (kernel_spread.py uses it)
    python tests/reference_runs.py --write         # re-record, only when a change of numbers is intended
"""
from __future__ import annotations

import argparse
import functools
from dataclasses import replace
from pathlib import Path

import torch

from cag_lib.recipes import recipe
from cag_lib.zoo import load_bundle

STORE = Path(__file__).parent / "data" / "reference_runs.pt"
TARGETS = [0, 0, 7, 7, 9, 3]
PROMPTS = ["a red star on a blue background", "a green circle on a black background",
           "a red star on a blue background", "a white moon on a purple background"]
PREFIX = 2   # steps compared pixel by pixel

RUNS = {  # name -> (bundle, recipe, changes)
    "eq1": ("fmnist", "eq1", dict(steps=6)),
    "CaG full": ("fmnist", "CaG full", dict(steps=9)),
    "classic": ("fmnist", "classic: ens+prog+blur+jitter+TV", dict(steps=6, lr_schedule="cosine")),
    "MALA": ("fmnist", "MALA (MAE+ens+prog)", dict(steps=6)),
    "MALA + Gram": ("fmnist", "MALA + Gram (STIC)", dict(steps=3, resolutions=(32,))),
    "text-to-image": ("shapes-clip", "text-to-image", dict(steps=6)),
}
# key -> how two runs' values of it are compared (a number >= 0; the tolerance bounds it)
MEASURES = {"prefix": "largest pixel difference", "images": "mean pixel difference",
            "reconstructions": "mean pixel difference", "loss": "largest difference of a step's loss"}


def difference(key: str, a: torch.Tensor, b: torch.Tensor) -> float:
    """How far two runs' values of `key` are apart, as MEASURES says."""
    d = (a.double() - b.double()).abs()
    return float(d.mean() if MEASURES[key].startswith("mean") else d.max())


@functools.cache
def bundle(name: str):
    if name == "shapes-clip":
        from cag_lib.shapes_text import load_text_bundle
        return load_text_bundle()
    return load_bundle(name)


def run(name: str, generate=None) -> dict:
    """The run's outputs: x after each of the first PREFIX steps, x and g(x) at the end, the per-step
    loss (tensors)."""
    from cag_lib.generate import generate as default
    world, rec, changes = RUNS[name]
    b = bundle(world)
    targets = PROMPTS if world == "shapes-clip" else TARGETS
    cfg = replace(recipe(rec, **changes), progress=False, seed=3, snapshot_every=1)
    res = (generate or default)(b, targets, cfg)
    out = {"prefix": torch.stack([s for _, s in res.snapshots[:PREFIX]]), "images": res.images,
           "loss": torch.tensor(res.history["loss"])}
    if res.reconstructions is not None:
        out["reconstructions"] = res.reconstructions
    return out


def run_all() -> dict:
    torch.set_num_threads(1)
    return {name: run(name) for name in RUNS}


def differences(outs: dict, ref: dict) -> dict:
    """{run: {key: difference}} of outputs against stored ones."""
    return {name: {k: difference(k, v, ref[name][k]) for k, v in o.items()} for name, o in outs.items()}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true")
    p.add_argument("--save", type=Path, help="save this machine's outputs here")
    a = p.parse_args()
    outs = run_all()
    if a.write:
        STORE.parent.mkdir(exist_ok=True)
        torch.save(outs, STORE)
        print("wrote", STORE, STORE.stat().st_size, "bytes")
    elif a.save:
        torch.save(outs, a.save)
    else:
        for name, d in differences(outs, torch.load(STORE, weights_only=True)).items():
            print(name, {k: f"{v:.2e}" for k, v in d.items()})
