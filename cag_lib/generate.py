"""The sampler: one loop, configured by `GenerateConfig`, that turns classifiers into generators.

Every step takes the current images x (B, C, r, r) at the stage's resolution r, upsamples them to
the MAE's size, passes them through g (the MAE with a fresh random mask, eq. 3; or the identity,
eq. 1), classifies the result with every source classifier, and lowers

    L = mean_f L_cls(f(g(x)), c) + w_div * L_div (eq. 4) + w_dist * L_dist (eq. 6) + w_tv * TV(x)
        (+ w_bn * R_BN, DeepInversion's BatchNorm prior)

with Adam on the pixels of x (or Santurkar et al.'s L2 PGD steps). The gradient can be
Gaussian-blurred (DeepDream's trick), the input jittered (feature visualisation's); the start is
grey noise or a draw of a Gaussian fitted to the class's real images. Stages of a progressive
schedule (e.g. 8 -> 16 -> 32) start from the previous stage's images, upsampled. The pieces:
`Forward` (x -> what the sources see, a `View`), cag_lib.objectives (L as a sum of named terms),
cag_lib.samplers (Adam, MALA, PGD: one `step` each),
cag_lib.recording (history, snapshots, callbacks); `generate` is the loop that joins them.

    >>> res = generate(load_bundle("fmnist"), ["Sneaker"] * 8)   # the full recipe
    >>> res.reconstructions  # (8, 1, 32, 32) in [0, 1]: g(x), averaged over 4 masks; the picture to show
    >>> res.images           # (8, 1, 32, 32): x itself, the optimised input

On fmnist the reconstruction g(x) is what looks like a garment and what the held-out judge
recognises; x keeps high-frequency noise that the MAE throws away (benchmarks/ablation.py measures
both).

Ctrl-C (KeyboardInterrupt) stops the loop and returns what was made so far (`res.interrupted`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .batchnorm import batchnorm_divergence
from .config import GenerateConfig
from .models import attention_layers, eager_attention
from .objectives import Objective, View, objective_from_config
from .recording import Recorder, full_size
from .samplers import MALA, PGD, Adam, blur_gradient, mala_step
from .stats import sample_class_gaussians

__all__ = ["GenerateConfig", "Result", "generate", "Forward", "blur_gradient", "mala_step",
           "mean_reconstruction", "check_resolutions", "jitter_images"]


@dataclass
class Result:
    images: torch.Tensor                  # x at the end, (B, C, S, S), S = MAE size, in [0, 1]
    reconstructions: torch.Tensor | None  # g(x) at the end, mean over final_masks fresh masks (None without an MAE)
    targets: torch.Tensor                 # (B,)
    config: GenerateConfig
    history: dict = field(default_factory=dict)   # per step: loss, cls, target_prob (batch mean), resolution
    snapshots: list = field(default_factory=list)  # (step, images (B, C, S, S))
    seconds: float = 0.0
    interrupted: bool = False             # Ctrl-C: what was made so far
    stopped: bool = False                 # a callback returned True


def check_resolutions(resolutions: Sequence[int], patch_size: int) -> None:
    """Every stage's resolution must be a positive multiple of the MAE's patch size."""
    for r in resolutions:
        if r <= 0 or r % patch_size:
            lo = r - r % patch_size
            valid = [v for v in (lo, lo + patch_size) if v > 0]
            raise ValueError(f"resolution {r} is not divisible by the MAE's patch size {patch_size}; "
                             f"nearest valid: {valid}")


def check_fits(mae, cfg: GenerateConfig) -> None:
    """The config's stages and mask fit this MAE: no stage larger than the MAE's size (it would be
    shrunk to that size before g, and the picture would not have the size asked for)."""
    check_resolutions(cfg.resolutions, mae.patch_size)
    if max(cfg.resolutions) > mae.img_size:
        raise ValueError(f"resolutions={cfg.resolutions!r}: this MAE works at {mae.img_size} px, so a "
                         f"{max(cfg.resolutions)}-px stage would be shrunk to {mae.img_size} before g and the "
                         f"picture would be {mae.img_size} px; end the schedule at {mae.img_size} or build "
                         f"the MAE at {max(cfg.resolutions)} px")
    if cfg.use_mae:
        check_mask(mae.num_patches, cfg.mask_ratio)


def check_per_image(objective: Objective, cfg: GenerateConfig) -> None:
    if cfg.sampler == "mala" and not objective.per_image:
        raise ValueError(f"the MALA sampler needs every term per image; {objective} is not")


def check_mask(num_patches: int, mask_ratio: float) -> None:
    """g sees int(N * (1 - mask_ratio)) of its N patches: at least one must stay visible."""
    if int(num_patches * (1 - mask_ratio)) < 1:
        raise ValueError(f"mask_ratio={mask_ratio} leaves none of the MAE's {num_patches} patches visible; "
                         f"give mask_ratio <= {1 - 1 / num_patches:.4f} (the default: 0.75)")


def resolve_targets(targets, class_index: Callable) -> torch.Tensor:
    """Class names or indices (a list, a tensor or a numpy array) -> (B,) int64; a clear error for an
    empty list, a bare string, a bool or an unknown class."""
    if hasattr(targets, "tolist"):                     # torch.Tensor, numpy array (0-d too)
        targets = targets.tolist()
    if isinstance(targets, (str, bytes)):
        raise ValueError(f"targets is one string, {targets!r}; give one class per image, "
                         f"e.g. [{targets!r}] * 8")
    if isinstance(targets, int) and not isinstance(targets, bool):
        targets = [targets]                            # one class index: one image
    if targets is None or len(targets) == 0:
        raise ValueError("targets is empty: give one class (name or index) per image to generate")
    return torch.tensor([class_index(_plain(t)) for t in targets], dtype=torch.long)


def _plain(t):
    """numpy integers -> int; a bool is refused (True would silently mean class 1)."""
    if isinstance(t, bool) or type(t).__name__ == "bool_":
        raise ValueError(f"target {t!r} is a bool; give a class name or index")
    return t.item() if hasattr(t, "item") and not isinstance(t, str) else t


def initial_images(batch: int, chans: int, res: int, std: float, generator: torch.Generator) -> torch.Tensor:
    return (0.5 + std * torch.randn(batch, chans, res, res, generator=generator)).clamp(0, 1)


def starting_images(models, cfg: GenerateConfig, targets: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """cfg.start's images at the first stage's size (B, C, r0, r0): grey noise, or a draw from each
    target class's Gaussian over real images (the bundle's image_gaussians)."""
    res = cfg.resolutions[0]
    if cfg.start == "noise":
        return initial_images(len(targets), models.in_chans, res, cfg.init_std, generator)
    if not hasattr(models, "image_gaussians"):
        raise ValueError(f"start='class gaussian' needs real images of every class, and bundle "
                         f"{getattr(models, 'name', '?')!r} has none (no image_gaussians()); use start='noise'")
    return sample_class_gaussians(models.image_gaussians(), targets, models.in_chans, res, generator)


def per_image_starts(models, cfg: GenerateConfig, targets, seeds) -> torch.Tensor:
    """cfg.start's images (B, C, r0, r0), image i drawn from its own seed alone: a picture's start
    does not depend on the batch it is made in (the sampling command's shards)."""
    targets = torch.as_tensor(targets).reshape(-1)
    return torch.cat([starting_images(models, cfg, targets[i:i + 1], torch.Generator().manual_seed(int(s)))
                      for i, s in enumerate(seeds)])


def start_images(init: torch.Tensor, batch: int, chans: int, res: int) -> torch.Tensor:
    """Given start images (B, C, H, W) in [0, 1], checked against the targets, at the first stage's size."""
    if not isinstance(init, torch.Tensor) or init.ndim != 4 or tuple(init.shape[:2]) != (batch, chans):
        shape = tuple(init.shape) if isinstance(init, torch.Tensor) else type(init).__name__
        raise ValueError(f"init must be a tensor (B={batch}, C={chans}, H, W) in [0, 1], one image per "
                         f"target; got {shape}")
    x = init.detach().float().cpu()
    if not torch.isfinite(x).all():
        raise ValueError("init holds NaN or infinite values; give images in [0, 1]")
    lo, hi = x.min().item(), x.max().item()
    if lo < -1e-3 or hi > 1 + 1e-3:                      # a small overshoot (resampling) is clamped
        hint = "divide 0-255 images by 255" if lo >= 0 and hi > 2 else "undo the normalisation: x * std + mean"
        raise ValueError(f"init holds values in [{lo:.3g}, {hi:.3g}]; give images in [0, 1] ({hint})")
    x = x.clamp(0, 1)
    if x.shape[-2:] != (res, res):
        x = F.interpolate(x, size=(res, res), mode="bilinear", align_corners=False, antialias=True)
    return x


def jitter_images(x: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Roll the whole batch by a random offset of up to `pixels` in each direction."""
    dx, dy = (torch.randint(-pixels, pixels + 1, (2,), generator=generator)).tolist()
    return torch.roll(x, shifts=(dy, dx), dims=(-2, -1))


def used_sources(models, indices) -> list[int]:
    """The indices of the bundle's source classifiers that cfg.classifiers names (None: all)."""
    n = len(models.classifiers)
    idx = list(range(n)) if indices is None else list(indices)
    if n == 0 or any(i >= n for i in idx):
        raise ValueError(f"classifiers={indices!r}: this bundle has {n} source classifier(s), "
                         f"indices 0-{n - 1}; or None for all")
    return idx


class Forward:
    """x (B, C, r, r) at a stage's resolution -> the View of every used source: upsample to the MAE's
    size, jitter, g(x) with the given mask (or x itself for eq. 1), classify."""

    def __init__(self, mae, classifiers: list, cfg: GenerateConfig, generator: torch.Generator,
                 maps: bool = False, batchnorm: bool = False):
        self.mae, self.clfs, self.cfg, self.gen, self.maps = mae, classifiers, cfg, generator, maps
        self.batchnorm = batchnorm
        self.size, self.device = mae.img_size, next(mae.parameters()).device
        self.amp = torch.autocast(self.device.type, dtype=torch.bfloat16 if cfg.autocast == "bf16" else torch.float16,
                                  enabled=bool(cfg.autocast))
        # on a CPU, fused attention under bf16 is slower than q k^T, softmax, v (benchmarks/speed_cpu.py)
        self.eager = cfg.attention == "eager" or (cfg.attention == "auto" and bool(cfg.autocast)
                                                   and self.device.type == "cpu")
        self.attention = attention_layers([mae, *classifiers])

    def masks(self, batch: int, n_steps: int, generator: torch.Generator) -> list:
        """A fresh random mask for each of a stage's steps (eq. 3's expectation over masks), drawn at
        once on the CPU (the same numbers as one draw per step) and moved to the device in one copy;
        Nones without an MAE."""
        if not self.cfg.use_mae:
            return [None] * n_steps
        noise = self.mae.mask_noise(n_steps * batch, generator, device="cpu")
        return list(noise.view(n_steps, batch, self.mae.num_patches).to(self.device).unbind(0))

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, noise) -> View:
        cfg, size, res = self.cfg, self.size, x.shape[-1]
        img = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False) if res != size else x
        if cfg.jitter:
            img = jitter_images(img, cfg.jitter * size // res, self.gen)
        with self.amp, eager_attention(self.attention, self.eager):
            if cfg.use_mae:
                img = self.mae.reconstruct(img, cfg.mask_ratio, noise=noise, keep_visible=cfg.keep_visible)
            outs, bn = [], []
            for c in self.clfs:
                with batchnorm_divergence(c, self.batchnorm) as divergence:
                    outs.append(c.forward_with_map(img) if self.maps else (c(img), None))
                bn.append(divergence())
        return View(x, targets, [type(o)(o.logits.float(), o.features.float()) for o, _ in outs],
                    [m.float() if m is not None else None for _, m in outs], bn)

    def scorer(self, objective: Objective, targets: torch.Tensor, noise) -> Callable:
        """xs -> (objective's total, its parts, the View) on this step's mask: what a sampler calls."""
        def score(xs):
            view = self(xs, targets, noise)
            return (*objective.evaluate(view), view)
        return score


def objective_for(models, cfg: GenerateConfig, idx: list, class_stats=None, class_grams=None,
                  targets: torch.Tensor | None = None) -> Objective:
    """The config's objective; eq. 6's and the Gram term's statistics, unless given, from the bundle
    (measured and cached there: the loop reads no data), checked to cover the targets' classes."""
    if cfg.distribution_weight and not class_stats:
        class_stats = _measured(models, "feature_stats", idx, "distribution_weight", "class_stats")
    if cfg.distribution_weight:
        names = tuple(getattr(models, "class_names", ()))
        check_class_stats(class_stats, [models.classifiers[i] for i in idx], len(names))
        if targets is not None:
            check_stats_cover(class_stats, targets, names)
    if cfg.gram_weight and not class_grams:
        class_grams = _measured(models, "gram_stats", idx, "gram_weight", "class_grams")
    return objective_from_config(cfg, class_stats, class_grams)


def check_class_stats(class_stats, sources: list, n_classes: int) -> None:
    """Eq. 6's statistics: one (mean (K, D), std (K, D)) per used source, K the bundle's classes and D
    the width of that source's features (the width is checked where the features are first seen);
    n_classes 0: a bundle that does not say how many classes it has (K unchecked)."""
    how = "one (mean (K, D), std (K, D)) per used source, as cag_lib.stats measures them"
    if not isinstance(class_stats, (list, tuple)) or len(class_stats) != len(sources):
        n = len(class_stats) if isinstance(class_stats, (list, tuple)) else type(class_stats).__name__
        raise ValueError(f"class_stats has {n} entries for {len(sources)} used source(s); give {how}")
    for i, pair in enumerate(class_stats):
        ok = isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(t, torch.Tensor) for t in pair)
        if not ok or pair[0].ndim != 2 or pair[0].shape != pair[1].shape or len(pair[0]) != (n_classes or len(pair[0])):
            got = [tuple(t.shape) for t in pair] if ok else type(pair).__name__
            raise ValueError(f"class_stats[{i}] is {got}; give (mean, std) of shape ({n_classes or 'K'}, D), {how}")


