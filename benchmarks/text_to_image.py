"""Text-to-image on the coloured shapes with the world's small CLIP, judged by attribute judges.

    python benchmarks/text_to_image.py [--per-prompt 8] [--steps 250] [--json PATH] [--out DIR] [--mae-dir DIR]

The prompts are the 10 compositions in `cag_lib.shapes.HELD_OUT`, which the CLIP never saw as a
caption in training (each word it saw in other scenes). Each row generates --per-prompt images per
prompt with the sampler and is judged by three classifiers that took no part in generation: the
shapes bundle's ConvNeXt judge (shape) and two attribute judges (colour, background). A sample is
right when shape and colour are both right (issue 5's measure; the background is reported too).
Rows: the full recipe without eq. 6 (no real images of a new composition, so no class statistics),
the same without the MAE, and without the diversity loss. Two reference rows: real scenes of each
composition, and the MAE's reconstruction g(.) of those real scenes as the sampler shows its pictures
(mask ratio and number of masks of the recipe): the most the recipe's pictures could score through this
MAE. Writes JSON and a grid per prompt.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cag_lib import zoo  # noqa: E402
from cag_lib.clip import attribute_scores, load_attribute_judges, load_text_bundle  # noqa: E402
from cag_lib.generate import generate, mean_reconstruction  # noqa: E402
from cag_lib.recipes import recipe, shown_images  # noqa: E402
from cag_lib.shapes import HELD_OUT, make_shapes, scene_prompt  # noqa: E402
from cag_lib.viz import rows_figure  # noqa: E402

FULL = recipe("CaG full", distribution_weight=0)
ROWS = {"full (no eq. 6)": FULL, "full - MAE": replace(FULL, use_mae=False),
        "full - diversity": replace(FULL, diversity_weight=0)}


def summarise(right: dict, prompts: list, per_prompt: int) -> dict:
    row = {f"{k}_acc": v.mean().item() for k, v in right.items()}
    row["per_prompt_shape+colour"] = {p: right["shape+colour"][i * per_prompt:(i + 1) * per_prompt].mean().item()
                                      for i, p in enumerate(prompts)}
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--per-prompt", type=int, default=8)
    p.add_argument("--steps", type=int, default=250)
    p.add_argument("--rows", nargs="*", default=list(ROWS))
    p.add_argument("--json", default="outputs/text_to_image/text_to_image.json")
    p.add_argument("--out", default="outputs/text_to_image")
    p.add_argument("--mae-dir", default=None, help="a weights folder with another shapes MAE (written by "
                   "python -m cag_lib.train mae --bundle shapes --out DIR); default: the shipped one")
    a = p.parse_args(argv)
    torch.set_num_threads(2)
    tb, judges = load_text_bundle(), load_attribute_judges()
    if a.mae_dir:
        tb.mae = zoo.load_model("shapes", "mae", "cpu", a.mae_dir)
    prompts = [scene_prompt(*t) for t in HELD_OUT]
    triples = [t for t in HELD_OUT for _ in range(a.per_prompt)]
    targets = [scene_prompt(*t) for t in triples]
    report = {"per_prompt": a.per_prompt, "steps": a.steps, "prompts": prompts,
              "clip_zero_shot": {k: v for k, v in zoo.read_manifest()["shapes"]["clip"]["metrics"].items()}}
    if a.mae_dir:
        entry = zoo.read_manifest(a.mae_dir)["shapes"]["mae"]
        report["mae"] = {k: entry[k] for k in ("metrics", "sha256")} | {"command": entry["training"]["command"]}
    # reference: real test scenes of the same compositions
    real = torch.cat([make_shapes(a.per_prompt, seed=100 + i, colour=c, shape=s, background=b).images
                      for i, (c, s, b) in enumerate(HELD_OUT)])                          # (B, 3, 32, 32)
    report["real images"] = summarise(attribute_scores(judges, real, triples), prompts, a.per_prompt)
    # the ceiling of what the sampler shows: the MAE's g(.) of those real scenes, as the sampler computes it
    real_g = mean_reconstruction(tb.mae, real, FULL.mask_ratio, FULL.keep_visible, FULL.final_masks)
    ceiling = report["MAE g(real images)"] = summarise(attribute_scores(judges, real_g, triples), prompts, a.per_prompt)
    print(f"{'MAE g(real images)':20s} shape+colour {ceiling['shape+colour_acc']:.3f}  "
          f"shape {ceiling['shape_acc']:.3f}", flush=True)
    pictures = {}
    for name in a.rows:
        res = generate(tb, targets, replace(ROWS[name], steps=a.steps, progress=False))
        shown, what = shown_images(res)
        row = summarise(attribute_scores(judges, shown, triples), prompts, a.per_prompt)
        row.update(shown=what, seconds=round(res.seconds, 1),
                   clip_target_prob=res.history["target_prob"][-1])
        report[name] = row
        pictures[name] = shown
        print(f"{name:20s} shape+colour {row['shape+colour_acc']:.3f}  shape {row['shape_acc']:.3f}  colour "
              f"{row['colour_acc']:.3f}  background {row['background_acc']:.3f}  ({row['seconds']:.0f} s)", flush=True)
    for i, prompt in enumerate(prompts):
        sl = slice(i * a.per_prompt, (i + 1) * a.per_prompt)
        rows = {"real": real[sl], "MAE g(real)": real_g[sl], **{n: pictures[n][sl] for n in pictures}}
        rows_figure(rows, Path(a.out) / f"{prompt.replace(' ', '_')}.png", title=f'"a {prompt}"', scale=3)
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
