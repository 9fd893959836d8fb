"""The stored text-to-image runs as tables: chapter 8's one table, and the lab notes behind it.

Every run of `benchmarks/text_to_image.py` wrote a JSON under benchmarks/results (the held-out
prompts) or benchmarks/results/text_to_image_seen (the 8 compositions the CLIPs saw, where knobs
are chosen). The labels below say which run a row is; every number is read from its file.

    python -m cag_lib.text_results            # the lab notes' tables (book/clip_lab.md)
    >>> story_rows()                           # {label: {"shape+colour": 0.91, ...}}
"""
from __future__ import annotations

import json
from functools import cache

from .files import read_json
from .metrics import markdown_table
from .panel import results_dir

ATTRIBUTES = ("shape+colour", "shape", "colour", "background")
HARD_PROMPT = "white circle on a red background"  # the prompt the plain ensembles got worse on

# label: (file under benchmarks/results, row). Held-out prompts, 8 pictures each, the CPU.
STORY = {
    "real scenes": ("text_to_image_shapes_cpu_8robustclips.json", "real images"),
    "MAE g(real scenes)": ("text_to_image_shapes_cpu_8robustclips.json", "MAE g(real images)"),
    "1 CLIP": ("text_to_image_shapes_cpu_1clip.json", "1 CLIP"),
    "8 CLIPs": ("text_to_image_shapes_cpu_8clips.json", "8 CLIPs (text recipe)"),
    "16 CLIPs": ("text_to_image_shapes_cpu_16clips.json", "8 CLIPs (text recipe)"),
    "16 CLIPs, seed 1": ("text_to_image_shapes_cpu_16clips_seed1.json", "8 CLIPs (text recipe)"),
    "8 robust CLIPs": ("text_to_image_shapes_cpu_8robustclips.json", "8 CLIPs (text recipe)"),
    "8 robust CLIPs, seed 1": ("text_to_image_shapes_cpu_8robustclips_seed1.json",
                               "8 CLIPs (text recipe)"),
    "8 robust CLIPs - MAE": ("text_to_image_shapes_cpu_8robustclips_ablation.json", "8 CLIPs - MAE"),
    "8 robust CLIPs + diversity": ("text_to_image_shapes_cpu_8robustclips_ablation.json",
                                   "8 CLIPs + diversity"),
}
# the first run, on a GPU, with the plain CLIPs: the recipe's ingredients
GPU = {name: ("text_to_image_shapes.json", name) for name in
       ("real images", "MAE g(real images)", "1 CLIP", "8 CLIPs (text recipe)", "8 CLIPs - MAE",
        "8 CLIPs + diversity")}
SEEN = "text_to_image_seen/"
# one knob of the text recipe changed at a time, the 8 plain CLIPs, seen compositions
KNOBS = {
    "the text recipe": "recipe", "the text recipe, seed 1": "recipe_seed1",
    "stages 16 → 32 (no 8)": "res16_32", "stages 16 → 32, seed 1": "res16_32_seed1",
    "one stage at 32": "res32", "cosine learning rate in each stage": "cosine",
    "mask ratio 0.5": "mask05", "2000 steps": "steps2000",
}
# how many CLIPs, seen compositions, two sampler seeds each
ENSEMBLE_SIZES = {n: (f"clips{n}" if n != 8 else "recipe", f"clips{n}_seed1" if n != 8 else
                      "recipe_seed1") for n in (1, 2, 4, 8, 12, 16)}
ROBUST_SEEN = {
    "1 CLIP (clip_seed1)": "clipdir_clip_seed1", "1 robust CLIP (clip_adv1)": "clipdir_clip_adv1",
    "4 CLIPs": "clips4", "4 robust CLIPs": "robust4", "8 CLIPs": "recipe",
    "8 CLIPs, seed 1": "recipe_seed1", "8 robust CLIPs": "robust8",
    "8 robust CLIPs, seed 1": "robust8_seed1", "16 CLIPs": "clips16", "16 CLIPs, seed 1": "clips16_seed1",
}
HELD_OUT_SIZES = {"8 CLIPs": "text_to_image_shapes_cpu_8clips.json",
                  "12 CLIPs": "text_to_image_shapes_cpu_12clips.json",
                  "16 CLIPs": "text_to_image_shapes_cpu_16clips.json",
                  "16 CLIPs, seed 1": "text_to_image_shapes_cpu_16clips_seed1.json"}
SAMPLER_ROW = "8 CLIPs (text recipe)"  # the benchmark's name for the ensemble row, whatever N
LAB_TABLES = ("gpu", "knobs", "sizes", "size_means", "held_out_sizes", "held_out_sizes_per_prompt",
              "robust_seen", "robust_per_prompt", "robust_parts")   # book/clip_lab.md's, in order


