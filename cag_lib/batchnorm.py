"""DeepInversion's prior (Yin et al. 2020): a trained network's BatchNorm layers remember the mean
and variance of their inputs over the training data; images whose batch statistics match them at
every layer look, to the network, like its data.

    R_BN(x) = sum_l ||mu_l(x) - running_mean_l||_2 + ||var_l(x) - running_var_l||_2
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and m.running_mean is not None]


def batch_divergence(inputs: torch.Tensor, layer: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """One layer's term: the batch's per-channel mean and variance of `inputs` (B, C, ...) against
    the layer's running statistics, as L2 distances (DeepInversion's r_feature)."""
    x = inputs.float().transpose(0, 1).flatten(1)                   # (C, B * H * W)
    mean, var = x.mean(1), x.var(1, unbiased=False)
    return torch.norm(mean - layer.running_mean, 2) + torch.norm(var - layer.running_var, 2)


@contextmanager
def batchnorm_divergence(model: nn.Module, enabled: bool = True):
    """Within the block, every forward pass of model adds up R_BN over its BatchNorm layers; the
    block yields a function that returns the sum so far (a () tensor), or None when disabled or
    the model has no BatchNorm layer. The hooks are removed on leaving."""
    layers = batchnorm_layers(model) if enabled else []
    total = []
    handles = [layer.register_forward_hook(lambda m, inp, out: total.append(batch_divergence(inp[0], m)))
               for layer in layers]
    try:
        yield lambda: torch.stack(total).sum() if total else None
    finally:
        for h in handles:
            h.remove()


def class_batches(classes, per_class: int, mixed: bool) -> list[list[int]]:
    """The targets of each batch when making per_class pictures of each class: one class per batch,
    or, for the BatchNorm prior (mixed), batches of per_class that hold every class in turn, since
    the running statistics it matches are over all classes and a one-class batch cannot match them."""
    classes = list(classes)
    if not mixed:
        return [[c] * per_class for c in classes]
    every = [c for _ in range(per_class) for c in classes]
    return [every[i:i + per_class] for i in range(0, len(every), per_class)]
