"""The Diffusion Classifier (Li et al. 2023, "Your Diffusion Model is Secretly a Zero-Shot Classifier").

A class-conditional diffusion model predicts the noise eps added to an image x at timestep t,
given a class c. Bayes' rule with the diffusion ELBO turns it into a classifier:

    p(c | x)  ~  exp(-E_{t, eps} || eps - eps_theta(sqrt(abar_t) x + sqrt(1 - abar_t) eps, t, c) ||^2)

so the predicted class is the one whose conditional model denoises x best (`epsilon_errors`). The
same (t, eps) pairs are used for every class (shared noise), which cancels most of the variance of
the estimate; timesteps are evenly spaced, as the paper recommends. With many classes most of them
are obviously wrong after a few trials, so evaluation goes in stages and keeps only the best
candidates for the next stage (adaptive elimination, `classify`).

The network is diffusers' `UNet2DModel` with a class embedding; the noise schedule is diffusers'
`DDPMScheduler` (its `add_noise`). Trained by `python -m cag_lib.train diffusion` (the zoo's
manifest has the exact command).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

DEFAULT_UNET = dict(block_out_channels=(16, 32, 64), layers_per_block=1, norm_num_groups=8,
                    down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "UpBlock2D", "UpBlock2D"))
DEFAULT_SCHEDULE = dict(num_train_timesteps=1000, beta_schedule="linear")


class ConditionalDiffusion(nn.Module):
    """eps_theta(x_t, t, c) for images in [0, 1]; internally the UNet sees them scaled to [-1, 1]."""

    def __init__(self, class_names, in_chans: int = 1, img_size: int = 32, unet: dict | None = None,
                 schedule: dict | None = None):
        super().__init__()
        from diffusers import DDPMScheduler, UNet2DModel
        self.class_names = tuple(class_names)
        self.in_chans, self.img_size = in_chans, img_size
        unet = {**DEFAULT_UNET, **(unet or {})}
        schedule = {**DEFAULT_SCHEDULE, **(schedule or {})}
        self.config = dict(class_names=list(self.class_names), in_chans=in_chans, img_size=img_size,
                           unet={k: list(v) if isinstance(v, tuple) else v for k, v in unet.items()},
                           schedule=schedule)
        self.unet = UNet2DModel(sample_size=img_size, in_channels=in_chans, out_channels=in_chans,
                                num_class_embeds=len(self.class_names), **unet)
        self.scheduler = DDPMScheduler(**schedule)

    @property
    def num_timesteps(self) -> int:
        return self.scheduler.config.num_train_timesteps

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Predicted noise (B, C, H, W) for noisy images x_t (in the UNet's [-1, 1] space)."""
        return self.unet(x_t, t, class_labels=c).sample

    def noisy(self, x: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) (2x - 1) + sqrt(1 - abar_t) eps, for x in [0, 1]. (B, C, H, W)"""
        return self.scheduler.add_noise(x * 2 - 1, noise, t.cpu()).to(x.dtype)

    def loss(self, x: torch.Tensor, c: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        """The DDPM training loss: || eps - eps_theta(x_t, t, c) ||^2 at a uniformly random timestep."""
        t = torch.randint(0, self.num_timesteps, (len(x),), generator=g).to(x.device)
        noise = torch.randn(x.shape, generator=g).to(x.device)
        return F.mse_loss(self(self.noisy(x, noise, t), t, c), noise)


def evenly_spaced_timesteps(n: int, num_timesteps: int = 1000) -> torch.Tensor:
    """n timesteps spread evenly over [0, T), centred in their bins (the paper's choice). (n,)"""
    return ((torch.arange(n) + 0.5) * num_timesteps / n).long()


@torch.no_grad()
def epsilon_errors(model: ConditionalDiffusion, x: torch.Tensor, classes: torch.Tensor, t: torch.Tensor,
                   noise: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Mean squared eps-prediction error of ONE image for each candidate class and each (t, eps) trial.

    x (C, H, W) in [0, 1]; classes (K,); t (N,); noise (N, C, H, W), shared by all classes.
    Returns (K, N)."""
    x_t = model.noisy(x.expand(len(t), *x.shape), noise, t)                          # (N, C, H, W)
    k, n = len(classes), len(t)
    c = classes.repeat_interleave(n)                                                 # (K*N,)
    xs, ts, eps = x_t.repeat(k, 1, 1, 1), t.repeat(k), noise.repeat(k, 1, 1, 1)
    err = torch.cat([(model(xs[i:i + batch_size], ts[i:i + batch_size], c[i:i + batch_size])
                      - eps[i:i + batch_size]).pow(2).mean((1, 2, 3)) for i in range(0, len(c), batch_size)])
    return err.view(k, n)


@dataclass(frozen=True)
class Stage:
    trials: int      # (t, eps) pairs evaluated in this stage for every class still in the running
    keep: int        # how many classes survive it (the best by mean error over all trials so far)


# 10 classes: 20 trials for every class, then 80 more for the best 3; the best after 100 wins.
# 440 UNet evaluations per image instead of 1000 for 100 trials on all 10 classes.
DEFAULT_STAGES = (Stage(20, 3), Stage(80, 1))


@torch.no_grad()
def classify(model: ConditionalDiffusion, images: torch.Tensor, stages=DEFAULT_STAGES, seed: int = 0,
             return_errors: bool = False, progress: bool = False):
    """Diffusion-classifier predictions for images (B, C, H, W) in [0, 1] -> (B,) class indices.

    Each image gets sum(stage.trials) evenly spaced timesteps in a seeded random order and one
    shared noise per timestep; after each stage only the `keep` classes with the lowest mean error
    go on. With return_errors, also the (B, num_classes) mean errors of the last stage's finalists over
    all trials (inf for classes eliminated earlier) - lower is better, so -errors works as logits."""
    if not stages or stages[-1].keep != 1:
        raise ValueError("the last stage must keep exactly 1 class (it makes the prediction)")
    num_classes, total = len(model.class_names), sum(s.trials for s in stages)
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    preds, all_errors = [], []
    quiet = os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true")
    for x in tqdm(images, desc="diffusion classifier", disable=quiet or not progress, mininterval=2):
        t = evenly_spaced_timesteps(total, model.num_timesteps)[torch.randperm(total, generator=g)]
        noise = torch.randn(total, *x.shape, generator=g)
        alive = torch.arange(num_classes)
        sums, counts = torch.zeros(num_classes), torch.zeros(num_classes)
        used = 0
        for stage in stages:
            sl = slice(used, used + stage.trials)
            err = epsilon_errors(model, x.to(device), alive.to(device), t[sl].to(device), noise[sl].to(device))
            sums[alive] += err.sum(1).cpu()
            counts[alive] += stage.trials
            used += stage.trials
            mean = sums[alive] / counts[alive]
            alive = alive[mean.argsort()[:stage.keep]]
        preds.append(alive[0])
        errors = torch.full((num_classes,), float("inf"))
        finalists = counts == counts.max()   # means over different trial sets are not comparable
        errors[finalists] = sums[finalists] / counts[finalists]
        all_errors.append(errors)
    preds = torch.stack(preds)
    return (preds, torch.stack(all_errors)) if return_errors else preds


def evaluations_per_image(stages=DEFAULT_STAGES, num_classes: int = 10) -> int:
    """UNet evaluations one image costs: sum over stages of trials x classes still in the running."""
    alive, n = num_classes, 0
    for s in stages:
        n += s.trials * alive
        alive = s.keep
    return n


SAMPLERS = ("ddpm", "ddim")


@torch.no_grad()
def sample_images(model: ConditionalDiffusion, classes: torch.Tensor, noise: torch.Tensor, sampler: str = "ddpm",
                  steps: int | None = None, seed: int = 0) -> torch.Tensor:
    """Class-conditional samples (B, C, H, W) in [0, 1] from start noise (B, C, H, W) ~ N(0, I).

    sampler "ddpm": diffusers' DDPMScheduler, ancestral (its step noise from a generator seeded with
    `seed`), at the training's 1000 steps unless `steps` says fewer; "ddim": DDIMScheduler with
    eta = 0 (deterministic) in `steps` steps (default 50). Both share the model's training schedule."""
    from diffusers import DDIMScheduler, DDPMScheduler
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, not {sampler!r}")
    kind = DDPMScheduler if sampler == "ddpm" else DDIMScheduler
    sched = kind.from_config(model.scheduler.config)
    sched.set_timesteps(steps or (model.num_timesteps if sampler == "ddpm" else 50))
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    x, c = noise.to(device), classes.to(device)                                     # (B, C, H, W), (B,)
    for t in sched.timesteps:
        eps = model(x, t.expand(len(x)).to(device), c)
        x = sched.step(eps, t, x, generator=g).prev_sample        # DDIM at eta 0 draws no noise
    return ((x.clamp(-1, 1) + 1) / 2).float()
