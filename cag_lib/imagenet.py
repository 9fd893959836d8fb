"""The ImageNet bundle: the paper's scale, for a GPU with internet (Colab).

    >>> b = load_imagenet_bundle(device="cuda")             # weights from the Hugging Face hub and dl.fbaipublicfiles.com
    >>> measure_class_stats(b, "train/", classes=["goldfish"])  # eq. 6's statistics, optional
    >>> cfg = imagenet_preset(b)                             # 64 -> 128 -> 256, ensemble, 3000 steps, no blur
    >>> res = generate(b, ["goldfish"] * 4, cfg)            # res.images: x_T; res.reconstructions: g(x_T)

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
from tqdm.auto import tqdm

from .bundles import lookup_class, no_stats
from .clip import IMAGENET_CLIP, create_clip, zero_shot_classifier
from .config import GenerateConfig
from .errors import OFFLINE_HINT, OfflineError, require_hub, resolve_device
from .mae import MaskedAutoencoder, load_checkpoint
from .generate import mean_reconstruction
from .models import Classifier, accuracy
from .prompts import PromptBundle

__all__ = ["OfflineError", "OFFLINE_HINT", "load_imagenet_bundle", "imagenet_preset", "imagenet_text_preset",
           "imagenet_text_bundle", "measure_class_stats", "visible_patch_check", "real_images", "stand_in_folder",
           "save_by_class", "official_mae", "timm_classifier", "imagenet_class_names", "PRESETS", "IMAGENET_CLIPS"]

SOURCES = ("inception_v3.tv_in1k", "vit_small_patch16_224.augreg_in21k_ft_in1k")
JUDGE = "convnext_tiny.fb_in1k"
MAE_URL = "https://dl.fbaipublicfiles.com/mae/visualize/mae_visualize_vit_base.pth"
# built at 256 px, the paper's last stage: the checkpoint was trained at 224, and its fixed sin-cos
# position tables are re-made for the 16 x 16 grid (mae.load_state)
MAE_VIT_BASE = dict(img_size=256, patch_size=16, in_chans=3, embed_dim=768, depth=12, num_heads=12,
                    decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16, mlp_ratio=4.0)


@functools.cache
def _info():
    """timm's ImageNet-1k class list: WordNet ids and their synonyms (read once)."""
    from timm.data import ImageNetInfo
    return ImageNetInfo()


def wordnet_ids() -> list[str]:
    """The 1000 WordNet ids ("n01443537", ...), in class-index order."""
    return list(_info().label_names())


