"""What the sampler keeps of a run: per-step history, a progress bar, snapshots and callbacks."""
from __future__ import annotations

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
    callback that returns True (exactly) stops the run."""

    def __init__(self, result, steps: int, size: int, snapshot_every: int = 0,
                 callbacks: Sequence[Callable] = (), progress: bool = True):
        self.result, self.size, self.every, self.callbacks = result, size, snapshot_every, list(callbacks)
        self.history = result.history
        self.history.update(loss=[], cls=[], target_prob=[], resolution=[])
        quiet = os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true")  # e.g. a book build
        self.bar = tqdm(total=steps, desc="generate", disable=quiet or not progress, mininterval=1)
        self.step = 0

    def record(self, step, targets: torch.Tensor, resolution: int) -> bool:
        """Record one sampler Step; True if a callback asked to stop."""
        self.step += 1
        if not torch.isfinite(step.loss) or not torch.isfinite(step.x).all():
            raise NonFiniteError(f"the objective or the images became non-finite at step {self.step}: "
                                 "lower lr (or langevin_step), and check init_std and the loss weights")
        with torch.no_grad():
            prob = torch.stack([o.logits.softmax(-1).gather(1, targets[:, None]) for o in step.outputs]).mean()
        h = self.history
        h["loss"].append(step.loss.item()), h["target_prob"].append(prob.item())
        h["cls"].append(step.parts["cls"].item() if "cls" in step.parts else float("nan"))
        h["resolution"].append(resolution)
        for k, v in step.extra.items():
            h.setdefault(k, []).append(float(v))
        self.bar.update()
        return self._snapshot(step.x)

    def _snapshot(self, x) -> bool:
        if not self.every or self.step % self.every:
            return False
        snap = full_size(x, self.size)
        self.result.snapshots.append((self.step, snap))
        return any([cb(self.step, snap, self.result) is True for cb in self.callbacks])

    def close(self) -> None:
        self.bar.close()
