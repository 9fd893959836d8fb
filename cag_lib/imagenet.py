"""The ImageNet bundle: the paper's scale, for a GPU with internet (Colab).

    >>> b = load_imagenet_bundle(device="cuda")             # weights from the Hugging Face hub and dl.fbaipublicfiles.com
    >>> cfg = imagenet_preset(b)                             # 64 -> 128 -> 256, ensemble, 2000 steps
    >>> res = generate(b, ["goldfish"] * 4, cfg)

Sources: timm `inception_v3.tv_in1k` and `vit_small_patch16_224.augreg_in21k_ft_in1k` (the paper's
pair), each wrapped with its own data config (input size, mean, std; the wrapper resizes the
sampler's 64/128-pixel stages). Judge: `convnext_tiny.fb_in1k`, another family, never used for
generation. MAE: the official `mae_visualize_vit_base.pth` (ViT-B/16 with its decoder; weights under
'model', ImageNet mean/std input space) in `cag_lib.mae`'s official layout, built at 256 px so that
the last stage is the paper's 256 x 256 (its fixed sin-cos position tables re-made for that grid).

Nothing here can be run on this project's own machines with real weights (they cannot download);
it is tested with randomly initialised models (`pretrained=False`) and checkpoints that the tests
write in the official formats. Offline, `load_imagenet_bundle()` fails at once and says which
bundles work offline.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .bundles import lookup_class, no_stats
from .clip import IMAGENET_CLIP, create_clip, zero_shot_classifier
from .config import GenerateConfig
from .errors import OFFLINE_HINT, OfflineError, require_hub, resolve_device
from .mae import MaskedAutoencoder, load_checkpoint, load_state
from .models import Classifier
from .prompts import PromptBundle

__all__ = ["OfflineError", "OFFLINE_HINT", "load_imagenet_bundle", "imagenet_preset", "imagenet_text_bundle",
           "measure_class_stats", "official_mae", "timm_classifier", "imagenet_class_names"]

SOURCES = ("inception_v3.tv_in1k", "vit_small_patch16_224.augreg_in21k_ft_in1k")
JUDGE = "convnext_tiny.fb_in1k"
MAE_URL = "https://dl.fbaipublicfiles.com/mae/visualize/mae_visualize_vit_base.pth"
# built at 256 px, the paper's last stage: the checkpoint was trained at 224, and its fixed sin-cos
# position tables are re-made for the 16 x 16 grid (mae.load_state)
MAE_VIT_BASE = dict(img_size=256, patch_size=16, in_chans=3, embed_dim=768, depth=12, num_heads=12,
                    decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16, mlp_ratio=4.0)


@functools.cache
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k classes, each as its first synonym ("goldfish", "tench", ...), from timm."""
    from timm.data import ImageNetInfo
    info = ImageNetInfo()
    return tuple(info.index_to_description(i).split(",")[0].strip() for i in range(info.num_classes()))


def timm_classifier(name: str, pretrained: bool = True, checkpoint: str | Path | None = None,
                    class_names=()) -> Classifier:
    """A timm model wrapped with its own data config (input size, mean, std) as a Classifier."""
    import timm
    if pretrained and checkpoint is None:
        require_hub(f"{name}'s pretrained weights")
    kw = {"pretrained_cfg_overlay": {"file": str(checkpoint)}} if checkpoint else {}
    try:
        net = timm.create_model(name, pretrained=pretrained or checkpoint is not None, **kw)
    except (OSError, RuntimeError) as e:  # no network, hub unreachable, bad file
        raise OfflineError(f"{name}: could not get pretrained weights ({type(e).__name__}: {e}); "
                           + OFFLINE_HINT) from e
    cfg = timm.data.resolve_data_config({}, model=net)
    return Classifier(net, cfg["input_size"][-1], cfg["mean"], cfg["std"], class_names, name=name).eval()


def official_mae(pretrained: bool = True, checkpoint: str | Path | None = None, **overrides) -> MaskedAutoencoder:
    """The official MAE ViT-B/16 with decoder (`mae_visualize_vit_base.pth`); overrides change the
    architecture (the tests use a small one)."""
    mae = MaskedAutoencoder(**{**MAE_VIT_BASE, **overrides})
    if checkpoint is not None:
        return load_checkpoint(mae, str(checkpoint)).eval()
    if pretrained:
        require_hub("the official MAE weights", MAE_URL.split("/")[2])
        try:
            state = torch.hub.load_state_dict_from_url(MAE_URL, map_location="cpu", weights_only=True)
        except OSError as e:
            raise OfflineError(f"could not download {MAE_URL} ({e}); " + OFFLINE_HINT) from e
        load_state(mae, state.get("model", state))
    return mae.eval()


@dataclass(frozen=True)
class ImageNetSpec:
    name: str = "imagenet"
    world: str = "imagenet"
    sources: tuple = SOURCES
    judge: str = JUDGE
    mae: str = "mae_visualize_vit_base"
    description: str = "ImageNet-1k: timm classifiers, the official MAE; a GPU with internet"


