"""What the sampler keeps of a run: per-step history, a progress bar, snapshots and callbacks.

The per-step numbers stay on the models' device and are fetched every `fetch_every` steps (and
before a callback or at the end) in one transfer: on a GPU, a `.item()` per step would make the
host wait for every step to finish before queuing the next.
"""
from __future__ import annotations

import math
import os
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .errors import NonFiniteError


def full_size(x: torch.Tensor, size: int) -> torch.Tensor:
    """Images (B, C, r, r) -> (B, C, size, size) in [0, 1], detached."""
    x = x.detach()
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.clamp(0, 1)


class Recorder:
    """history: per step loss, cls, target_prob (batch means), resolution (+ a sampler's extras).
    callbacks: cb(step, images (B, C, S, S), result) every `snapshot_every` steps (0: never); a
    callback that returns True (exactly) stops the run. A non-finite loss or image raises
    NonFiniteError when the steps are fetched."""

    def __init__(self, result, steps: int, size: int, snapshot_every: int = 0,
                 callbacks: Sequence[Callable] = (), progress: bool = True, fetch_every: int = 25):
        self.result, self.size, self.every, self.callbacks = result, size, snapshot_every, list(callbacks)
        self.history, self.fetch_every, self.pending = result.history, fetch_every, []
        self.history.update(loss=[], cls=[], target_prob=[], resolution=[])
        quiet = os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true")  # e.g. a book build
        self.bar = tqdm(total=steps, desc="generate", disable=quiet or not progress, mininterval=1)
        self.step = 0

    def record(self, step, targets: torch.Tensor, resolution: int) -> bool:
        """Record one sampler Step; True if a callback asked to stop."""
        self.step += 1
        with torch.no_grad():
            prob = torch.stack([o.logits.softmax(-1).gather(1, targets[:, None]) for o in step.outputs]).mean()
            finite = torch.isfinite(step.loss) & torch.isfinite(step.x).all()
        cls = step.parts["cls"] if "cls" in step.parts else torch.full_like(step.loss, math.nan)
        self.pending.append((resolution, [step.loss, prob, cls, finite], step.extra))
        self.bar.update()
        if len(self.pending) >= self.fetch_every:
            self.fetch()
        return self._snapshot(step.x)

    def fetch(self) -> None:
        """The pending steps' numbers to the host in one transfer, into history."""
        if not self.pending:
            return
        first = self.step - len(self.pending) + 1
        rows = torch.stack([torch.stack([v.float() for v in values]) for _, values, _ in self.pending]).tolist()
        h = self.history
        for i, ((resolution, _, extra), (loss, prob, cls, finite)) in enumerate(zip(self.pending, rows)):
            if not finite:
                self.pending = []
                raise NonFiniteError(f"the objective or the images became non-finite at step {first + i}: "
                                     "lower lr (or langevin_step), and check init_std and the loss weights")
            h["loss"].append(loss), h["target_prob"].append(prob), h["cls"].append(cls)
            h["resolution"].append(resolution)
            for k, v in extra.items():
                h.setdefault(k, []).append(float(v))
        self.pending = []

    def _snapshot(self, x) -> bool:
        if not self.every or self.step % self.every:
            return False
        self.fetch()
        snap = full_size(x, self.size)
        self.result.snapshots.append((self.step, snap))
        return any([cb(self.step, snap, self.result) is True for cb in self.callbacks])

    def close(self) -> None:
        """Fetch what is pending and close the bar."""
        self.bar.close()
        self.fetch()
