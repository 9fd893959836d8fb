"""The paper's losses and the feature-visualisation regularisers, one small function each.

Shapes: logits (B, K), features (B, D), targets (B,) class indices, images (B, C, H, W).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def classification_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """L_cls of eq. 1 and eq. 3: cross-entropy of the target class, averaged over the batch
    (reduction "none": one per image). With a single class, a single text prompt, the cross-entropy
    is 0 whatever the image; the loss is then the negative logit of that class (for CLIP, the scaled
    cosine between the image and the prompt)."""
    if logits.shape[1] == 1:
        loss = -logits[:, 0]                                                  # (B,)
        return loss.mean() if reduction == "mean" else loss
    return F.cross_entropy(logits, targets, reduction=reduction)


def diversity_loss(features: torch.Tensor, targets: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Eq. 4, the distance-metric loss: mean over pairs (i != j) of samples of the same class of
    h(g(x_i)) . h(g(x_j)). Lower means the samples of a class point in more different directions.
    With normalize, features are unit vectors first (the dot product is then a cosine similarity).
    0 when no class has two samples. (Masked sums, no indexing by a mask: nothing waits for the
    device to say how many pairs there are.)"""
    f = F.normalize(features, dim=-1) if normalize else features
    same = same_class_pairs(targets, f.dtype)                                 # (B, B) pairs
    return ((f @ f.T) * same).sum() / same.sum().clamp(min=1)


def same_class_pairs(targets: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, B) 1 where i != j and both samples have the same target, else 0 (eq. 4's pairs)."""
    same = (targets[:, None] == targets[None, :]) & ~torch.eye(len(targets), dtype=torch.bool,
                                                                device=targets.device)
    return same.to(dtype)


def diversity_loss_paper(features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq. 4 as the paper writes it: sum over ordered pairs i != j of samples of the same class of
    the raw inner products h(g(x_i))^T h(g(x_j)). Its size grows with the batch (pairs) and with the
    features' norm, so its weight is not comparable with diversity_loss's."""
    return ((features @ features.T) * same_class_pairs(targets, features.dtype)).sum()


def distribution_loss(features: torch.Tensor, targets: torch.Tensor, class_mean: torch.Tensor,
                      class_std: torch.Tensor, reduce: str = "mean") -> torch.Tensor:
    """Eq. 6: match the per-class batch mean and std of h(g(x)) to the class's statistics measured on
    real data. class_mean, class_std: (K, D). Squared errors averaged over features (reduce="mean",
    the book's form) or summed over them (reduce="sum": the paper's (x̄ - μ)^T (x̄ - μ) + (S - σ)^T
    (S - σ), with S read as the standard deviation that σ is), averaged over the classes present; a
    class with a single sample contributes only its mean term. All classes at once
    (one-hot sums), so nothing waits for the device to list the classes present."""
    onehot = F.one_hot(targets, len(class_mean)).to(features.dtype)           # (B, K)
    n = onehot.sum(0)                                                         # (K,) samples per class
    mean = onehot.T @ features / n.clamp(min=1)[:, None]                      # (K, D)
    var = onehot.T @ (features - mean[targets]).pow(2) / (n - 1).clamp(min=1)[:, None]
    several = n > 1
    spread = several[:, None] & (var > 0)      # sqrt's gradient at 0 is 0 here, as Tensor.std's is
    std = torch.where(spread, var, torch.ones_like(var)).sqrt() * spread     # (K, D), unbiased
    if reduce not in ("mean", "sum"):
        raise ValueError(f"reduce={reduce!r}: 'mean' (over features) or 'sum' (the paper's eq. 6)")
    over = (lambda t: t.mean(1)) if reduce == "mean" else (lambda t: t.sum(1))   # noqa: E731
    term = over((mean - class_mean).pow(2)) + several * over((std - class_std).pow(2))   # (K,)
    present = (n > 0).to(features.dtype)
    return (term * present).sum() / present.sum()


def gram_matrix(fmap: torch.Tensor) -> torch.Tensor:
    """Feature correlations of a feature map (B, C, N): G = F F^T / N, (B, C, C)."""
    return fmap @ fmap.transpose(1, 2) / fmap.shape[-1]


def gram_loss(fmap: torch.Tensor, targets: torch.Tensor, class_grams: torch.Tensor) -> torch.Tensor:
    """STIC's Gram-matrix term, per image (B,): || G(x) - G_c ||_F^2 / || G_c ||_F^2, where G_c
    (K, C, C) is the class's mean Gram matrix over real images. Relative, so it has no scale of its
    own: 0 means the same feature correlations as the class's data, 1 as far as all-zero features."""
    target = class_grams[targets]                                             # (B, C, C)
    return (gram_matrix(fmap) - target).pow(2).sum((1, 2)) / target.pow(2).sum((1, 2))


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels (feature visualisation's smoothness prior)."""
    dh = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    dw = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    return dh + dw
