"""Short seeded runs of the sampler whose outputs are stored (tests/data/reference_runs.pt), so a
change of the loop's code that changes its numbers is noticed (tests/test_generate.py).

    python tests/reference_runs.py --write    # re-record, only when a change of numbers is intended
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

RUNS = {  # name -> (bundle, recipe, changes)
    "eq1": ("fmnist", "eq1", dict(steps=6)),
    "CaG full": ("fmnist", "CaG full", dict(steps=9)),
    "classic": ("fmnist", "classic: ens+prog+blur+jitter+TV", dict(steps=6, lr_schedule="cosine")),
    "MALA": ("fmnist", "MALA (MAE+ens+prog)", dict(steps=6)),
    "MALA + Gram": ("fmnist", "MALA + Gram (STIC)", dict(steps=3, resolutions=(32,))),
    "text-to-image": ("shapes-clip", "text-to-image", dict(steps=6)),
}


@functools.cache
def bundle(name: str):
    if name == "shapes-clip":
        from cag_lib.shapes_text import load_text_bundle
        return load_text_bundle()
    return load_bundle(name)


def run(name: str, generate=None) -> dict:
    """The run's outputs: x, g(x) and the per-step loss (tensors)."""
    from cag_lib.generate import generate as default
    world, rec, changes = RUNS[name]
    b = bundle(world)
    targets = PROMPTS if world == "shapes-clip" else TARGETS
    res = (generate or default)(b, targets, replace(recipe(rec, **changes), progress=False, seed=3))
    out = {"images": res.images, "loss": torch.tensor(res.history["loss"])}
    if res.reconstructions is not None:
        out["reconstructions"] = res.reconstructions
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(1)
    outs = {name: run(name) for name in RUNS}
    if a.write:
        STORE.parent.mkdir(exist_ok=True)
        torch.save(outs, STORE)
        print("wrote", STORE, STORE.stat().st_size, "bytes")
    else:
        ref = torch.load(STORE, weights_only=True)
        for name, o in outs.items():
            print(name, {k: float((v - ref[name][k]).abs().max()) for k, v in o.items()})
