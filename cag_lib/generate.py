"""The sampler: one loop, configured by `GenerateConfig`, that turns classifiers into generators.

Every step takes the current images x (B, C, r, r) at the stage's resolution r, upsamples them to
the MAE's size, passes them through g (the MAE with a fresh random mask, eq. 3; or the identity,
eq. 1), classifies the result with every source classifier, and lowers

    L = mean_f L_cls(f(g(x)), c) + w_div * L_div (eq. 4) + w_dist * L_dist (eq. 6) + w_tv * TV(x)

with Adam on the pixels of x. The gradient can be Gaussian-blurred (DeepDream's trick), the input
jittered (feature visualisation's). Stages of a progressive schedule (e.g. 8 -> 16 -> 32) start from
the previous stage's images, upsampled.

    >>> res = generate(load_bundle("fmnist"), ["Sneaker"] * 8)   # the full recipe
    >>> res.reconstructions  # (8, 1, 32, 32) in [0, 1]: g(x), averaged over 4 masks; the picture to show
    >>> res.images           # (8, 1, 32, 32): x itself, the optimised input

On fmnist the reconstruction g(x) is what looks like a garment and what the held-out judge
recognises; x keeps high-frequency noise that the MAE throws away (benchmarks/ablation.py measures
both).

Ctrl-C (KeyboardInterrupt) stops the loop and returns what was made so far (`res.interrupted`).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur
from tqdm.auto import tqdm

from .losses import classification_loss, distribution_loss, diversity_loss, gram_loss, total_variation


@dataclass
class GenerateConfig:
    """Defaults are the full CaG recipe as measured best on fmnist (benchmarks/ablation.py); eq. 1 and
    the baselines are the same loop with parts switched off."""
    steps: int = 250                      # optimiser steps over all stages
    resolutions: tuple = (8, 16, 32)      # progressive schedule; a single size turns it off
    lr: float = 0.05
    lr_schedule: str = "constant"         # or "cosine": within each stage, lr decays to 0 (CosineAnnealingLR)
    use_mae: bool = True                  # eq. 3 (True) or eq. 1 (False: a targeted adversarial attack)
    mask_ratio: float = 0.75
    keep_visible: bool = False            # g(x) = decoder output everywhere (True: visible patches copied from x)
    classifiers: tuple | None = None      # indices of the sources to use (None = all: the ensemble)
    diversity_weight: float = 1.0         # eq. 4
    distribution_weight: float = 1.0      # eq. 6 (class feature statistics; measured from a bundle's data)
    blur_sigma: float = 0.5               # Gaussian blur of the gradient, in pixels of the stage
    jitter: int = 0                       # random shift of the input, in pixels of the stage
    tv_weight: float = 0.0                # total variation of x
    init_std: float = 0.1                 # start: 0.5 + init_std * N(0, 1), clamped
    final_masks: int = 4                  # Result.reconstructions: mean of g(x) over this many fresh masks
    seed: int = 0
    autocast: str = ""                    # "bf16" or "fp16": mixed precision for the models (a GPU); "" = fp32
    sampler: str = "adam"                 # "adam" (CaG) or "mala": Metropolis-adjusted Langevin (STIC-style)
    langevin_step: float = 1e-3           # MALA: x' = x - step * grad E + sqrt(2 step) * noise
    temperature: float = 0.003            # MALA: E = mean_f [CE + gram_weight * Gram term] / temperature, per image
    gram_weight: float = 0.0              # STIC's Gram-matrix term: feature correlations of g(x) vs the class's data
    snapshot_every: int = 0               # call callbacks / keep snapshots every k steps (0 = never)
    progress: bool = True                 # a tqdm bar (environment TQDM_DISABLE=1 turns it off too)

    def stage_steps(self) -> list[int]:
        """Steps per stage: an equal share, the remainder to the last stage."""
        n = len(self.resolutions)
        base = [self.steps // n] * n
        base[-1] += self.steps - sum(base)
        return base


@dataclass
class Result:
    images: torch.Tensor                  # x at the end, (B, C, S, S), S = MAE size, in [0, 1]
    reconstructions: torch.Tensor | None  # g(x) at the end with one fixed mask (None without an MAE)
    targets: torch.Tensor                 # (B,)
    config: GenerateConfig
    history: dict = field(default_factory=dict)   # per step: loss, cls, target_prob (batch mean), resolution
    snapshots: list = field(default_factory=list)  # (step, images (B, C, S, S))
    seconds: float = 0.0
    interrupted: bool = False


def check_resolutions(resolutions: Sequence[int], patch_size: int) -> None:
    """Every stage's resolution must be a positive multiple of the MAE's patch size."""
    for r in resolutions:
        if r <= 0 or r % patch_size:
            lo = r - r % patch_size
            valid = [v for v in (lo, lo + patch_size) if v > 0]
            raise ValueError(f"resolution {r} is not divisible by the MAE's patch size {patch_size}; "
                             f"nearest valid: {valid}")


def resolve_targets(targets, class_index: Callable) -> torch.Tensor:
    """Class names or indices -> (B,) int64; an empty list or an unknown name is a clear error."""
    if targets is None or len(targets) == 0:
        raise ValueError("targets is empty: give one class (name or index) per image to generate")
    if isinstance(targets, torch.Tensor):
        targets = targets.tolist()
    return torch.tensor([class_index(t) for t in targets], dtype=torch.long)


def initial_images(batch: int, chans: int, res: int, std: float, generator: torch.Generator) -> torch.Tensor:
    return (0.5 + std * torch.randn(batch, chans, res, res, generator=generator)).clamp(0, 1)


def start_images(init: torch.Tensor, batch: int, chans: int, res: int) -> torch.Tensor:
    """Given start images (B, C, H, W) in [0, 1], checked against the targets, at the first stage's size."""
    if not isinstance(init, torch.Tensor) or init.ndim != 4 or tuple(init.shape[:2]) != (batch, chans):
        shape = tuple(init.shape) if isinstance(init, torch.Tensor) else type(init).__name__
        raise ValueError(f"init must be a tensor (B={batch}, C={chans}, H, W) in [0, 1], one image per "
                         f"target; got {shape}")
    x = init.detach().float().cpu().clamp(0, 1)
    if x.shape[-2:] != (res, res):
        x = F.interpolate(x, size=(res, res), mode="bilinear", align_corners=False, antialias=True)
    return x