def check_stats_cover(class_stats, targets: torch.Tensor, names=()) -> None:
    """Every target class has statistics: a class whose std is 0 in every feature (as
    imagenet.measure_class_stats leaves a class it saw no images of) or not finite would pull the
    batch towards mean 0."""
    missing = sorted({int(c) for c in targets.unique()
                      for mean, std in class_stats
                      if not (std[c].abs().sum() > 0 and torch.isfinite(mean[c]).all() and torch.isfinite(std[c]).all())})
    if missing:
        said = ", ".join(f"{c} ({names[c]})" if c < len(names) else str(c) for c in missing)
        raise ValueError(f"class_stats has no statistics for target class(es) {said}: no real images of them "
                         f"were measured. Measure them (imagenet.measure_class_stats(bundle, folder, "
                         f"classes=...) with images of those classes), or set distribution_weight=0")


def _measured(models, method: str, idx: list, weight: str, argument: str) -> list:
    if not hasattr(models, method):
        raise ValueError(f"{weight} > 0 needs {argument}= (see cag_lib.stats), and this bundle has no "
                         f"{method}() to measure them; or set {weight}=0")
    return getattr(models, method)(idx)


def make_sampler(cfg: GenerateConfig, generator: torch.Generator):
    if cfg.sampler == "mala":
        return MALA(cfg.langevin_step, cfg.temperature, generator)
    if cfg.sampler == "pgd":
        return PGD(cfg.pgd_step, cfg.pgd_eps)
    blur = (lambda g: blur_gradient(g, cfg.blur_sigma)) if cfg.blur_sigma else None
    return Adam(cfg.lr, cfg.lr_schedule, blur)


