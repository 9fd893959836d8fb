"""How the sampler moves x: a small strategy with `start` (a new stage) and `step`.

`evaluate(x) -> (total, parts, view)` is the objective on g(x) with this step's mask; a sampler
calls it once (Adam) or twice (MALA: x and the proposal, on the same mask) and returns a `Step`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torchvision.transforms.functional import gaussian_blur

from .attacks import normalised_step, project_l2


@dataclass
class Step:
    x: torch.Tensor          # (B, C, r, r) after the step
    loss: torch.Tensor       # () batch mean of the objective
    parts: dict              # {term name: value} at the kept points
    outputs: list            # ClassifierOutputs at the kept points
    extra: dict = field(default_factory=dict)   # e.g. MALA's acceptance rate


def blur_gradient(grad: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian-blur a gradient (B, C, H, W): DeepDream's low-pass trick."""
    k = 2 * math.ceil(2 * sigma) + 1
    return gaussian_blur(grad, [k, k], [sigma, sigma])


class Adam:
    """CaG's sampler: Adam on the pixels, x clamped to [0, 1]; grad_transform e.g. a blur."""

    def __init__(self, lr: float, schedule: str = "constant", grad_transform: Callable | None = None):
        self.lr, self.schedule, self.grad_transform = lr, schedule, grad_transform

    def start(self, x: torch.Tensor, n_steps: int) -> torch.Tensor:
        x = x.detach().clone().requires_grad_(True)
        self.opt = torch.optim.Adam([x], lr=self.lr)
        self.sched = (torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, n_steps)
                      if self.schedule == "cosine" else None)
        return x

    def step(self, x: torch.Tensor, evaluate: Callable) -> Step:
        total, parts, view = evaluate(x)
        loss = total.mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_transform is not None:
            x.grad = self.grad_transform(x.grad)
        self.opt.step()
        if self.sched is not None:
            self.sched.step()
        with torch.no_grad():
            x.clamp_(0, 1)
        return Step(x, loss.detach(), {k: v.detach().mean() for k, v in parts.items()}, view.outputs)


class PGD:
    """Santurkar et al.'s sampler: normalised L2 gradient steps of length step_size that lower the
    objective, x kept within radius eps of the stage's start (their class-conditional seed) and in
    [0, 1]. A targeted L2 PGD attack, as torchattacks' PGDL2 takes it."""

    def __init__(self, step_size: float, eps: float):
        self.step_size, self.eps = step_size, eps

    def start(self, x: torch.Tensor, n_steps: int) -> torch.Tensor:
        self.x0 = x.detach().clone()
        return x.detach()

    def step(self, x: torch.Tensor, evaluate: Callable) -> Step:
        x = x.detach().requires_grad_(True)
        total, parts, view = evaluate(x)
        loss = total.mean()
        grad, = torch.autograd.grad(total.sum(), x)   # each image's own gradient, at any batch size
        x = project_l2(self.x0, x.detach() - normalised_step(grad, self.step_size), self.eps)
        return Step(x, loss.detach(), {k: v.detach().mean() for k, v in parts.items()}, view.outputs)


class MALA:
    """Metropolis-adjusted Langevin on E = objective / temperature, per image (STIC-style)."""

    def __init__(self, step_size: float, temperature: float, generator: torch.Generator):
        self.step_size, self.temperature, self.gen = step_size, temperature, generator

    def start(self, x: torch.Tensor, n_steps: int) -> torch.Tensor:
        return x.detach()

    def step(self, x: torch.Tensor, evaluate: Callable) -> Step:
        def energy(xs):
            total, parts, view = evaluate(xs.clamp(0, 1))
            return total / self.temperature, (parts, view.outputs)
        x, accepted, e, (parts, outputs) = mala_step(x, energy, self.step_size, self.gen)
        return Step(x, e.mean() * self.temperature, {k: v.mean() for k, v in parts.items()}, outputs,
                    {"accept": accepted.float().mean()})


def _where(accept: torch.Tensor, new, old):
    """Per image: new where accepted, else old; through lists, tuples, named tuples and dicts."""
    if isinstance(new, torch.Tensor):
        a = accept.view(-1, *[1] * (new.ndim - 1))
        return torch.where(a, new.detach(), old.detach())
    if isinstance(new, dict):
        return {k: _where(accept, new[k], old[k]) for k in new}
    items = [_where(accept, a, b) for a, b in zip(new, old)]
    return type(new)(*items) if hasattr(new, "_fields") else type(new)(items)


def mala_step(x: torch.Tensor, energy: Callable, step: float, generator: torch.Generator):
    """One Metropolis-adjusted Langevin step, accepted or rejected per image.

    energy(x) -> (E (B,), anything per image). Proposal x' = x - step * dE/dx + sqrt(2 step) * xi;
    accept with probability min(1, exp(E(x) - E(x') + log q(x | x') - log q(x' | x))), q(a | b) =
    N(a; b - step * dE/db, 2 step I). Returns (new x (B, C, H, W), accepted (B,) bool, E (B,), the
    extra output, each at the kept points)."""
    x = x.detach().requires_grad_(True)
    e, out = energy(x)
    g, = torch.autograd.grad(e.sum(), x)
    xi = torch.randn(x.shape, generator=generator).to(x)
    prop = (x - step * g + (2 * step) ** 0.5 * xi).detach().requires_grad_(True)
    e_p, out_p = energy(prop)
    g_p, = torch.autograd.grad(e_p.sum(), prop)

    def log_q(to, frm, grad):  # log N(to; frm - step * grad, 2 step I) without its constant, (B,)
        return -((to - frm + step * grad) ** 2).flatten(1).sum(1) / (4 * step)
    with torch.no_grad():
        log_alpha = e - e_p + log_q(x, prop, g_p) - log_q(prop, x, g)
        accept = torch.rand(len(x), generator=generator).log().to(x) < log_alpha
        return (_where(accept, prop, x), accept, _where(accept, e_p, e), _where(accept, out_p, out))