@functools.cache
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k classes, each as its first synonym ("goldfish", "tench", ...), from timm."""
    info = _info()
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
        path = Path(torch.hub.get_dir()) / "checkpoints" / MAE_URL.rsplit("/", 1)[1]
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                torch.hub.download_url_to_file(MAE_URL, str(path))
            except OSError as e:
                raise OfflineError(f"could not download {MAE_URL} ({e}); " + OFFLINE_HINT) from e
        load_checkpoint(mae, str(path))       # read with weights_only=True, as any local file
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
                            "'n01443537', or a synonym such as 'goldfish'", imagenet_aliases(), describe_class)

    def feature_stats(self, sources) -> list:
        if self.class_stats is None:
            raise ValueError("distribution_weight > 0 needs class_stats of real ImageNet images: run "
                             "cag_lib.imagenet.measure_class_stats(bundle, folder), or set distribution_weight=0")
        return [self.class_stats[i] for i in sources]

    def gram_stats(self, sources) -> list:
        raise no_stats(self, "gram_weight")


@functools.cache
def imagenet_aliases() -> dict:
    """{WordNet id or any synonym, lower case: the tuple of class indices it names}. Some names
    belong to two classes ("crane": the bird and the machine; "maillot"); lookup_class refuses those."""
    info = _info()
    aliases = {w.lower(): (i,) for i, w in enumerate(info.label_names())}
    for i in range(info.num_classes()):
        for syn in info.index_to_description(i).split(","):
            key = syn.strip().lower()
            aliases[key] = tuple(dict.fromkeys((*aliases.get(key, ()), i)))
    return aliases


def describe_class(i: int) -> str:
    """'n01443537 (goldfish, Carassius auratus)': a class by WordNet id and every synonym."""
    info = _info()
    return f"{info.index_to_label_name(i)} ({info.index_to_description(i)})"


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
# open_clip (model, pretrained tag): OpenAI's ViT-B/32, the paper's text-to-image CLIP, and LAION's
IMAGENET_CLIPS = {"openai": ("ViT-B-32-quickgelu", "openai"), "laion": IMAGENET_CLIP}


def imagenet_text_bundle(bundle: ImageNetBundle, prompts, pretrained: bool = True, checkpoint: str | Path | None = None,
                         templates=IMAGENET_TEMPLATES, clip: str = "openai"):
    """Text-to-image at ImageNet scale: a CLIP ViT-B/32 as a zero-shot classifier over `prompts`
    (["a red fox in snow"], or several: then each pulls away from the others), with the bundle's MAE.
    clip: "openai" (OpenAI's weights, the paper's) or "laion" (open_clip's laion2b_s34b_b79k).
    pretrained=False: random weights (tests); checkpoint: a local open_clip state dict."""
    if clip not in IMAGENET_CLIPS:
        raise ValueError(f"clip={clip!r}; valid: {', '.join(map(repr, IMAGENET_CLIPS))}")
    name, tag = IMAGENET_CLIPS[clip]
    device = next(bundle.mae.parameters()).device
    model, tok = create_clip(name, tag if pretrained else None, checkpoint, device)
    return PromptBundle(zero_shot_classifier(model, tok, list(prompts), templates, name), bundle.mae,
                        f"imagenet-clip-{clip}")


# --- real images: eq. 6's statistics, the visible-patch check, the scorer ---------------------------
class ImageNetFolder(torch.utils.data.Dataset):
    """The images of some classes in a folder of ImageNet's train layout (one subfolder per WordNet
    id), each resized and centre-cropped to size x size, in [0, 1]; items (image (3, S, S), class)."""

    def __init__(self, folder: str | Path, classes, per_class: int | None = None, size: int = 256):
        from torchvision import transforms
        from torchvision.datasets.folder import IMG_EXTENSIONS
        folder, wnids = real_folder(folder), wordnet_ids()
        self.items = []
        for c in classes:
            sub = folder / wnids[c]
            files = sorted(f for f in sub.glob("*") if f.suffix.lower() in IMG_EXTENSIONS) if sub.is_dir() else []
            if len(files) < 2:
                raise ValueError(f"{folder} has {len(files)} image(s) of class {describe_class(c)}; eq. 6 and "
                                 f"the scores need at least 2: add them as {sub}/*.jpg, or leave the class out")
            self.items += [(f, c) for f in files[:per_class]]
        self.tf = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor()])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        from PIL import Image
        path, c = self.items[i]
        with Image.open(path) as im:
            return self.tf(im.convert("RGB")), c


def real_folder(folder: str | Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of real images; give a folder with one "
                                f"subfolder per WordNet id (ImageNet's train layout), e.g. {folder}/n01443537/")
    return folder


def stand_in_folder(folder: str | Path, classes, per_class: int = 3, size: int = 64, seed: int = 0) -> Path:
    """A folder in ImageNet's train layout holding random-noise JPEGs of `classes`: what tests and
    smoke runs read where real ImageNet images cannot be had. Its numbers measure nothing."""
    from PIL import Image
    folder, wnids = Path(folder), wordnet_ids()
    g = torch.Generator().manual_seed(seed)
    for c in classes:
        (folder / wnids[c]).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            pixels = (torch.rand(size, size, 3, generator=g) * 255).byte().numpy()
            Image.fromarray(pixels).save(folder / wnids[c] / f"stand_in_{k}.JPEG")
    return folder


def save_by_class(images: torch.Tensor, classes, folder: str | Path, prefix: str = "") -> Path:
    """images (N, 3, S, S) in [0, 1] as PNGs in ImageNet's layout, <folder>/<WordNet id>/<prefix><i>.png
    (classes: one class index per image): what real_images and FID tools read back."""
    from torchvision.utils import save_image
    folder, wnids = Path(folder), wordnet_ids()
    for i, (x, c) in enumerate(zip(images, classes)):
        (folder / wnids[c]).mkdir(parents=True, exist_ok=True)
        save_image(x, folder / wnids[c] / f"{prefix}{i:05d}.png")
    return folder


def folder_classes(folder: str | Path) -> list[int]:
    """The classes that have a subfolder (named by WordNet id) in folder."""
    index = {w: i for i, w in enumerate(wordnet_ids())}
    return sorted(index[d.name] for d in real_folder(folder).iterdir() if d.is_dir() and d.name in index)


def real_images(folder: str | Path, classes, per_class: int | None = None, size: int = 256, batch_size: int = 64,
                workers: int = 2):
    """Batches (x (B, 3, S, S) in [0, 1], labels (B,)) of the classes' real images (all of them, or
    per_class each) from a folder in ImageNet's train layout."""
    ds = ImageNetFolder(folder, classes, per_class, size)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers)


