"""Text-to-image on the coloured shapes with the world's small CLIPs, judged by attribute judges.

    python benchmarks/text_to_image.py [--per-prompt 8] [--steps 1000] [--json PATH] [--out DIR]
                                       [--rows NAME ...] [--mae-dir DIR] [--clip-dir DIR] [--device cuda]
                                       [--prompts held-out|seen] [--set FIELD=VALUE ...] [--clips N]
                                       [--robust] [--threads 2]

The prompts are the 10 compositions in `cag_lib.shapes.HELD_OUT`, which the CLIP never saw as a
caption in training (each word it saw in other scenes). Each row generates --per-prompt images per
prompt with the sampler and is judged by three classifiers that took no part in generation: the
shapes bundle's ConvNeXt judge (shape) and two attribute judges (colour, background). A sample is
right when shape and colour are both right (issue 5's measure; the background is reported too).
Rows: the text recipe (`recipes.RECIPES["text-to-image"]`: the full recipe without eq. 6, as there are
no real images of a new composition, and without diversity; its knobs were chosen on compositions the
CLIPs saw) with the ensemble of the world's CLIPs (--clips N: the first N of them; default 8;
--robust: the adversarially fine-tuned ones instead); the same without the MAE, with the diversity
loss, and with one CLIP instead of 8. With --clip-dir the bundle has that one CLIP only, so every row
uses it. Two reference rows: real scenes of each composition, and the MAE's reconstruction g(.) of those
real scenes as the sampler shows its pictures (mask ratio and number of masks of the recipe): how
much of a shape this MAE keeps. It is a reference, not a ceiling: the optimiser can find an x whose
g(x) is sharper than a real scene's. Every row also records "diversity": the mean distance between two
pictures of one prompt in the shape judge's features (the real scenes' row says how far apart real
scenes of one composition are). Writes JSON and a grid per prompt.

Choosing knobs: `--prompts seen` draws the 8 compositions in `cag_lib.shapes.TUNING` instead, which the
CLIPs did see in training, and `--set` changes fields of every row's GenerateConfig, e.g.
`--prompts seen --per-prompt 4 --rows "8 CLIPs (text recipe)" --set resolutions=16,32`. Knobs are
chosen there; the held-out prompts only measure the result.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from cag_lib import bench
from cag_lib import zoo
from cag_lib.shapes_text import SHAPES_CLIPS, SHAPES_ROBUST_CLIPS, attribute_scores, load_attribute_judges, load_text_bundle
from cag_lib.generate import generate, mean_reconstruction
from cag_lib.metrics import intra_class_diversity
from cag_lib import recipes
from cag_lib.recipes import recipe, shown_images
from cag_lib.shapes import HELD_OUT, TUNING, make_shapes, scene_prompt
from cag_lib.stats import features
from cag_lib.viz import rows_figure

TEXT = recipe("text-to-image")   # the full recipe without eq. 6 or diversity; lr 0.02, 1000 steps (recipes.py)
ROWS = {"8 CLIPs (text recipe)": TEXT, "8 CLIPs - MAE": replace(TEXT, use_mae=False),
        "8 CLIPs + diversity": replace(TEXT, diversity_weight=1.0), "1 CLIP": replace(TEXT, classifiers=(0,))}


def summarise(right: dict, prompts: list, per_prompt: int, judges: dict, images: torch.Tensor) -> dict:
    """Attribute accuracies, per prompt too, and the diversity of each prompt's pictures: the mean
    distance between two pictures of one prompt in the shape judge's features (metrics.py)."""
    row = {f"{k}_acc": v.mean().item() for k, v in right.items()}
    prompt_of = torch.arange(len(prompts)).repeat_interleave(per_prompt)            # (B,)
    row["diversity"] = intra_class_diversity(features(judges["shape"], images), prompt_of)
    row["per_prompt_shape+colour"] = {p: right["shape+colour"][i * per_prompt:(i + 1) * per_prompt].mean().item()
                                      for i, p in enumerate(prompts)}
    return row


def parse_sets(pairs) -> dict:
    """["resolutions=16,32", "lr=0.01", "lr_schedule=cosine"] -> GenerateConfig changes, typed like the fields."""
    try:
        return recipes.parse_sets(pairs)
    except ValueError as e:
        raise SystemExit(str(e)) from None


def write_json(report: dict, path) -> None:
    bench.write_report(path, report)


