"""L2 projected gradient descent: the attack that trains robust classifiers, and the step of the
Santurkar et al. sampler (cag_lib.samplers.PGD). Both are torchattacks' PGDL2, step for step
(tests/test_robust.py checks them against it); the library is not a dependency of cag_lib."""
from __future__ import annotations

import math
from typing import Callable

import torch


def per_image_norm(t: torch.Tensor) -> torch.Tensor:
    """The L2 norm of each image of t (B, C, H, W), shaped (B, 1, 1, 1) to divide by."""
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)


def project_l2(x0: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """x moved into the L2 ball of radius eps around x0 (per image), then clamped to [0, 1]."""
    d = x - x0
    return (x0 + d * (eps / per_image_norm(d)).clamp(max=1)).clamp(0, 1)


def normalised_step(grad: torch.Tensor, size: float) -> torch.Tensor:
    """A step of L2 length `size` per image along grad."""
    return size * grad / per_image_norm(grad)


def pgd_l2(loss_fn: Callable, x: torch.Tensor, eps: float, steps: int, g: torch.Generator | None,
           random_start: bool = True) -> torch.Tensor:
    """Images (B, C, H, W) in [0, 1] moved within an L2 ball of radius eps (per image) to raise
    loss_fn(x): projected gradient ascent from a random start, step 2.5 eps / steps (Madry et al.).
    Adversarial training on these makes the model's input gradient point at visible features
    (Santurkar et al. 2019), which is what a generator needs from it."""
    adv = x
    if random_start:
        adv = project_l2(x, x + torch.randn(x.shape, generator=g).to(x.device) * eps / math.sqrt(x[0].numel()) * 0.5,
                         eps)
    for _ in range(steps):
        adv = adv.detach().requires_grad_(True)
        grad, = torch.autograd.grad(loss_fn(adv), adv)
        adv = project_l2(x, adv.detach() + normalised_step(grad, 2.5 * eps / steps), eps)
    return adv.detach()


def robust_accuracy(model, images: torch.Tensor, labels: torch.Tensor, eps: float, steps: int = 10,
                    batch_size: int = 500) -> float:
    """Accuracy of a classifier (x in [0, 1] -> output with .logits) on images each moved by an
    untargeted L2 PGD of radius eps (no random start, `steps` steps): its robust accuracy."""
    model.eval()
    correct = 0
    for i in range(0, len(images), batch_size):
        x, y = images[i:i + batch_size], labels[i:i + batch_size]
        adv = pgd_l2(lambda xi: torch.nn.functional.cross_entropy(model(xi).logits, y), x, eps, steps, None,
                     random_start=False)
        with torch.no_grad():
            correct += int((model(adv).logits.argmax(1) == y).sum())
    return correct / len(images)
