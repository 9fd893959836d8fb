"""Per-class feature statistics of real data (the targets of eq. 6's distribution loss), cached."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import load_world
from .files import load_checked, save_checked
from .losses import gram_matrix
from .models import batched_outputs

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cag_lib" / "stats"
MEND = "delete it and the next run measures the statistics again"


def _cache(key: str, suffix: str = "") -> Path:
    """The cache file of a statistic (checksummed: cag_lib.files.save_checked)."""
    return CACHE / f"{key}{suffix}.checked.pt"


def features(model, images: torch.Tensor, batch_size: int = 500, desc: str | None = None) -> torch.Tensor:
    """Penultimate features h(x) of a Classifier for many images: (N, D); desc: a progress bar."""
    return batched_outputs(model, images, batch_size, desc).features


def class_feature_stats(model, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                        cache_key: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (K, D), std (K, D)) of h(x) per class over real images; cached under cache_key if given
    (use something that names the model's weights, e.g. its sha256)."""
    path = _cache(cache_key) if cache_key else None
    if path is not None and path.exists():
        d = load_checked(path, MEND, "class feature statistics")
        return d["mean"], d["std"]
    f = features(model, images, desc=f"class statistics ({getattr(model, 'name', 'model')})")
    mean = torch.stack([f[labels == c].mean(0) for c in range(num_classes)])
    std = torch.stack([f[labels == c].std(0) for c in range(num_classes)])
    if path is not None:
        save_checked(path, {"mean": mean, "std": std})
    return mean, std


STATS_IMAGES = 10_000  # the first 10k training images: about 1000 per class, a few seconds on a CPU


def bundle_class_stats(bundle, index: int, n: int = STATS_IMAGES) -> tuple[torch.Tensor, torch.Tensor]:
    """Class feature statistics of a bundle's source classifier `index` on the first n training
    images of its world, cached under the weights' sha256 (the first call reads the data; later ones
    are instant)."""
    return _bundle_statistic(class_feature_stats, bundle, index, n, "")


def _bundle_statistic(measure, bundle, index: int, n: int, suffix: str):
    """measure(clf, images, labels, K, key) on the first n training images, or from its cache."""
    clf = bundle.classifiers[index]
    key = f"{bundle.name}_{clf.name}_{bundle.manifest[clf.name]['sha256'][:12]}_n{n}"
    if _cache(key, suffix).exists():
        return measure(clf, None, None, len(bundle.class_names), key)
    x, y = load_world(bundle.spec.world, "train", n)
    return measure(clf, x, y, len(bundle.class_names), key)


@torch.no_grad()
def class_gram_stats(model, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                     cache_key: str | None = None, batch_size: int = 500) -> torch.Tensor:
    """Mean Gram matrix of the last feature map per class over real images: (K, C, C); cached."""
    path = _cache(cache_key, "_gram") if cache_key else None
    if path is not None and path.exists():
        return load_checked(path, MEND, "class Gram matrices")["grams"]
    device = next(model.parameters()).device
    starts = tqdm(range(0, len(images), batch_size), desc=f"class Gram matrices ({model.name})", leave=False)
    grams = torch.cat([gram_matrix(model.forward_with_map(images[i:i + batch_size].to(device))[1].float()).cpu()
                       for i in starts])
    out = torch.stack([grams[labels == c].mean(0) for c in range(num_classes)])
    if path is not None:
        save_checked(path, {"grams": out})
    return out


def bundle_class_grams(bundle, index: int, n: int = STATS_IMAGES) -> torch.Tensor:
    """class_gram_stats of a bundle's source classifier `index` on the first n training images, cached."""
    return _bundle_statistic(class_gram_stats, bundle, index, n, "_gram")


SEED_SIZE = 8   # Santurkar et al. fit their seeds on ImageNet downsampled 7x (to 32 px); here 32 -> 8 px


@functools.lru_cache(maxsize=4)
def class_image_gaussians(world: str, size: int = SEED_SIZE, n: int = STATS_IMAGES) -> tuple[torch.Tensor, torch.Tensor]:
    """A multivariate Gaussian per class over the world's first n training images shrunk to
    size x size (area average): (mean (K, D), Cholesky factor of the covariance (K, D, D)),
    D = C * size * size. A small ridge keeps each covariance positive definite."""
    x, y = load_world(world, "train", n)
    flat = F.interpolate(x, size=(size, size), mode="area").flatten(1).double()   # (N, D)
    means, chols = [], []
    for c in range(int(y.max()) + 1):
        xc = flat[y == c]
        cov = torch.cov(xc.T) + 1e-4 * torch.eye(flat.shape[1], dtype=flat.dtype)
        means.append(xc.mean(0))
        chols.append(torch.linalg.cholesky(cov))
    return torch.stack(means).float(), torch.stack(chols).float()


def sample_class_gaussians(gaussians, targets: torch.Tensor, chans: int, res: int,
                           generator: torch.Generator) -> torch.Tensor:
    """One draw per target from its class's Gaussian, upsampled to res x res and clamped to [0, 1]:
    (B, C, res, res). Santurkar et al.'s seed: a blurry, class-typical start."""
    mean, chol = gaussians
    z = torch.randn(len(targets), mean.shape[1], 1, generator=generator)
    t = targets.cpu()
    flat = mean[t] + (chol[t] @ z).squeeze(-1)                                     # (B, D)
    size = int(round((mean.shape[1] / chans) ** 0.5))
    x = flat.view(len(targets), chans, size, size)
    return F.interpolate(x, size=(res, res), mode="bilinear", align_corners=False).clamp(0, 1)
