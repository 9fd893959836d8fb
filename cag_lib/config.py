"""`GenerateConfig`: every setting of the sampler, frozen, checked when it is made."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

CHOICES = {"lr_schedule": ("constant", "cosine"), "autocast": ("", "bf16", "fp16"), "sampler": ("adam", "mala", "pgd"),
           "attention": ("auto", "sdpa", "eager"), "start": ("noise", "class gaussian"), "diversity_form": ("cosine", "paper"),
           "distribution_form": ("mean", "paper")}
# MALA needs an energy per image; these terms and transforms couple the images of a batch
MALA_OFF = ("diversity_weight", "distribution_weight", "blur_sigma", "jitter", "tv_weight", "bn_weight")


@dataclass(frozen=True)
class GenerateConfig:
    """Defaults are the full CaG recipe as measured best on fmnist (benchmarks/ablation.py); eq. 1 and
    the baselines are the same loop with parts switched off. Change one with dataclasses.replace or
    cag_lib.recipes.recipe(name, field=value)."""
    steps: int = 250                      # optimiser steps over all stages
    resolutions: tuple = (8, 16, 32)      # progressive schedule; a single size turns it off
    lr: float = 0.05
    lr_schedule: str = "constant"         # or "cosine": within each stage, lr decays to 0 (CosineAnnealingLR)
    use_mae: bool = True                  # eq. 3 (True) or eq. 1 (False: a targeted adversarial attack)
    mask_ratio: float = 0.75
    keep_visible: bool = False            # g(x) = decoder output everywhere (True: visible patches copied from x)
    classifiers: tuple | None = None      # indices of the sources to use (None = all: the ensemble)
    diversity_weight: float = 1.0         # eq. 4
    diversity_form: str = "cosine"        # "cosine": mean cosine over same-class pairs (the book's);
                                          # "paper": raw inner products summed over pairs, as eq. 4 is written
    distribution_weight: float = 1.0      # eq. 6 (class feature statistics; measured from a bundle's data)
    distribution_form: str = "mean"       # "mean": squared errors averaged over features (the book's);
                                          # "paper": summed over features, as eq. 6 is written
    blur_sigma: float = 0.5               # Gaussian blur of the gradient, in pixels of the stage
    jitter: int = 0                       # random shift of the input, in pixels of the stage
    tv_weight: float = 0.0                # total variation of x
    bn_weight: float = 0.0                # DeepInversion's prior: the batch's statistics at every BatchNorm layer of
                                          # the sources against the layer's running mean and variance
    start: str = "noise"                  # "noise": 0.5 + init_std * N(0, 1), clamped; "class gaussian": a draw
                                          # from a Gaussian fitted to the class's real images at 8x8 (Santurkar et al.)
    init_std: float = 0.1
    final_masks: int = 4                  # Result.reconstructions: mean of g(x) over this many fresh masks
    seed: int = 0
    autocast: str = ""                    # "bf16" or "fp16": mixed precision for the models; "" = fp32 (exact)
    attention: str = "auto"               # the transformers' attention: "sdpa" (fused), "eager" (q k^T, softmax,
                                          # v as three ops), "auto": eager under autocast on a CPU, else sdpa
    sampler: str = "adam"                 # "adam" (CaG), "mala": Metropolis-adjusted Langevin (STIC-style), or
                                          # "pgd": normalised L2 steps of pgd_step within pgd_eps of the start
                                          # (Santurkar et al.)
    pgd_step: float = 0.08                # PGD: L2 length of a step, in [0, 1] pixels
    pgd_eps: float = 3.3                  # PGD: L2 radius around the start
    langevin_step: float = 1e-3           # MALA: x' = x - step * grad E + sqrt(2 step) * noise
    temperature: float = 0.003            # MALA: E = mean_f [CE + gram_weight * Gram term] / temperature, per image
    gram_weight: float = 0.0              # STIC's Gram-matrix term: feature correlations of g(x) vs the class's data
    snapshot_every: int = 0               # call callbacks / keep snapshots every k steps (0 = never)
    progress: bool = True                 # a tqdm bar (environment TQDM_DISABLE=1 turns it off too)

    def __post_init__(self):
        for name in ("resolutions", "classifiers"):    # a list is as good as a tuple
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        for f in fields(self):
            _check_field(f.name, getattr(self, f.name), f.default)
        _check_schedule(self)
        if self.sampler == "mala":
            coupled = [k for k in MALA_OFF if getattr(self, k)]
            if coupled:
                raise ValueError("the MALA sampler needs a per-image energy; set "
                                 + ", ".join(f"{k}=0" for k in coupled))

    def stage_steps(self) -> list[int]:
        """Steps per stage: an equal share, the remainder to the last stage."""
        n = len(self.resolutions)
        base = [self.steps // n] * n
        base[-1] += self.steps - sum(base)
        return base


def _check_schedule(cfg: GenerateConfig) -> None:
    """A schedule that cannot run as written: stages that shrink or repeat, stages left without a
    step, a source named twice (it would count double in the ensemble's mean)."""
    res = cfg.resolutions
    if any(b <= a for a, b in zip(res, res[1:])):
        raise ValueError(f"GenerateConfig resolutions={res!r}: a progressive schedule grows, each stage "
                         f"starting from the last one upsampled; give increasing sizes, e.g. (8, 16, 32)")
    if cfg.steps < len(res):
        raise ValueError(f"GenerateConfig steps={cfg.steps} for {len(res)} stages {res!r}: the first "
                         f"{len(res) - 1} stage(s) would get no step; give steps >= {len(res)} or "
                         f"fewer resolutions")
    if cfg.classifiers is not None and len(set(cfg.classifiers)) != len(cfg.classifiers):
        raise ValueError(f"GenerateConfig classifiers={cfg.classifiers!r} names a source twice; each "
                         f"source counts once in the ensemble's mean")


def _check_field(name: str, value, default) -> None:
    """One clear ValueError per bad value, naming what is valid."""
    bad = lambda why: ValueError(f"GenerateConfig {name}={value!r}: {why}")  # noqa: E731
    if name in CHOICES:
        if value not in CHOICES[name]:
            raise bad(f"valid values: {', '.join(map(repr, CHOICES[name]))}")
    elif name == "resolutions":
        if not isinstance(value, tuple) or not value or not all(_is_int(r) and r > 0 for r in value):
            raise bad("give a non-empty tuple of positive sizes, e.g. (32,) or (8, 16, 32)")
    elif name == "classifiers":
        if value is not None and (not isinstance(value, tuple) or not value
                                  or not all(_is_int(i) and i >= 0 for i in value)):
            raise bad("give None (every source) or a non-empty tuple of source indices, e.g. (0,)")
    elif isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("give True or False")
    elif isinstance(default, int):
        low = 1 if name in ("steps", "final_masks") else (None if name == "seed" else 0)
        if not _is_int(value) or (low is not None and value < low):
            raise bad(f"give a whole number{f' >= {low}' if low is not None else ''}")
    elif isinstance(default, float):
        _check_float(name, value, bad)


def _check_float(name: str, value, bad) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad("give a finite number")
    if name == "lr" and not 0 < value <= 1:
        raise bad("Adam moves every pixel by about lr per step in an image range of [0, 1]; give 0 < lr <= 1 "
                  "(the recipes use 0.02-0.05)")
    if name == "mask_ratio" and not 0 <= value < 1:
        raise bad("give 0 <= mask_ratio < 1 (the MAE's training ratio, 0.75, is the default); at least one "
                  "patch must stay visible")
    if name in ("langevin_step", "temperature", "pgd_step", "pgd_eps") and value <= 0:
        raise bad("give a number > 0")
    if value < 0:
        raise bad("give a number >= 0")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