@torch.no_grad()
def measure_class_stats(bundle: ImageNetBundle, folder: str | Path, classes=None, per_class: int | None = None,
                        batch_size: int = 64):
    """Eq. 6's per-class feature mean/std of every source on real images in `folder` (ImageNet's
    train layout): all images of each class (or per_class), for `classes` (names, ids or indices;
    None: every class the folder has). A class left out keeps mean 0 and std 0, which the sampler
    refuses for a target ("no statistics"). Sets bundle.class_stats and returns it."""
    idx = folder_classes(folder) if classes is None else [bundle.class_index(c) for c in classes]
    device = next(bundle.mae.parameters()).device
    feats, labels = [[] for _ in bundle.classifiers], []
    for x, y in tqdm(real_images(folder, idx, per_class, batch_size=batch_size), desc="class statistics",
                     unit="batch"):
        labels.append(y)
        for k, c in enumerate(bundle.classifiers):
            feats[k].append(c(x.to(device)).features.float().cpu())
    y = torch.cat(labels)
    stats = []
    for f in (torch.cat(fs) for fs in feats):
        mean, std = torch.zeros(1000, f.shape[1]), torch.zeros(1000, f.shape[1])
        for c in y.unique():
            mean[c], std[c] = f[y == c].mean(0), f[y == c].std(0)
        stats.append((mean, std))
    bundle.class_stats = stats
    return stats


@torch.no_grad()
def visible_patch_check(bundle: ImageNetBundle, folder: str | Path, classes, per_class: int = 10,
                        mask_ratio: float = 0.75, n_masks: int = 4, seed: int = 0) -> dict:
    """Which picture g keeps a real image's class better: the decoder's output everywhere
    (keep_visible=False) or the visible patches copied back from the input (True). The judge's
    accuracy on real images of `classes` and on both; "keep_visible": the better (ties: True)."""
    idx = [bundle.class_index(c) for c in classes]
    x, y = map(torch.cat, zip(*real_images(folder, idx, per_class, bundle.mae.img_size)))
    dev = next(bundle.mae.parameters()).device
    row = {"n": len(y), "real": accuracy(bundle.judge, x, y, 32)}
    for keep in (False, True):
        g = torch.cat([mean_reconstruction(bundle.mae, x[i:i + 32].to(dev), mask_ratio, keep, n_masks, seed).cpu()
                       for i in range(0, len(x), 32)])
        row[f"keep_visible={keep}"] = accuracy(bundle.judge, g, y, 32)
    row["keep_visible"] = row["keep_visible=True"] >= row["keep_visible=False"]
    return row


# the paper: "about 3000 steps" for its best pictures; "fast optimization": 2000 steps with the
# gradient blurred (its width is not given; the book's blur_sigma, 0.5 px of the stage)
PRESETS = {"paper": dict(steps=3000, blur_sigma=0.0), "paper fast": dict(steps=2000, blur_sigma=0.5)}


def imagenet_preset(bundle: ImageNetBundle | None = None, preset: str = "paper", **changes) -> GenerateConfig:
    """The paper's setting: 64 -> 128 -> 256, the ensemble, the diversity loss, and the distribution
    loss if the bundle has class statistics (measure_class_stats; without them the preset runs
    without eq. 6 and says so). preset "paper": 3000 steps, no gradient blur; "paper fast": 2000
    steps, blurred. keep_visible=True: the official MAE was trained with its loss on masked patches
    only (eq. 2), and its authors find its output on visible patches worse, so the visible patches
    are copied back; visible_patch_check measures both on real images of your classes."""
    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r}; valid: {', '.join(map(repr, PRESETS))}")
    cfg = GenerateConfig(resolutions=(64, 128, 256), lr=0.05, diversity_weight=1.0, distribution_weight=1.0,
                         keep_visible=True, **PRESETS[preset])
    if bundle is not None and bundle.class_stats is None and changes.get("distribution_weight", 1.0):
        print("imagenet_preset: no class statistics of real ImageNet images (measure_class_stats(bundle, folder)); "
              "running without the distribution loss (eq. 6)")
        cfg = replace(cfg, distribution_weight=0.0)
    return replace(cfg, **changes)


def imagenet_text_preset(preset: str = "paper", **changes) -> GenerateConfig:
    """Text-to-image as the paper runs it: the preset with the distance-metric loss (eq. 4) off, and
    no eq. 6 (a free-text prompt has no real images to measure)."""
    return replace(imagenet_preset(None, preset, diversity_weight=0.0, distribution_weight=0.0), **changes)