def resize(x: torch.Tensor, res: int) -> torch.Tensor:
    return F.interpolate(x, size=(res, res), mode="bilinear", align_corners=False) if x.shape[-1] != res else x


def generate(models, targets, config: GenerateConfig | None = None, callbacks: Sequence[Callable] = (),
             class_stats: list | None = None, class_grams: list | None = None, init: torch.Tensor | None = None,
             objective: Objective | None = None) -> Result:
    """One image per target from a bundle (cag_lib.bundles.BundleLike): eq. 3 (or 1), staged.

    class_stats / class_grams: eq. 6's statistics, the Gram term's matrices, one per used source
    (default: the bundle's). objective: your own (cag_lib.objectives). callbacks: cb(step, images,
    result) every `snapshot_every` steps; True stops the run. init: start images (B, C, H, W) in
    [0, 1] instead of seeded noise, e.g. an interrupted run's `res.images`."""
    cfg = config or GenerateConfig()
    check_fits(models.mae, cfg)
    y = resolve_targets(targets, models.class_index).to(next(models.mae.parameters()).device)
    idx = used_sources(models, cfg.classifiers)
    objective = objective or objective_for(models, cfg, idx, class_stats, class_grams, y)
    check_per_image(objective, cfg)
    gen, mask_gen = torch.Generator().manual_seed(cfg.seed), torch.Generator().manual_seed(cfg.seed + 1)
    x = (starting_images(models, cfg, y, gen) if init is None
         else start_images(init, len(y), models.in_chans, cfg.resolutions[0])).to(y.device)
    forward = Forward(models.mae, [models.classifiers[i] for i in idx], cfg, gen, objective.needs_maps,
                      objective.needs_batchnorm)
    sampler, result = make_sampler(cfg, gen), Result(x, None, y.cpu(), cfg)
    rec = Recorder(result, cfg.steps, forward.size, cfg.snapshot_every, callbacks, cfg.progress)
    t0 = time.time()
    try:
        for res, n_steps in zip(cfg.resolutions, cfg.stage_steps()):
            x = sampler.start(resize(x, res), n_steps)
            for noise in forward.masks(len(y), n_steps, mask_gen):          # a fresh mask every step
                step = sampler.step(x, forward.scorer(objective, y, noise))
                x = step.x
                if rec.record(step, y, res):
                    raise _Stop
    except KeyboardInterrupt:
        result.interrupted = True
    except _Stop:
        result.stopped = True
    finally:
        rec.close()
    return finish(result, models.mae, x, cfg, time.time() - t0)


class _Stop(Exception):
    """A callback asked the run to stop."""


def finish(result: Result, mae, x: torch.Tensor, cfg: GenerateConfig, seconds: float) -> Result:
    """x at the MAE's size, and g(x) averaged over cfg.final_masks fresh masks, both on the CPU."""
    result.images, result.seconds = full_size(x, mae.img_size), seconds
    if cfg.use_mae:
        result.reconstructions = mean_reconstruction(mae, result.images, cfg.mask_ratio, cfg.keep_visible,
                                                     cfg.final_masks, cfg.seed + 2).cpu()
    result.images = result.images.cpu()
    return result


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
