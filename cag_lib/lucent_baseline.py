"""Lucent's standard feature visualisation (PyPI `torch-lucent`), as a baseline generator.

Lucent's `render_vis` with its defaults: the image parameterised in Fourier space (`param.image`,
fft=True), Adam at lr 0.05, 512 steps, its `standard_transforms` (pad, jitter, random scale, random
rotation, jitter) applied before every forward pass, and a class logit as the objective. Adapted
to 32x32 grey images: one channel (no colour decorrelation, which is for RGB), and the transforms'
pixel sizes divided by 4 (they were chosen for 128-px images: pad 12 -> 3, jitter 8 -> 2, jitter 4
-> 2, the smallest jitter lucent allows); the scales and angles are lucent's. The objective is each
image's own target logit on one classifier (`render_vis` optimises one network). The loop is
render_vis's, without its layer hooks: the logit is the classifier's output.

    pip install torch-lucent        # (the `lucent` extra of cag_lib)
    >>> images = lucent_images(bundle.classifiers[0], targets, seed=0)   # (B, 1, 32, 32) in [0, 1]
"""
from __future__ import annotations

import random
import warnings

import numpy as np
import torch

STEPS, LR = 512, 0.05


def _lucent():
    try:
        with warnings.catch_warnings():       # lucent's kornia uses torch.jit.script, deprecated
            warnings.simplefilter("ignore")
            from lucent.optvis import param, transform
    except ImportError as e:
        raise ImportError("the Lucent baseline needs torch-lucent: pip install torch-lucent "
                          "(or pip install -e '.[lucent]')") from e
    return param, transform


def small_transforms(transform, size: int = 32) -> list:
    """Lucent's standard_transforms with their pixel sizes scaled from 128 px to `size`."""
    k = size / 128
    return [transform.pad(max(1, round(12 * k)), mode="constant", constant_value=0.5),
            transform.jitter(max(2, round(8 * k))),
            transform.random_scale([1 + (i - 5) / 50.0 for i in range(11)]),
            transform.random_rotate(list(range(-10, 11)) + 5 * [0]),
            transform.jitter(max(2, round(4 * k)))]


def lucent_images(classifier, targets: torch.Tensor, size: int = 32, channels: int = 1, steps: int = STEPS,
                  lr: float = LR, seed: int = 0) -> torch.Tensor:
    """One image per target (B,) maximising its class logit, Lucent's way: (B, C, size, size) in
    [0, 1], on the CPU. Seeded: lucent draws from torch's, numpy's and Python's global generators."""
    param, transform = _lucent()
    torch.manual_seed(seed), np.random.seed(seed), random.seed(seed)
    params, image_f = param.image(size, batch=len(targets), channels=channels, fft=True)
    opt = torch.optim.Adam(params, lr=lr)
    augment = transform.compose(small_transforms(transform, size))
    y = torch.as_tensor(targets).long()
    for _ in range(steps):
        opt.zero_grad()
        logits = classifier(augment(image_f())).logits                        # (B, K)
        loss = -logits.gather(1, y[:, None]).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return image_f().detach().cpu().clamp(0, 1)
