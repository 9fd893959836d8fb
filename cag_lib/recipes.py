"""Named configurations of the one sampler: the method, its baselines and its ablations.

Every chapter and benchmark takes its configurations from here, so "eq. 1" or "the full recipe"
means the same thing everywhere.

    >>> from cag_lib.recipes import RECIPES
    >>> generate(bundle, targets, RECIPES["eq1"])
"""
from __future__ import annotations

import ast
from dataclasses import fields, replace
from pathlib import Path

import torch

from .generate import GenerateConfig, generate
from .metrics import evaluate, judge
from .viz import rows_figure

FULL = GenerateConfig()  # MAE, 8->16->32, ensemble, diversity + distribution losses, blur 0.5

# eq. 1: the targeted adversarial attack (no MAE, one size, one source, no extra losses)
EQ1 = replace(FULL, use_mae=False, resolutions=(32,), classifiers=(0,), diversity_weight=0,
              distribution_weight=0, blur_sigma=0)

# the chapters' cumulative arc (ARC below): each adds one part to the one before, and the last one plus
# the blur of the gradient is "CaG full" (chapters 5, 6 and 7)
MAE_STAGES = replace(EQ1, use_mae=True, resolutions=FULL.resolutions)
MAE_STAGES_LOSSES = replace(MAE_STAGES, diversity_weight=FULL.diversity_weight,
                            distribution_weight=FULL.distribution_weight)
MAE_STAGES_LOSSES_ENSEMBLE = replace(MAE_STAGES_LOSSES, classifiers=FULL.classifiers)

# CaG as the paper writes it: eq. 4 as raw inner products summed over pairs, eq. 6 summed over
# features, no blur of the gradient (the paper's trick for fast runs), and x, the optimised input, is
# the picture (recipes.PICTURE). Where the paper gives nothing to follow, the book's choices stay: the
# mask ratio 0.75 (the MAE's training ratio), 8 -> 16 -> 32 for 64 -> 128 -> 256, 250 steps, lr 0.05,
# both sources. The summed forms have another scale than the book's, so their weights were chosen
# on the validation judge alone (benchmarks/paper_weights.py).
PAPER = replace(FULL, diversity_form="paper", distribution_form="paper", blur_sigma=0.0,
                diversity_weight=1e-5, distribution_weight=1.0)

# Santurkar et al. 2019, "Image Synthesis with a Single (Robust) Classifier": targeted L2 PGD on a robust
# model from a class-conditional Gaussian seed. Their ImageNet settings (eps 40, step 1, 60 steps at
# 224 x 224 x 3) scaled by sqrt(pixels) to 32 x 32 x 1: eps 3.3, step 0.083. No MAE, one source (run it on
# the bundle "fmnist-robust"), one size.
SANTURKAR = replace(EQ1, sampler="pgd", start="class gaussian", steps=60, pgd_eps=3.3, pgd_step=0.083)
# DeepInversion (Yin et al. 2020) on a plain ResNet: eq. 1 plus the BatchNorm prior, jitter and TV, Adam
# at their CIFAR-10 lr 0.1; 250 steps (theirs: 2000) so that its cost is CaG's. The BatchNorm weight was
# chosen on the validation judge (benchmarks/levers.py), with batches that mix the classes as theirs do;
# TV is the book's (mean absolute difference).
DEEPINVERSION = replace(EQ1, bn_weight=0.01, jitter=2, tv_weight=0.1, lr=0.1)

RECIPES = {
    "eq1": EQ1,
    # the classic feature-visualisation control: no MAE, ensemble + progressive + blur
    "no-MAE control (ens+prog+blur)": replace(FULL, use_mae=False, blur_sigma=1.0, diversity_weight=0,
                                              distribution_weight=0),
    "CaG (MAE only)": replace(EQ1, use_mae=True),
    "MAE + stages": MAE_STAGES,
    "MAE + stages + losses": MAE_STAGES_LOSSES,
    "MAE + stages + losses + ensemble": MAE_STAGES_LOSSES_ENSEMBLE,
    "CaG full": FULL,
    "full - MAE": replace(FULL, use_mae=False),
    "full - progressive": replace(FULL, resolutions=(32,)),
    "full - diversity": replace(FULL, diversity_weight=0),
    "full - distribution": replace(FULL, distribution_weight=0),
    "full - ensemble": replace(FULL, classifiers=(0,)),
    "full - blur": replace(FULL, blur_sigma=0.0),
    # the paper as written, and each of the book's departures from it as one change
    "CaG (paper)": PAPER,
    "paper + cosine eq. 4": replace(PAPER, diversity_form="cosine", diversity_weight=FULL.diversity_weight),
    "paper + averaged eq. 6": replace(PAPER, distribution_form="mean",
                                      distribution_weight=FULL.distribution_weight),
    "paper + blur": replace(PAPER, blur_sigma=FULL.blur_sigma),
    # every classic prior at once: the strongest baseline without an MAE that this book found
    "classic: ens+prog+blur+jitter+TV": replace(FULL, use_mae=False, blur_sigma=1.0, jitter=2, tv_weight=1.0,
                                                diversity_weight=0, distribution_weight=0),
    # STIC-style Metropolis-adjusted Langevin in the same loop: MAE, ensemble, 8->16->32, per-image energy
    "MALA (MAE+ens+prog)": replace(FULL, sampler="mala", diversity_weight=0, distribution_weight=0,
                                   blur_sigma=0),
    # ... plus STIC's Gram-matrix term (feature correlations of g(x) close to the class's real images)
    "MALA + Gram (STIC)": replace(FULL, sampler="mala", diversity_weight=0, distribution_weight=0,
                                  blur_sigma=0, gram_weight=1.0),
    # the full recipe run 4x longer: what the validation judge preferred among the settings the panel
    # measured (0.940 against 0.915 at 250 steps, benchmarks/results/panel_fmnist.json); the test
    # judges were read only after it was chosen
    "CaG long (1000 steps)": replace(FULL, steps=1000),
    # the rivals the paper names, and the levers that might close CaG's realism gap (the page "What
    # closes the gap"; weights chosen on the validation judge by benchmarks/levers.py)
    "Santurkar et al. (robust PGD)": SANTURKAR,
    "DeepInversion": DEEPINVERSION,
    "CaG + BN prior": replace(FULL, bn_weight=0.01),
    "CaG, class-Gaussian start": replace(FULL, start="class gaussian"),
    # text-to-image on the shapes world (chapter 8), with an ensemble of CLIPs: no class statistics for a
    # new composition (eq. 6 off); diversity off, lr 0.02 and 1000 steps were chosen on 8 compositions
    # the CLIPs saw in training, not on the held-out prompts that benchmarks/text_to_image.py measures
    "text-to-image": replace(FULL, distribution_weight=0, diversity_weight=0, lr=0.02, steps=1000),
}
# the rows of the paper-style ablation (benchmarks/ablation.py's default; the last recipes are extra)
ABLATION_ROWS = [name for name in RECIPES
                 if not name.startswith(("classic", "MALA", "text", "CaG long", "MAE +", "CaG (paper)", "paper +",
                                         "full - blur", "Santurkar", "DeepInversion", "CaG + ", "CaG, "))]