def blur_gradient(grad: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian-blur a gradient (B, C, H, W): DeepDream's low-pass trick."""
    k = 2 * math.ceil(2 * sigma) + 1
    return gaussian_blur(grad, [k, k], [sigma, sigma])


def jitter_images(x: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Roll the whole batch by a random offset of up to `pixels` in each direction."""
    dx, dy = (torch.randint(-pixels, pixels + 1, (2,), generator=generator)).tolist()
    return torch.roll(x, shifts=(dy, dx), dims=(-2, -1))


def generate(models, targets, config: GenerateConfig | None = None, callbacks: Sequence[Callable] = (),
             class_stats: tuple | None = None, class_grams: list | None = None,
             init: torch.Tensor | None = None) -> Result:
    """Generate one image per target with the bundle's (or models') classifiers; see the module doc.

    models: a zoo Bundle (classifiers, mae, class_index). class_stats: for eq. 6, a list with one
    (mean (K, D), std (K, D)) per used classifier (see cag_lib.stats.class_feature_stats).
    class_grams: for the Gram term, one (K, C, C) per used classifier (cag_lib.stats.class_gram_stats).
    callbacks: functions called as cb(step, images, result) every `snapshot_every` steps.
    init: start images (B, C, H, W) in [0, 1] instead of seeded noise (e.g. an interrupted run's
    `res.images`, or per-image seeded noise as `cag_lib.sample` makes); resized to the first stage."""
    cfg = config or GenerateConfig()
    mae = models.mae
    size = mae.img_size
    check_resolutions(cfg.resolutions, mae.patch_size)
    y = resolve_targets(targets, models.class_index)
    idx = range(len(models.classifiers)) if cfg.classifiers is None else cfg.classifiers
    clfs = [models.classifiers[i] for i in idx]
    if cfg.sampler not in ("adam", "mala"):
        raise ValueError(f"sampler must be 'adam' or 'mala', not {cfg.sampler!r}")
    if cfg.sampler == "mala":
        coupled = [k for k in ("diversity_weight", "distribution_weight", "blur_sigma", "jitter", "tv_weight")
                   if getattr(cfg, k)]
        if coupled:
            raise ValueError(f"the MALA sampler needs a per-image energy; set {', '.join(f'{k}=0' for k in coupled)}")
    if cfg.lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', not {cfg.lr_schedule!r}")
    if cfg.autocast not in ("", "bf16", "fp16"):
        raise ValueError(f"autocast must be '', 'bf16' or 'fp16', not {cfg.autocast!r}")
    if cfg.distribution_weight and not class_stats:
        from .data import WORLDS
        if getattr(models, "class_stats", None):                 # measured for this bundle already
            class_stats = [models.class_stats[i] for i in idx]
        elif getattr(getattr(models, "spec", None), "world", None) in WORLDS:  # a small world: measured, cached
            from .stats import bundle_class_stats
            class_stats = [bundle_class_stats(models, i) for i in idx]
        else:
            raise ValueError("distribution_weight > 0 needs class_stats (cag_lib.stats.class_feature_stats); "
                             "a small-world Bundle measures its own; for ImageNet run "
                             "cag_lib.imagenet.measure_class_stats(bundle, folder), or set distribution_weight=0")
    if cfg.gram_weight and not class_grams:
        if getattr(getattr(models, "spec", None), "world", None) is None or getattr(models, "manifest", None) is None:
            raise ValueError("gram_weight > 0 needs class_grams (cag_lib.stats.class_gram_stats); a small-world "
                             "Bundle measures its own; or set gram_weight=0")
        from .stats import bundle_class_grams
        class_grams = [bundle_class_grams(models, i) for i in idx]
    device = next(mae.parameters()).device
    y = y.to(device)
    gen = torch.Generator().manual_seed(cfg.seed)          # images, jitter
    mask_gen = torch.Generator().manual_seed(cfg.seed + 1)  # masks: a fresh one every step
    x = (initial_images(len(y), models.in_chans, cfg.resolutions[0], cfg.init_std, gen) if init is None
         else start_images(init, len(y), models.in_chans, cfg.resolutions[0])).to(device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16 if cfg.autocast == "bf16" else torch.float16,
                         enabled=bool(cfg.autocast))
    result = Result(x, None, y.cpu(), cfg, history={"loss": [], "cls": [], "target_prob": [], "resolution": []})
    quiet = os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true")  # e.g. when a book is built
    bar = tqdm(total=cfg.steps, desc="generate", disable=quiet or not cfg.progress, mininterval=1)
    t0, step = time.time(), 0
    try:
        for res, n_steps in zip(cfg.resolutions, cfg.stage_steps()):
            x = F.interpolate(x, size=(res, res), mode="bilinear", align_corners=False) if x.shape[-1] != res else x
            x = x.detach().clone().requires_grad_(True)
            opt = torch.optim.Adam([x], lr=cfg.lr)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, n_steps) if cfg.lr_schedule == "cosine" else None

            def forward(xs, noise):
                """Every used source on g(xs) (or xs), xs at the stage's resolution."""
                img = F.interpolate(xs, size=(size, size), mode="bilinear", align_corners=False) if res != size else xs
                if cfg.jitter:
                    img = jitter_images(img, cfg.jitter * size // res, gen)
                with amp:
                    if cfg.use_mae:
                        img = mae.reconstruct(img, cfg.mask_ratio, noise=noise, keep_visible=cfg.keep_visible)
                    outs = [c.forward_with_map(img) if cfg.gram_weight else (c(img), None) for c in clfs]
                return ([type(o)(o.logits.float(), o.features.float()) for o, _ in outs],
                        [m.float() if m is not None else None for _, m in outs])

            def gram_term(maps):  # (B,): mean over the sources of STIC's Gram-matrix term
                return torch.stack([gram_loss(m, y, G.to(device)) for m, G in zip(maps, class_grams)]).mean(0)

            for _ in range(n_steps):
                noise = mae.mask_noise(len(y), mask_gen, device="cpu").to(device) if cfg.use_mae else None
                if cfg.sampler == "mala":
                    def energy(xs):  # per image (B,), on the same mask for x and the proposal
                        outs, maps = forward(xs.clamp(0, 1), noise)
                        e = torch.stack([F.cross_entropy(o.logits, y, reduction="none") for o in outs]).mean(0)
                        if cfg.gram_weight:
                            e = e + cfg.gram_weight * gram_term(maps)
                        return e / cfg.temperature, outs
                    x, accepted, e, outs = mala_step(x, energy, cfg.langevin_step, gen)
                    loss = cls = e.mean() * cfg.temperature
                    result.history.setdefault("accept", []).append(accepted.float().mean().item())
                    with torch.no_grad():
                        prob = torch.stack([o.logits.softmax(-1).gather(1, y[:, None]) for o in outs]).mean()
                    step += 1
                    _record(result, step, loss, cls, prob, res, bar, cfg, x, size, callbacks)
                    continue
                outs, maps = forward(x, noise)
                cls = torch.stack([classification_loss(o.logits, y) for o in outs]).mean()
                loss = cls
                if cfg.diversity_weight:
                    loss = loss + cfg.diversity_weight * torch.stack(
                        [diversity_loss(o.features, y) for o in outs]).mean()
                if cfg.distribution_weight:
                    loss = loss + cfg.distribution_weight * torch.stack(
                        [distribution_loss(o.features, y, m.to(device), s.to(device))
                         for o, (m, s) in zip(outs, class_stats)]).mean()
                if cfg.gram_weight:
                    loss = loss + cfg.gram_weight * gram_term(maps).mean()
                if cfg.tv_weight:
                    loss = loss + cfg.tv_weight * total_variation(x)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.blur_sigma:
                    x.grad = blur_gradient(x.grad, cfg.blur_sigma)
                opt.step()
                if sched is not None:
                    sched.step()
                with torch.no_grad():
                    x.clamp_(0, 1)
                    prob = torch.stack([o.logits.softmax(-1).gather(1, y[:, None]) for o in outs]).mean()
                step += 1
                _record(result, step, loss, cls, prob, res, bar, cfg, x, size, callbacks)
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        bar.close()
    result.images = _full_size(x, size)
    result.seconds = time.time() - t0
    if cfg.use_mae:
        result.reconstructions = mean_reconstruction(mae, result.images, cfg.mask_ratio, cfg.keep_visible,
                                                     cfg.final_masks, cfg.seed + 2).cpu()
    result.images = result.images.cpu()
    return result


def _record(result, step, loss, cls, prob, res, bar, cfg, x, size, callbacks):
    """History, progress bar, snapshots and callbacks after one step."""
    h = result.history
    h["loss"].append(loss.item()), h["cls"].append(cls.item()), h["target_prob"].append(prob.item())
    h["resolution"].append(res)
    bar.update()
    if cfg.snapshot_every and step % cfg.snapshot_every == 0:
        snap = _full_size(x, size)
        result.snapshots.append((step, snap))
        for cb in callbacks:
            cb(step, snap, result)


def mala_step(x: torch.Tensor, energy: Callable, step: float, generator: torch.Generator):
    """One Metropolis-adjusted Langevin step, accepted or rejected per image.

    energy(x) -> (E (B,), anything). Proposal x' = x - step * dE/dx + sqrt(2 step) * xi; accept with
    probability min(1, exp(E(x) - E(x') + log q(x | x') - log q(x' | x))), q(a | b) = N(a; b - step *
    dE/db, 2 step I). Returns (new x (B, C, H, W), accepted (B,) bool, E(x) (B,), the extra output at
    the kept points)."""
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
        new = torch.where(accept[:, None, None, None], prop, x)
        kept = [type(o)(torch.where(accept[:, None], op.logits, o.logits),
                        torch.where(accept[:, None], op.features, o.features)) for o, op in zip(out, out_p)]
    return new.detach(), accept, torch.where(accept, e_p, e).detach(), kept


@torch.no_grad()
def mean_reconstruction(mae, images: torch.Tensor, mask_ratio: float, keep_visible: bool, n_masks: int = 1,
                        seed: int = 0) -> torch.Tensor:
    """g(x) averaged over n_masks fresh random masks (seeded): (B, C, S, S) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    total = 0
    for _ in range(max(1, n_masks)):
        noise = mae.mask_noise(len(images), g, device="cpu").to(images.device)
        total = total + mae.reconstruct(images, mask_ratio, noise=noise, keep_visible=keep_visible).clamp(0, 1)
    return total / max(1, n_masks)


def _full_size(x: torch.Tensor, size: int) -> torch.Tensor:
    x = x.detach()
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.clamp(0, 1)


def config_dict(cfg: GenerateConfig) -> dict:
    return asdict(cfg)