@cache
def report(name: str) -> dict:
    """One stored run (a file name under benchmarks/results, ".json" optional)."""
    path = results_dir() / (name if name.endswith(".json") else name + ".json")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such text-to-image result; it is written by "
                                "benchmarks/text_to_image.py --json")
    return read_json(path, "restore it (in a clone: git checkout benchmarks/results) or write it again "
                     "with benchmarks/text_to_image.py --json", "a text-to-image result (JSON)")


def row(name: str, key: str = SAMPLER_ROW, extra: tuple = ()) -> dict:
    """A stored row as {attribute: accuracy, ...}, plus `extra` keys of the row where it has them."""
    r = report(name)[key]
    out = {a: r[f"{a}_acc"] for a in ATTRIBUTES if f"{a}_acc" in r}
    return out | {k: r[k] for k in extra if k in r}


def story_rows() -> dict:
    """Chapter 8's table: held-out prompts, 8 pictures each, with the score of the hard prompt."""
    rows = {}
    for label, (name, key) in STORY.items():
        rows[label] = row(name, key)
        rows[label]["white circle on red"] = report(name)[key]["per_prompt_shape+colour"][HARD_PROMPT]
    return rows


def per_prompt(runs: dict) -> dict:
    """{prompt: {run label: shape+colour}} for runs {label: file} (their ensemble row)."""
    prompts = report(next(iter(runs.values())))["prompts"]
    return {p: {label: report(name)[SAMPLER_ROW]["per_prompt_shape+colour"][p]
                for label, name in runs.items()} for p in prompts}


def ensemble_means() -> dict:
    """{number of CLIPs: mean shape+colour over the two sampler seeds}, seen compositions."""
    return {n: sum(row(SEEN + f)["shape+colour"] for f in files) / len(files)
            for n, files in ENSEMBLE_SIZES.items()}


@cache
def lab_tables() -> dict:
    """The lab notes' tables, as markdown, by name (LAB_TABLES)."""
    knobs = {label: row(SEEN + f, extra=("seconds",)) for label, f in KNOBS.items()}
    for r in knobs.values():
        r["seconds"] = f"{r['seconds']:.0f}"
    ablation = "text_to_image_shapes_cpu_8robustclips_ablation.json"
    robust_parts = {label: row(ablation, key, ("diversity",)) for label, key in (
        ("real scenes", "real images"), ("MAE g(real scenes)", "MAE g(real images)"),
        ("8 robust CLIPs (text recipe)", SAMPLER_ROW), ("8 robust CLIPs - MAE", "8 CLIPs - MAE"),
        ("8 robust CLIPs + diversity", "8 CLIPs + diversity"))}
    sizes = {f"{n} CLIP{'s' * (n > 1)}, seed {s}": row(SEEN + f)
             for n, files in ENSEMBLE_SIZES.items() for s, f in enumerate(files)}
    means = {"mean over the two seeds": {str(n): v for n, v in ensemble_means().items()}}
    plain = {k: row(f) for k, f in HELD_OUT_SIZES.items()}
    robust_runs = {"16 CLIPs": HELD_OUT_SIZES["16 CLIPs"],
                   "16 CLIPs, seed 1": HELD_OUT_SIZES["16 CLIPs, seed 1"],
                   "8 robust CLIPs": STORY["8 robust CLIPs"][0],
                   "8 robust CLIPs, seed 1": STORY["8 robust CLIPs, seed 1"][0]}
    tables = {
        "gpu": markdown_table({k: row(f, key) for k, (f, key) in GPU.items()}),
        "knobs": markdown_table(knobs, skip=("background",)),
        "sizes": markdown_table(sizes, skip=("background",)),
        "size_means": markdown_table(means, digits=2, first="CLIPs"),
        "held_out_sizes": markdown_table(plain),
        "held_out_sizes_per_prompt": markdown_table(per_prompt(HELD_OUT_SIZES), first="prompt"),
        "robust_seen": markdown_table({k: row(SEEN + f) for k, f in ROBUST_SEEN.items()},
                                      skip=("background",)),
        "robust_per_prompt": markdown_table(per_prompt(robust_runs), first="prompt"),
        "robust_parts": markdown_table(robust_parts),
    }
    return tables


if __name__ == "__main__":  # the lab notes page's {{clip_lab_*}} blocks, one per table
    import sys
    print(lab_tables()[sys.argv[1]] if len(sys.argv) > 1 else "\n\n".join(lab_tables().values()))
