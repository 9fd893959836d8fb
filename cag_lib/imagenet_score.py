"""FID, IS and the held-out judge's numbers for generated ImageNet pictures against real ones.

    >>> score = score_imagenet(bundle, res.reconstructions, targets, "val_by_class/")
    >>> score["fid"], score["is"], score["fd_judge"], score["judge_acc"]

FID and IS (the paper's Table 1) are torchmetrics' `FrechetInceptionDistance` and `InceptionScore`
with torch-fidelity's Inception-v3, the standard FID network (weights ported from TensorFlow,
downloaded from github.com the first time; `pip install torch-fidelity`). Caveat: Inception-v3 is
also one of CaG's two sources (torchvision's weights, not the FID port, but the same architecture on
the same data), so pictures optimised to please one Inception may look better in another's
features than they are. The Fréchet distance in the features of the ConvNeXt judge, which no
sampler sees, and the judge's accuracy are the numbers outside the sources. FID from a few hundred
pictures is biased upwards and noisy; the paper's FID uses 50,000.
"""
from __future__ import annotations

import warnings
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import torch
from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3
from torchmetrics.image.inception import InceptionScore

from .errors import require_hub
from .imagenet import ImageNetBundle, real_images
from .metrics import frechet_distance, gaussian_stats
from .models import batched_outputs

__all__ = ["fid_inception", "score_imagenet"]


def fid_inception(feature: str = "2048", weights: str | Path | None = None, pretrained: bool = True) -> torch.nn.Module:
    """torch-fidelity's FID Inception-v3 giving `feature` ("2048": the pool features FID uses;
    "logits_unbiased": the logits IS uses); weights: a local copy of its state dict
    (pt_inception-2015-12-05), else downloaded from github.com; pretrained=False: random weights
    (seed 0), the same network, for tests and smoke runs."""
    if weights is None and pretrained:
        require_hub("FID's Inception-v3 weights (torch-fidelity)", "github.com")
    with ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        if weights is None and not pretrained:    # build it without loading any weights
            import torch_fidelity.feature_extractor_inceptionv3 as tfi
            stack.enter_context(mock.patch.object(tfi, "load_state_dict_from_url", lambda *a, **k: {}))
            stack.enter_context(mock.patch.object(tfi.FeatureExtractorInceptionV3, "load_state_dict",
                                                  lambda self, state: None))
            stack.enter_context(torch.random.fork_rng())
            torch.manual_seed(0)
        try:
            net = NoTrainInceptionV3("inception-v3-compat", [feature], None if weights is None else str(weights))
        except ModuleNotFoundError as e:     # torchmetrics says so when torch-fidelity is missing
            raise ModuleNotFoundError("FID and IS need torch-fidelity's Inception-v3: pip install torch-fidelity") from e
        if weights is None and not pretrained:   # He initialisation keeps the activations' scale through
            for m in net.modules():              # the 94 layers (torch's default shrinks them to ~1e-8),
                if isinstance(m, torch.nn.Conv2d):   # and a wider last layer spreads the logits, so
                    torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")   # that FID and IS
            torch.nn.init.normal_(net.fc.weight, std=0.1)                          # vary with the images
    return net


def _uint8(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> uint8, what the FID Inception takes (as a saved PNG would be)."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


@torch.no_grad()
def score_imagenet(bundle: ImageNetBundle, images: torch.Tensor, targets, real_folder: str | Path,
                   per_class: int | None = None, inception_weights: str | Path | None = None,
                   batch_size: int = 50, splits: int = 10, pretrained: bool = True) -> dict:
    """images (N, 3, S, S) in [0, 1] meant to show `targets` (class names, ids or indices), against
    the real images of the same classes in `real_folder` (one subfolder per WordNet id; all of
    them, or per_class each). Returns FID and IS (Inception), the Fréchet distance in the judge's
    features, and the judge's accuracy on the generated and on the real images. pretrained=False:
    the Inception with random weights (tests, smoke runs: the code path, no measurement)."""
    y = torch.tensor([bundle.class_index(c) for c in targets])
    if len(images) != len(y) or len(images) < 2:
        raise ValueError(f"{len(images)} images for {len(y)} targets; give one target per image, at least 2")
    device = next(bundle.mae.parameters()).device
    with warnings.catch_warnings():           # InceptionScore warns that it keeps every feature
        warnings.simplefilter("ignore")
        fid = FrechetInceptionDistance(feature=fid_inception("2048", inception_weights, pretrained)).to(device)
        inception = InceptionScore(feature=fid_inception("logits_unbiased", inception_weights, pretrained),
                                   splits=min(splits, len(images))).to(device)
    real_feats, real_right, n_real = [], 0, 0
    for x, t in real_images(real_folder, sorted(set(y.tolist())), per_class, images.shape[-1], batch_size):
        fid.update(_uint8(x).to(device), real=True)
        out = batched_outputs(bundle.judge, x, batch_size)
        real_feats.append(out.features)
        real_right, n_real = real_right + int((out.logits.argmax(1) == t).sum()), n_real + len(t)
    for i in range(0, len(images), batch_size):
        u8 = _uint8(images[i:i + batch_size]).to(device)
        fid.update(u8, real=False)
        inception.update(u8)
    gen = batched_outputs(bundle.judge, images, batch_size)
    with warnings.catch_warnings():           # one split has no spread: its std is nan
        warnings.simplefilter("ignore")
        is_mean, is_std = inception.compute()
    return {"fid": float(fid.compute()), "is": float(is_mean), "is_std": float(is_std),
            "fd_judge": frechet_distance(*gaussian_stats(gen.features), *gaussian_stats(torch.cat(real_feats))),
            "judge_acc": float((gen.logits.argmax(1) == y).float().mean()),
            "real_judge_acc": real_right / n_real, "n": len(y), "n_real": n_real}
