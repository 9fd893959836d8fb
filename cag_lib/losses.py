"""The paper's losses and the feature-visualisation regularisers, one small function each.

Shapes: logits (B, K), features (B, D), targets (B,) class indices, images (B, C, H, W).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def classification_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L_cls of eq. 1 and eq. 3: cross-entropy of the target class, averaged over the batch."""
    return F.cross_entropy(logits, targets)


def diversity_loss(features: torch.Tensor, targets: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Eq. 4, the distance-metric loss: mean over pairs (i != j) of samples of the same class of
    h(g(x_i)) . h(g(x_j)). Lower means the samples of a class point in more different directions.
    With normalize, features are unit vectors first (the dot product is then a cosine similarity)."""
    f = F.normalize(features, dim=-1) if normalize else features
    same = (targets[:, None] == targets[None, :]) & ~torch.eye(len(targets), dtype=torch.bool,
                                                                device=targets.device)
    if not same.any():
        return features.new_zeros(())
    return (f @ f.T)[same].mean()


def distribution_loss(features: torch.Tensor, targets: torch.Tensor, class_mean: torch.Tensor,
                      class_std: torch.Tensor) -> torch.Tensor:
    """Eq. 6: match the per-class batch mean and std of h(g(x)) to the class's statistics measured on
    real data. class_mean, class_std: (K, D). Squared errors averaged over features and classes
    present; a class with a single sample contributes only its mean term."""
    terms = []
    for c in targets.unique():
        f = features[targets == c]
        t = (f.mean(0) - class_mean[c]).pow(2).mean()
        if len(f) > 1:
            t = t + (f.std(0) - class_std[c]).pow(2).mean()
        terms.append(t)
    return torch.stack(terms).mean()


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