# the picture each recipe is judged by where it is not g(x): the paper's is its optimised input
PICTURE = {"CaG (paper)": "x", "paper + cosine eq. 4": "x", "paper + averaged eq. 6": "x", "paper + blur": "x"}
# the cumulative arc, in order: ... + the blur of the gradient = CaG full
ARC = ["eq1", "CaG (MAE only)", "MAE + stages", "MAE + stages + losses", "MAE + stages + losses + ensemble",
       "CaG full"]


def recipe(name: str, **changes) -> GenerateConfig:
    """A named recipe, optionally with fields changed: recipe("eq1", steps=60)."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid recipes: {list(RECIPES)}")
    return replace(RECIPES[name], **changes)


WORDS = {"true": True, "yes": True, "false": False, "no": False, "none": None}


def parse_sets(pairs, config_class=GenerateConfig, reserved: dict | None = None) -> dict:
    """Command-line changes of a config, FIELD=VALUE each -> {field: value}, typed like the field:
    "steps=100", "lr=0.01", "resolutions=16,32" or "resolutions=(16, 32)" or "resolutions=32",
    "use_mae=false", "classifiers=none", "lr_schedule=cosine". An unknown field, a value of the
    wrong type, or a field in `reserved` ({field: why not}) is a ValueError that says what to write."""
    valid = {f.name: f.default for f in fields(config_class)}
    changes = {}
    for pair in pairs or ():
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in valid:
            raise ValueError(f"--set {pair!r}: write FIELD=VALUE with a {config_class.__name__} field: "
                             + ", ".join(valid))
        if key in (reserved or {}):
            raise ValueError(f"--set {key}=...: {reserved[key]}")
        try:
            value = WORDS[text.strip().lower()] if text.strip().lower() in WORDS else ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        changes[key] = typed_value(key, value, valid[key])
    return changes


def typed_value(key: str, value, default):
    """value in the type of the field's default (an int for a float, 0/1 for a bool, one int for a
    tuple); else a ValueError."""
    if isinstance(default, tuple) and isinstance(value, int):
        value = (value,)
    value = tuple(value) if isinstance(value, list) else value
    if isinstance(default, bool) and value in (0, 1):
        value = bool(value)
    elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if default is not None and value is not None and not isinstance(value, type(default)):
        raise ValueError(f"--set {key}={value!r}: {key} must be of type {type(default).__name__}, "
                         f"like its default {default!r}")
    return value


def shown_images(result, show: str = "g(x)"):
    """The picture a result is judged by: g(x) (mean reconstruction) where there is an MAE, else x."""
    if show == "g(x)" and result.reconstructions is not None:
        return result.reconstructions, "g(x)"
    return result.images, "x"


def run_recipe(bundle, name: str, config: GenerateConfig, per_class: int, n_real: int = 2000,
               out=None, show: str | None = None, real=None):
    """Generate per_class images of every class with `config`, judge them, and (if out) write the grid
    <out>/<name>.png. Returns (row of numbers, Result, the figure or None). show: "g(x)" or "x" (default:
    the recipe's own picture, PICTURE, else g(x)). real: (images, labels) of real test images to
    compare with (default: the first n_real of the bundle's world)."""
    targets = torch.arange(len(bundle.class_names)).repeat_interleave(per_class)   # (B,)
    show = show or PICTURE.get(name, "g(x)")
    res = generate(bundle, targets, config)
    shown, what = shown_images(res, show)
    row = evaluate(bundle, shown, targets, *real) if real is not None else judge(bundle, shown, targets, n_real)
    row.update(seconds=round(res.seconds, 1), shown=what)
    fig = None
    if out is not None:
        slug = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
        fig = rows_figure({c: shown[targets == i] for i, c in enumerate(bundle.class_names)},
                          Path(out) / f"{slug}.png",
                          title=f"{name} [{what}]: judge acc {row['judge_acc']:.2f}, FD {row['fd']:.1f}")
    return row, res, fig