def main(argv=None):
    p = bench.parser(__doc__)
    p.add_argument("--per-prompt", type=int, default=8)
    p.add_argument("--steps", type=int, default=TEXT.steps)
    p.add_argument("--rows", nargs="*", default=list(ROWS))
    p.add_argument("--json", default="outputs/text_to_image/text_to_image.json")
    p.add_argument("--out", default="outputs/text_to_image")
    p.add_argument("--mae-dir", default=None, help="a weights folder with another shapes MAE (written by "
                   "python -m cag_lib.train mae --bundle shapes --out DIR); default: the shipped one")
    p.add_argument("--clip-dir", default=None, help="a weights folder with another shapes CLIP (written by "
                   "python -m cag_lib.train clip --bundle shapes --out DIR); default: the shipped one")
    p.add_argument("--device", default="cpu")
    p.add_argument("--prompts", choices=("held-out", "seen"), default="held-out",
                   help="held-out: the 10 measured compositions; seen: 8 the CLIPs saw, for choosing knobs")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="change GenerateConfig fields of every row, e.g. resolutions=16,32 lr_schedule=cosine")
    p.add_argument("--clips", type=int, default=None, help=f"ensemble the first N of the world's "
                   f"{len(SHAPES_CLIPS)} CLIPs (default 8; rows named '8 CLIPs ...' use N)")
    p.add_argument("--robust", action="store_true", help=f"ensemble the world's {len(SHAPES_ROBUST_CLIPS)} "
                   "adversarially fine-tuned CLIPs instead (--clips N: the first N of them)")
    a = p.parse_args(argv)
    if (a.clips is not None or a.robust) and a.clip_dir:
        raise SystemExit(f"--{'robust' if a.robust else 'clips'} picks among the shipped CLIPs, but --clip-dir gives a "
                         "bundle with the one CLIP in that folder: drop it, or drop --clip-dir to ensemble the shipped ones")
    shipped = SHAPES_ROBUST_CLIPS if a.robust else SHAPES_CLIPS
    a.clips = 8 if a.clips is None else a.clips
    if not 1 <= a.clips <= len(shipped):
        raise SystemExit(f"--clips {a.clips}: the shapes world ships {len(shipped)} "
                         f"{'robust ' if a.robust else ''}CLIPs; give 1 to {len(shipped)}")
    members = ("clip",) if a.clip_dir else shipped[:a.clips]
    changes = parse_sets(a.set)
    bench.set_threads(a.threads)
    tb = load_text_bundle(a.device, clip_dir=a.clip_dir, mae_dir=a.mae_dir, members=members)
    judges = load_attribute_judges(a.device)
    scenes = HELD_OUT if a.prompts == "held-out" else TUNING
    prompts = [scene_prompt(*t) for t in scenes]
    triples = [t for t in scenes for _ in range(a.per_prompt)]
    targets = [scene_prompt(*t) for t in triples]
    clip = zoo.read_manifest(a.clip_dir)["shapes"][members[0]]     # the first member, or --clip-dir's one
    report = {"per_prompt": a.per_prompt, "steps": a.steps, "prompt_set": a.prompts, "set": a.set, "prompts": prompts,
              "clips": len(tb.classifiers), "members": list(members),
              "device": torch.cuda.get_device_name() if a.device.startswith("cuda") else "cpu",
              "torch": torch.__version__,
              "clip_zero_shot": dict(clip["metrics"])}
    if a.mae_dir:
        entry = zoo.read_manifest(a.mae_dir)["shapes"]["mae"]
        report["mae"] = {k: entry[k] for k in ("metrics", "sha256")} | {"command": entry["training"]["command"]}
    if a.clip_dir:
        report["clip"] = {"sha256": clip["sha256"], "command": clip["training"]["command"]}
    # reference: real test scenes of the same compositions
    real = torch.cat([make_shapes(a.per_prompt, seed=100 + i, colour=c, shape=s, background=b).images
                      for i, (c, s, b) in enumerate(scenes)]).to(a.device)             # (B, 3, 32, 32)

    def score(images):                   # (B, 3, 32, 32) in prompt order -> a row of the report
        return summarise(attribute_scores(judges, images, triples), prompts, a.per_prompt, judges, images)

    report["real images"] = score(real)
    # reference: the MAE's g(.) of those real scenes, as the sampler computes the pictures it shows
    show = replace(TEXT, **changes)      # --set mask_ratio=... changes how the pictures are shown, too
    real_g = mean_reconstruction(tb.mae, real, show.mask_ratio, show.keep_visible, show.final_masks)
    ref = report["MAE g(real images)"] = score(real_g)
    print(f"{'MAE g(real images)':20s} shape+colour {ref['shape+colour_acc']:.3f}  "
          f"shape {ref['shape_acc']:.3f}", flush=True)
    write_json(report, a.json)       # and again after every row: an interrupted run keeps what it finished
    pictures = {}
    for name in a.rows:
        res = generate(tb, targets, replace(ROWS[name], **{"steps": a.steps, **changes}, progress=False))
        shown, what = shown_images(res)
        row = score(shown)
        row.update(shown=what, seconds=round(res.seconds, 1),
                   clip_target_prob=res.history["target_prob"][-1])
        report[name] = row
        label = f"{len(tb.classifiers)} {'robust ' if a.robust else ''}CLIPs"
        pictures[name.replace("8 CLIPs", label)] = shown   # grids say how many and which
        print(f"{name:20s} shape+colour {row['shape+colour_acc']:.3f}  shape {row['shape_acc']:.3f}  colour "
              f"{row['colour_acc']:.3f}  background {row['background_acc']:.3f}  diversity {row['diversity']:.2f}  "
              f"({row['seconds']:.0f} s)", flush=True)
        write_json(report, a.json)
    for i, prompt in enumerate(prompts):
        sl = slice(i * a.per_prompt, (i + 1) * a.per_prompt)
        rows = {"real": real[sl], "MAE g(real)": real_g[sl], **{n: pictures[n][sl] for n in pictures}}
        rows = {k: v.cpu() for k, v in rows.items()}
        rows_figure(rows, Path(a.out) / f"{prompt.replace(' ', '_')}.png", title=f'"a {prompt}"', scale=3)


if __name__ == "__main__":
    main()