@dataclass
class ImageNetBundle:
    """The same interface as a small world's Bundle (classifiers, judge, mae, class_index)."""
    spec: ImageNetSpec
    classifiers: list
    judge: Classifier
    mae: MaskedAutoencoder
    class_stats: list | None = None     # eq. 6 statistics per source, from measure_class_stats

    name = property(lambda self: self.spec.name)
    in_chans = property(lambda self: 3)
    image_size = property(lambda self: self.mae.img_size)

    @property
    def class_names(self) -> tuple:
        return imagenet_class_names()

    def class_index(self, c) -> int:
        """An index, a synonym ("goldfish"), or a WordNet id ("n01443537") -> the class index."""
        return lookup_class(c, self.class_names, "ImageNet class", "give an index 0-999, a WordNet id such as "
                            "'n01443537', or a synonym such as 'goldfish'", imagenet_aliases())

    def feature_stats(self, sources) -> list:
        if self.class_stats is None:
            raise ValueError("distribution_weight > 0 needs class_stats of real ImageNet images: run "
                             "cag_lib.imagenet.measure_class_stats(bundle, folder), or set distribution_weight=0")
        return [self.class_stats[i] for i in sources]

    def gram_stats(self, sources) -> list:
        raise no_stats(self, "gram_weight")


@functools.cache
def imagenet_aliases() -> dict:
    """{WordNet id or any synonym, lower case: class index}."""
    from timm.data import ImageNetInfo
    info = ImageNetInfo()
    aliases = {w.lower(): i for i, w in enumerate(info.label_names())}
    for i in range(info.num_classes()):
        for syn in info.index_to_description(i).split(","):
            aliases.setdefault(syn.strip().lower(), i)
    return aliases


def load_imagenet_bundle(device="cpu", pretrained: bool = True, checkpoints: dict | None = None,
                         mae_overrides: dict | None = None) -> ImageNetBundle:
    """Sources, judge and MAE of the ImageNet bundle. checkpoints: local files by timm name or 'mae'.
    pretrained=False builds the same models randomly initialised (tests, speed measurements)."""
    ck, device = checkpoints or {}, resolve_device(device)
    names = imagenet_class_names()
    clfs = [timm_classifier(n, pretrained, ck.get(n), names).to(device).requires_grad_(False) for n in SOURCES]
    judge = timm_classifier(JUDGE, pretrained, ck.get(JUDGE), names).to(device).requires_grad_(False)
    mae = official_mae(pretrained, ck.get("mae"), **(mae_overrides or {})).to(device).requires_grad_(False)
    return ImageNetBundle(ImageNetSpec(), clfs, judge, mae)


IMAGENET_TEMPLATES = ("a photo of {}.", "a good photo of {}.", "a close-up photo of {}.", "a bright photo of {}.")


def imagenet_text_bundle(bundle: ImageNetBundle, prompts, pretrained: bool = True, checkpoint: str | Path | None = None,
                         templates=IMAGENET_TEMPLATES):
    """Text-to-image at ImageNet scale: open_clip ViT-B-32 (laion2b_s34b_b79k) as a zero-shot classifier
    over `prompts` (e.g. ["a goldfish", "a red fox in snow"]), with the bundle's MAE. pretrained=False:
    random weights (tests); checkpoint: a local open_clip state dict."""
    device = next(bundle.mae.parameters()).device
    model, tok = create_clip(IMAGENET_CLIP[0], IMAGENET_CLIP[1] if pretrained else None, checkpoint, device)
    return PromptBundle(zero_shot_classifier(model, tok, list(prompts), templates, IMAGENET_CLIP[0]), bundle.mae,
                        "imagenet-clip")


@torch.no_grad()
def measure_class_stats(bundle: ImageNetBundle, folder: str | Path, per_class: int = 50, batch_size: int = 64):
    """Eq. 6's per-class feature mean/std of every source on real images in `folder` (ImageNet's
    train layout: one subfolder per WordNet id). Sets bundle.class_stats and returns it."""
    from timm.data import ImageNetInfo
    from torchvision import datasets, transforms
    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])
    ds = datasets.ImageFolder(str(folder), transform=tf)
    wnids = list(ImageNetInfo().label_names())
    to_index = {i: wnids.index(c) for i, c in enumerate(ds.classes)}
    keep, seen = [], {}
    for j, (_, t) in enumerate(ds.samples):
        if seen.get(t, 0) < per_class:
            keep.append(j)
            seen[t] = seen.get(t, 0) + 1
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, keep), batch_size=batch_size)
    device = next(bundle.mae.parameters()).device
    feats, labels = [[] for _ in bundle.classifiers], []
    for x, t in loader:
        labels.append(torch.tensor([to_index[int(i)] for i in t]))
        for k, c in enumerate(bundle.classifiers):
            feats[k].append(c(x.to(device)).features.float().cpu())
    y = torch.cat(labels)
    stats = []
    for f in (torch.cat(fs) for fs in feats):
        mean = torch.zeros(1000, f.shape[1])
        std = torch.ones(1000, f.shape[1])
        for c in y.unique():
            mean[c] = f[y == c].mean(0)
            if (y == c).sum() > 1:
                std[c] = f[y == c].std(0)
        stats.append((mean, std))
    bundle.class_stats = stats
    return stats


def imagenet_preset(bundle: ImageNetBundle | None = None, **changes) -> GenerateConfig:
    """The paper's setting: 64 -> 128 -> 256, the ensemble, 2000 steps, diversity loss, gradient blur
    off (optional), and the distribution loss if the bundle has class statistics (measure_class_stats);
    without them the preset runs without eq. 6 and says so."""
    cfg = GenerateConfig(steps=2000, resolutions=(64, 128, 256), lr=0.05, blur_sigma=0.0, diversity_weight=1.0,
                         distribution_weight=1.0)
    if bundle is not None and bundle.class_stats is None:
        print("imagenet_preset: no class statistics of real ImageNet images (measure_class_stats(bundle, folder)); "
              "running without the distribution loss (eq. 6)")
        cfg = replace(cfg, distribution_weight=0.0)
    return replace(cfg, **changes)
