"""The objective the sampler lowers: a weighted sum of small named terms, composed like lucent's.

A term is a function of one `View`, what one forward pass saw (the images, the targets, every
source's output on g(x)), and returns one value per image (B,) or one for the batch (). Terms add
and scale into an `Objective`:

    >>> obj = classification() + 1.0 * diversity() + 1.0 * distribution(stats)   # eq. 3 + 4 + 6
    >>> total, parts = obj.evaluate(view)   # total (B,) or (); parts: {"cls": ..., "div": ..., ...}

Your own term: `Objective.term("mine", lambda view: ...)`, then `generate(..., objective=obj)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from .losses import (classification_loss, distribution_loss, diversity_loss, diversity_loss_paper, gram_loss,
                     total_variation)


@dataclass
class View:
    """One forward pass of the sampler."""
    x: torch.Tensor         # (B, C, r, r): the optimised images at the stage's resolution
    targets: torch.Tensor   # (B,) class indices
    outputs: list           # one ClassifierOutput per used source on g(x): logits (B, K), features (B, D)
    maps: list              # one last feature map (B, C', N) per source (the Gram term), else Nones
    batchnorm: list = field(default_factory=list)  # per source: R_BN of this pass (the BatchNorm prior), or None


class Objective:
    """sum_i weight_i * term_i(view). Each term: (name, weight, fn, per_image)."""

    def __init__(self, terms=()):
        self.terms = list(terms)

    @staticmethod
    def term(name: str, fn: Callable[[View], torch.Tensor], per_image: bool = False,
             needs_maps: bool = False, needs_batchnorm: bool = False) -> "Objective":
        """One term; per_image: fn returns (B,) (a MALA energy needs every term per image);
        needs_maps / needs_batchnorm: the View must carry the feature maps / the BatchNorm prior."""
        needs = frozenset({"maps"} if needs_maps else set()) | frozenset({"batchnorm"} if needs_batchnorm else set())
        return Objective([(name, 1.0, fn, per_image, needs)])

    def __add__(self, other: "Objective") -> "Objective":
        """The terms of both; one term twice (a + 2 * a) has its weights added, two different terms
        with one name are refused."""
        terms = list(self.terms)
        for n, w, fn, p, m in other.terms:
            same = [i for i, t in enumerate(terms) if t[0] == n]
            if same and terms[same[0]][2] is not fn:
                raise ValueError(f"the objective already has a different term named {n!r}: give each term "
                                 "its own name (Objective.term(name, fn))")
            if same:
                terms[same[0]] = (n, terms[same[0]][1] + w, fn, p, m)
            else:
                terms.append((n, w, fn, p, m))
        return Objective(terms)

    def __rmul__(self, weight: float) -> "Objective":
        return Objective([(n, weight * w, fn, p, m) for n, w, fn, p, m in self.terms])

    __mul__ = __rmul__

    def __sub__(self, other: "Objective") -> "Objective":
        return self + (-1.0) * other

    @property
    def per_image(self) -> bool:
        return all(p for *_, p, _ in self.terms)

    @property
    def needs_maps(self) -> bool:
        return any("maps" in m for *_, m in self.terms)

    @property
    def needs_batchnorm(self) -> bool:
        return any("batchnorm" in m for *_, m in self.terms)

    @property
    def names(self) -> list[str]:
        return [n for n, *_ in self.terms]

    def evaluate(self, view: View) -> tuple[torch.Tensor, dict]:
        """(total: (B,) if any term is per image, else (); {name: the term's unweighted value})."""
        parts = {n: fn(view) for n, _, fn, _, _ in self.terms}
        total = parts[self.terms[0][0]] * self.terms[0][1]
        for n, w, *_ in self.terms[1:]:
            total = total + w * parts[n]
        return total, parts

    def __call__(self, view: View) -> torch.Tensor:
        return self.evaluate(view)[0]

    def __repr__(self) -> str:
        return " + ".join(f"{w:g} * {n}" for n, w, *_ in self.terms)


def _mean_over_sources(values: list) -> torch.Tensor:
    return torch.stack(values).mean(0)


def classification() -> Objective:
    """Eq. 1/3, per image: the target's cross-entropy (a single class: its negative logit), averaged
    over the sources (the ensemble)."""
    return Objective.term("cls", lambda v: _mean_over_sources(
        [classification_loss(o.logits, v.targets, reduction="none") for o in v.outputs]), per_image=True)


def diversity(form: str = "cosine") -> Objective:
    """Eq. 4, averaged over the sources: the mean cosine similarity of same-class features (form
    "cosine", the book's) or the raw inner products summed over pairs (form "paper")."""
    loss = diversity_loss_paper if form == "paper" else diversity_loss
    return Objective.term("div", lambda v: _mean_over_sources([loss(o.features, v.targets) for o in v.outputs]))


def _on_device(tensors: list) -> Callable:
    """device -> the tensors (nested tuples kept) on it, moved once per device, not every step."""
    moved = {}

    def get(device):
        if device not in moved:
            moved[device] = [tuple(t.to(device) for t in ts) if isinstance(ts, tuple) else ts.to(device)
                             for ts in tensors]
        return moved[device]
    return get


def distribution(class_stats: list, form: str = "mean") -> Objective:
    """Eq. 6: per-class feature mean/std against the real data's; one (mean (K, D), std (K, D)) per
    source, measured a layer above (the bundle's feature_stats). form "mean": squared errors averaged
    over features (the book's); "paper": summed over them, as eq. 6 is written."""
    reduce = "sum" if form == "paper" else "mean"
    stats = _on_device(class_stats)

    def fn(v: View) -> torch.Tensor:
        pairs = stats(v.targets.device)
        for i, (o, (m, _)) in enumerate(zip(v.outputs, pairs)):
            if o.features.shape[1] != m.shape[1]:
                raise ValueError(f"class_stats[{i}] has {m.shape[1]} features, and source {i} gives "
                                 f"{o.features.shape[1]}: they were measured on another classifier")
        return _mean_over_sources([distribution_loss(o.features, v.targets, m, s, reduce)
                                   for o, (m, s) in zip(v.outputs, pairs)])
    return Objective.term("dist", fn)


def gram(class_grams: list) -> Objective:
    """STIC's Gram-matrix term, per image; one (K, C, C) class Gram matrix per source."""
    grams = _on_device(class_grams)
    return Objective.term("gram", lambda v: _mean_over_sources(
        [gram_loss(m, v.targets, G) for m, G in zip(v.maps, grams(v.targets.device))]),
        per_image=True, needs_maps=True)


def batchnorm_prior() -> Objective:
    """DeepInversion's BatchNorm prior, averaged over the sources that have BatchNorm layers (on the
    small worlds both: the ResNet, and the ViT in its convolutional stem): cag_lib.batchnorm."""
    def fn(v: View) -> torch.Tensor:
        values = [b for b in v.batchnorm if b is not None]
        if not values:
            raise ValueError("the BatchNorm prior needs a source with BatchNorm layers (e.g. a ResNet); none of "
                             "the used sources has one: set bn_weight=0")
        return torch.stack(values).mean()
    return Objective.term("bn", fn, needs_batchnorm=True)


def smoothness() -> Objective:
    """Total variation of x (feature visualisation's smoothness prior)."""
    return Objective.term("tv", lambda v: total_variation(v.x))


def objective_from_config(cfg, class_stats: list | None = None, class_grams: list | None = None) -> Objective:
    """The objective a GenerateConfig names: eq. 3 plus every term whose weight is not 0."""
    obj = classification()
    if cfg.diversity_weight:
        obj = obj + cfg.diversity_weight * diversity(cfg.diversity_form)
    if cfg.distribution_weight:
        obj = obj + cfg.distribution_weight * distribution(class_stats, cfg.distribution_form)
    if cfg.gram_weight:
        obj = obj + cfg.gram_weight * gram(class_grams)
    if cfg.tv_weight:
        obj = obj + cfg.tv_weight * smoothness()
    if cfg.bn_weight:
        obj = obj + cfg.bn_weight * batchnorm_prior()
    return obj
