"""How the small worlds' models were made: one entry point for classifiers and masked autoencoders.

    python -m cag_lib.train classifier --bundle fmnist --name resnet --arch resnet --epochs 5
    python -m cag_lib.train classifier --bundle fmnist --name convnext --arch convnext --role judge \
        --augment strong --seed 1 --epochs 8
    python -m cag_lib.train mae --bundle fmnist --name mae --epochs 12
    python -m cag_lib.train diffusion --bundle fmnist --name diffusion --epochs 5 --ema 0.998
    python -m cag_lib.train clip --bundle shapes --name clip --epochs 8 --batch-size 256
    python -m cag_lib.train classifier --bundle shapes --target colour --name colour_judge --role judge

Each run writes <out>/<bundle>/<name>.safetensors (float16), reloads it through the zoo, measures it
on the world's test split and records file, sha256, exact command, time and metrics in
<out>/manifest.json (out defaults to the package's weights folder). The exact commands used for the
shipped weights are in that manifest.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from safetensors.torch import save_file
from tqdm.auto import tqdm

from . import zoo
from .data import load_world, world_classes
from .diffusion import ConditionalDiffusion
from .gan import ConditionalGAN
from .mae import MaskedAutoencoder
from .clip import SHAPES_CLIP, create_clip, normalise_images, registered_open_clip
from .attacks import pgd_l2, robust_accuracy
from .files import read_or_explain
from .models import Classifier, accuracy, arch_kwargs, build_network
from .shapes import ATTRIBUTES, COLOUR_NAMES, held_out_mask, load_shapes
from .shapes_text import attribute_accuracy, prune_token_embedding


@dataclass
class TrainConfig:
    kind: str = "classifier"          # "classifier", "mae", "diffusion" (class-conditional DDPM), "clip" or "gan"
    bundle: str = "fmnist"
    name: str = "resnet"
    arch: str = "resnet"              # classifiers: one of cag_lib.models.ARCHS
    input_size: int = 32              # classifiers: the network's input size; the wrapper resizes the 32x32 images
    target: str = ""                  # classifiers on shapes: "shape" (= "", the world's classes), "colour", "background"
    role: str = "source"              # "source" (generates) or "judge" (held out, evaluates)
    epochs: float = 5
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.0
    augment: str = "light"            # "none", "light" (flip, shift), "strong" (+ rotate, scale, noise) or
                                      # "degrade" (light + blur, lower contrast, noise)
    seed: int = 0
    mask_ratio: float = 0.75          # MAE
    visible_weight: float = 0.25      # MAE: weight of the error on visible patches (0 = official loss)
    mae: dict = field(default_factory=lambda: dict(patch_size=4, embed_dim=128, depth=4, num_heads=4,
                                                   decoder_embed_dim=96, decoder_depth=2, decoder_num_heads=3,
                                                   mlp_ratio=4.0))
    unet: dict = field(default_factory=dict)  # diffusion: overrides of cag_lib.diffusion.DEFAULT_UNET
    ema: float = 0.0                  # exponential moving average of the weights (0 = off); the EMA is shipped
    clip_groups: int = 0              # CLIP: build each batch from runs of this many scenes sharing colour and
                                      # background, so their captions differ only in shape and size (0 = random)
    clip_model: str = "cag-shapes-clip"  # CLIP: an open_clip config name (cag_lib/clip_configs holds the small ones)
    adv_eps: float = 0.0              # classifiers, CLIP: adversarial training, L2 radius of the PGD attack on
                                      #   images in [0, 1] (0 = off)
    adv_steps: int = 3                # PGD steps per batch when adv_eps > 0
    init: str = ""                    # fine-tune: start from this zoo model of the bundle ("" = random weights);
    init_dir: str = ""                #   looked up in this weights folder ("" = the package's)
    limit: int = 0                    # use only the first N training images (0 = all); for tests
    max_steps: int = 0                # stop after N optimiser steps (0 = all); for tests
    test_limit: int = 0               # measure on the first N test images (0 = all); for tests
    out: str = ""                     # weights folder ("" = the package's)
    checkpoint_every: int = 200       # save a checkpoint every N steps, so that a stopped run continues (0 = never)
    device: str = "cpu"               # where to train ("cuda" if you have one); measuring is on the CPU


CLIP_ONLY = ("clip_groups", "clip_model")   # recorded in the manifest for CLIP runs only
ADVERSARIAL = ("adv_eps", "adv_steps")         # recorded for the kinds that train adversarially


def training_data(cfg: TrainConfig, split: str, n: int | None):
    """(images (N, C, 32, 32), targets, class names): targets are class indices, or for CLIP the
    tokenised captions (N, context_length)."""
    if cfg.target not in ("", "shape") and (cfg.bundle != "shapes" or cfg.kind != "classifier"):
        raise ValueError(f"--target {cfg.target!r} needs a classifier on the shapes world")
    if cfg.kind == "clip" or cfg.target not in ("", "shape"):
        if cfg.bundle != "shapes":
            raise ValueError("CLIP trains on the shapes world's captions: use --bundle shapes")
        d = load_shapes(split, n=n)
        if cfg.kind == "clip":   # without the held-out compositions when training (chapter 8's test)
            keep = ~held_out_mask(d) if split == "train" else torch.ones(len(d), dtype=torch.bool)
            tokens = registered_open_clip().get_tokenizer(SHAPES_CLIP)([c for c, k in zip(d.captions, keep) if k])
            return d.images[keep], tokens, ()
        if cfg.target not in ATTRIBUTES:
            raise ValueError(f"unknown target {cfg.target!r}; valid: {', '.join(ATTRIBUTES)}")
        return d.images, d.labels[cfg.target], ATTRIBUTES[cfg.target]
    x, y = load_world(cfg.bundle, split, n)
    return x, y, world_classes(cfg.bundle)


def clip_group_keys(n: int | None) -> torch.Tensor:
    """(N,) colour * 8 + background of the CLIP training scenes (held-out compositions removed, as in
    training_data): the key batch_indices groups by."""
    d = load_shapes("train", n=n)
    return (d.labels["colour"] * len(COLOUR_NAMES) + d.labels["background"])[~held_out_mask(d)]


def batch_indices(n: int, batch_size: int, g: torch.Generator, keys: torch.Tensor | None = None,
                  group: int = 0) -> list[torch.Tensor]:
    """One epoch of mini-batches as index tensors. With keys and group > 0 each batch is made of runs
    of `group` indices that share a key (hard negatives for a contrastive loss); runs are shuffled."""
    perm = torch.randperm(n, generator=g)
    if keys is None or group <= 0:
        return list(perm.split(batch_size))
    runs = [run for k in keys.unique() for run in perm[keys[perm] == k].split(group)]
    order = torch.randperm(len(runs), generator=g).tolist()
    return list(torch.cat([runs[i] for i in order]).split(batch_size))


def channel_stats(x: torch.Tensor) -> tuple[list, list]:
    """Per-channel mean and std of images (N, C, H, W), rounded for the manifest."""
    return ([round(v, 4) for v in x.mean((0, 2, 3)).tolist()], [round(v, 4) for v in x.std((0, 2, 3)).tolist()])


def augment(x: torch.Tensor, strength: str, g: torch.Generator) -> torch.Tensor:
    """Random flips and affine jitter for a batch (B, C, H, W) in [0, 1]; border pixels fill the gaps."""
    if strength == "none":
        return x
    b = x.shape[0]
    flip = torch.rand(b, generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    shift = (torch.rand(b, 2, generator=g) * 2 - 1) * (2 if strength == "light" else 3) * 2 / x.shape[-1]
    angle = (torch.rand(b, generator=g) * 2 - 1) * (0 if strength == "light" else math.radians(8))
    scale = 1 + (torch.rand(b, generator=g) * 2 - 1) * (0 if strength == "light" else 0.1)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    x = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), padding_mode="border",
                      align_corners=False)
    if strength == "strong":  # mild pixel noise on half the batch
        sigma = torch.rand(b, 1, 1, 1, generator=g) * 0.05 * (torch.rand(b, 1, 1, 1, generator=g) < 0.5)
        x = (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)
    if strength == "degrade":  # each on half the batch: blur (sigma up to 1.5 px), contrast 0.5-1, noise
        half = lambda: (torch.rand(b, 1, 1, 1, generator=g) < 0.5).float()  # noqa: E731
        sigma = 0.3 + 1.2 * torch.rand(1, generator=g).item()
        blurred = TF.gaussian_blur(x, kernel_size=2 * math.ceil(3 * sigma) + 1, sigma=sigma)
        x = torch.lerp(x, blurred, half())
        mean = x.mean((1, 2, 3), keepdim=True)
        contrast = 1 - 0.5 * torch.rand(b, 1, 1, 1, generator=g) * half()
        x = mean + contrast * (x - mean)
        x = (x + half() * 0.08 * torch.rand(b, 1, 1, 1, generator=g) * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return x


def save_weights(state: dict, path, clip: bool = False) -> None:
    """A state dict as float16 safetensors; a shapes CLIP keeps only the token rows its world uses."""
    if clip:
        state = prune_token_embedding(state)
    save_file({k: v if k.endswith(".ids") else v.to(torch.float16).contiguous() for k, v in state.items()}, str(path))


def masked_mse(mae: MaskedAutoencoder, images: torch.Tensor, mask_ratio: float = 0.75, seed: int = 0,
               batch_size: int = 500) -> dict:
    """Pixel-space ([0, 1]) mean squared error of an MAE's reconstruction on masked and visible patches,
    with masks drawn from `seed` (so the number is reproducible)."""
    g = torch.Generator().manual_seed(seed)
    sums = torch.zeros(2)
    counts = torch.zeros(2)
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size]
            noise = mae.mask_noise(len(x), g, device="cpu").to(x.device)
            rec, mask = mae.reconstruct(x, mask_ratio, noise=noise, keep_visible=False, return_mask=True)
            err = ((mae.patchify(rec) - mae.patchify(x)) ** 2).mean(-1).cpu()  # (B, L)
            sums += torch.stack([(err * mask.cpu()).sum(), (err * (1 - mask.cpu())).sum()])
            counts += torch.stack([mask.sum(), (1 - mask).sum()]).cpu()
    masked, visible = (sums / counts).tolist()
    return {f"masked_mse@{mask_ratio}": round(masked, 5), f"visible_mse@{mask_ratio}": round(visible, 5)}


def denoising_mse(model: ConditionalDiffusion, images: torch.Tensor, labels: torch.Tensor, seed: int = 0,
                  batch_size: int = 500) -> float:
    """The DDPM loss on test images with the true class, timesteps and noise drawn from `seed`."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        losses = [model.loss(images[i:i + batch_size], labels[i:i + batch_size], g).item() * len(images[i:i + batch_size])
                  for i in range(0, len(images), batch_size)]
    return round(sum(losses) / len(images), 5)


@torch.no_grad()
def gan_judge_accuracy(model: ConditionalGAN, bundle: str, per_class: int = 100, seed: int = 0) -> float:
    """The bundle's judge's accuracy on per_class seeded samples of every class."""
    judge = zoo.load_model(bundle, zoo.BUNDLES[bundle].judge)
    c = torch.arange(len(model.class_names)).repeat_interleave(per_class)
    z = torch.randn(len(c), model.z_dim, generator=torch.Generator().manual_seed(seed))
    return round(accuracy(judge, model.sample(z, c), c), 4)


# --- the kinds of model: how each is built, what it learns from a batch, how it is measured -----

@dataclass(frozen=True)
class Kind:
    """One kind of model the zoo trains. build(cfg, in_chans, mean, std, classes) -> model;
    loss(cfg, model, x, y, g, aux) -> () loss of a batch x (B, C, H, W), y class indices (or CLIP's
    tokenised captions); measure(cfg, shipped, x_test, y_test, classes) -> metrics; describe(cfg,
    model, x_train, mean, std, classes) -> what the manifest entry records of the architecture."""
    build: Callable
    loss: Callable
    measure: Callable
    describe: Callable = lambda cfg, model, *rest: {"config": model.config}
    betas: tuple = (0.9, 0.95)
    setup: Callable = lambda cfg: None                  # aux for loss, made once (CLIP's ClipLoss)
    after_step: Callable = lambda cfg, model: None
    own_fields: tuple = ()                              # TrainConfig fields only this kind records
    trained: Callable = lambda model: model             # the module the loop's optimiser steps
    saved: Callable = lambda model: model               # the module whose state is shipped


def _classifier_loss(cfg, model, x, y, g, aux):
    def loss(xi):
        return F.cross_entropy(model(xi).logits, y, label_smoothing=cfg.label_smoothing)
    if cfg.adv_eps:   # train on the images the current model finds hardest nearby (Madry et al.)
        x = pgd_l2(loss, x, cfg.adv_eps, cfg.adv_steps, g)
    return loss(x)


ROBUST_IMAGES = 1000   # robust accuracy: the first 1000 test images (10 PGD steps each)


def _measure_classifier(cfg, model, x_test, y_test) -> dict:
    """Test accuracy; for an adversarially trained model also its robust accuracy at its own radius."""
    out = {"test_accuracy": round(accuracy(model, x_test, y_test), 4)}
    if cfg.adv_eps:
        n = min(ROBUST_IMAGES, len(x_test))
        out[f"robust_accuracy@{cfg.adv_eps:g}"] = round(robust_accuracy(model, x_test[:n], y_test[:n], cfg.adv_eps), 4)
        out["robust_images"] = n
    return out


def _build_classifier(cfg, in_chans, mean, std, classes):
    net = build_network(cfg.arch, in_chans, len(classes), **arch_kwargs(cfg.arch, cfg.input_size))
    return Classifier(net, cfg.input_size, mean, std, classes, name=cfg.name)


def _mae_loss(cfg, model, x, y, g, aux):
    noise = model.mask_noise(len(x), g, device="cpu").to(cfg.device)
    return model(x, cfg.mask_ratio, noise=noise, visible_weight=cfg.visible_weight)[0]


def _gan_loss(cfg, model, x, y, g, aux):   # D takes its own step first; the loop's optimiser then steps G
    model.discriminator_step(x, y, g, cfg.lr)
    return model.generator_loss(y, g)


def _clip_loss(cfg, model, x, y, g, clip_loss):   # open_clip's contrastive loss on (image, caption) pairs
    text = model.encode_text(y, normalize=True)                                  # (B, D)

    def image_loss(xi, text=text):
        return clip_loss(model.encode_image(normalise_images(model, xi), normalize=True), text,
                         model.logit_scale.exp())
    if cfg.adv_eps:   # train on the images the current model finds hardest nearby
        x = pgd_l2(lambda xi: image_loss(xi, text.detach()), x, cfg.adv_eps, cfg.adv_steps, g)
    return image_loss(x)


def _clamp_logit_scale(cfg, model):
    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(100))   # as open_clip's training loop does


def _measure_clip(cfg, shipped, x_test, y_test, classes):
    labels = load_shapes("test", n=cfg.test_limit or None).labels
    tok = registered_open_clip().get_tokenizer(SHAPES_CLIP)
    return {f"zero_shot_{a}_accuracy": round(attribute_accuracy(shipped, tok, x_test, labels[a], a), 4)
            for a in ("shape", "colour", "background")}


def _describe_clip(cfg, model, *rest):
    oc = registered_open_clip()
    return {"config": {"model": cfg.clip_model, "open_clip_config": oc.get_model_config(cfg.clip_model),
                       "open_clip": oc.__version__}}


def _describe_classifier(cfg, model, x_train, mean, std, classes):
    return dict(arch=cfg.arch, in_chans=x_train.shape[1], input_size=cfg.input_size, mean=mean, std=std,
                class_names=list(classes))


KINDS: dict[str, Kind] = {
    "classifier": Kind(_build_classifier, _classifier_loss,
                       lambda cfg, m, x, y, c: _measure_classifier(cfg, m, x, y),
                       _describe_classifier, betas=(0.9, 0.999), saved=lambda m: m.net,
                       own_fields=ADVERSARIAL),
    "mae": Kind(lambda cfg, c, mean, std, k: MaskedAutoencoder(img_size=32, in_chans=c, mean=mean, std=std,
                                                               **cfg.mae),
                _mae_loss, lambda cfg, m, x, y, c: masked_mse(m, x, cfg.mask_ratio), own_fields=("mae",)),
    "diffusion": Kind(lambda cfg, c, *_: ConditionalDiffusion(world_classes(cfg.bundle), c, 32, unet=cfg.unet),
                      lambda cfg, m, x, y, g, aux: m.loss(x, y, g),   # accuracy: benchmarks/diffusion_classifier.py
                      lambda cfg, m, x, y, c: {"test_eps_mse": denoising_mse(m, x, y)}, own_fields=("unet",)),
    "clip": Kind(lambda cfg, *_: create_clip(cfg.clip_model)[0].train().requires_grad_(True), _clip_loss,
                 _measure_clip, _describe_clip, setup=lambda cfg: registered_open_clip().ClipLoss(), after_step=_clamp_logit_scale,
                 own_fields=CLIP_ONLY + ADVERSARIAL),
    "gan": Kind(lambda cfg, c, *_: ConditionalGAN(world_classes(cfg.bundle), c), _gan_loss,
                lambda cfg, m, x, y, c: {"sample_judge_accuracy": gan_judge_accuracy(m, cfg.bundle),
                                         "test_images": 100 * len(c)},   # chapter 10 has the panel
                betas=(0.0, 0.9), trained=lambda m: m.generator),       # a GAN's D has its own optimiser
}


def kind_of(cfg) -> Kind:
    if cfg.kind not in KINDS:
        raise ValueError(f"kind must be one of {tuple(KINDS)}, not {cfg.kind!r}")
    return KINDS[cfg.kind]


def init_entry(cfg: TrainConfig, classes=()) -> dict:
    """The manifest entry of the zoo model cfg.init (in cfg.init_dir) that a fine-tuning run starts from;
    its architecture and input statistics are the ones it was trained with."""
    models = zoo.read_manifest(cfg.init_dir or None).get(cfg.bundle, {})
    entry = models.get(cfg.init)
    if entry is None or entry["kind"] != cfg.kind:
        have = [n for n, e in models.items() if e["kind"] == cfg.kind]
        raise ValueError(f"--init {cfg.init!r}: no {cfg.kind} of that name in bundle {cfg.bundle!r} of "
                         f"{cfg.init_dir or zoo.WEIGHTS_DIR}; its {cfg.kind} models: {', '.join(have) or 'none'}")
    if cfg.kind == "classifier" and tuple(entry["class_names"]) != tuple(classes):
        raise ValueError(f"--init {cfg.init!r} classifies {entry['class_names']}, this run's target has {list(classes)}")
    return entry


def one_cycle(opt, lr: float, total: int):
    """Linear warm-up over the first 10% of `total` steps, then cosine decay (torch's OneCycleLR).
    OneCycleLR divides by zero when pct_start * total is exactly 1 (total = 10), so the warm-up is
    nudged there."""
    pct = 0.1 if abs(0.1 * total - 1) > 1e-9 else 0.15
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=pct,
                                               anneal_strategy="cos", cycle_momentum=False)


def train(cfg: TrainConfig, command: str = "") -> dict:
    """Train one model as cfg says, save it, measure it, record it in the manifest; returns the entry."""
    kind = kind_of(cfg)
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    x_train, y_train, classes = training_data(cfg, "train", cfg.limit or None)
    mean, std = channel_stats(x_train)
    start = init_entry(cfg, classes) if cfg.init else None   # fine-tuning: the model to start from
    model = (zoo.load_entry(start, cfg.init_dir or None).requires_grad_(True) if start
             else kind.build(cfg, x_train.shape[1], mean, std, classes)).to(cfg.device)
    run = fit(cfg, kind, model, x_train, y_train, g)
    entry = record(cfg, kind, run, command, start)
    entry.update(kind.describe(cfg, run.model, x_train, mean, std, classes))
    out = Path(cfg.out) if cfg.out else zoo.WEIGHTS_DIR
    shipped = zoo.load_entry(entry, out)   # measure the shipped (float16) file, not the float32 model
    x_test, y_test, _ = training_data(cfg, "test", cfg.test_limit or None)
    entry["metrics"] = kind.measure(cfg, shipped, x_test, y_test, classes)
    entry["metrics"].setdefault("test_images", len(x_test))
    zoo.write_entry(cfg.bundle, cfg.name, entry, out)
    return entry



def checkpoint_path(cfg: TrainConfig) -> Path:
    """Where a run keeps its checkpoint: next to the weights it will write, removed when it ends."""
    return (Path(cfg.out) if cfg.out else zoo.WEIGHTS_DIR) / cfg.bundle / f"{cfg.name}.ckpt.pt"


def save_checkpoint(cfg, step, pending, seconds, g, *stateful) -> None:
    """Everything a stopped run needs to go on exactly where it was: the step, the rest of this
    epoch's batches, the random generator, and the state of the model, optimiser, schedule, EMA."""
    path = checkpoint_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": recorded_config(cfg), "step": step, "pending": pending, "seconds": seconds,
                "rng": g.get_state(),
                "states": [s.state_dict() if s is not None else None for s in stateful]}, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)


def _read_checkpoint(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def resume(cfg, g, *stateful) -> tuple[int, list | None, float]:
    """(step, the rest of the epoch's batches, seconds spent) from a checkpoint of the same run, else
    (0, None, 0). A checkpoint of another configuration is refused, not silently mixed in."""
    path = checkpoint_path(cfg)
    if not cfg.checkpoint_every or not path.exists():
        return 0, None, 0.0
    ck = read_or_explain(path, _read_checkpoint, "a training checkpoint", "delete it to start the run afresh")
    now = recorded_config(cfg)
    if ck["config"] != now:
        diff = sorted(k for k in {**ck["config"], **now} if ck["config"].get(k) != now.get(k))
        raise ValueError(f"the checkpoint {path} is of a run with other settings ({', '.join(diff)}); run the "
                         f"same command to continue it, or delete the file to start afresh")
    for s, state in zip(stateful, ck["states"]):
        if s is not None:
            s.load_state_dict(state)
    g.set_state(ck["rng"])
    print(f"continuing {cfg.bundle}/{cfg.name} from step {ck['step']} ({path})", flush=True)
    return ck["step"], ck["pending"], ck["seconds"]


@dataclass
class Run:
    model: torch.nn.Module
    steps: int
    total: int
    steps_per_epoch: int
    train_images: int
    seconds: float
    interrupted: bool


def fit(cfg: TrainConfig, kind: Kind, model, x_train, y_train, g: torch.Generator) -> Run:
    """The one training loop: AdamW with warm-up and cosine decay, optional EMA; Ctrl-C (or timeout
    -s INT) stops it and keeps what was learnt so far. Every cfg.checkpoint_every steps it saves a
    checkpoint; the same command run again continues from it, exactly (same batches, same noise)."""
    model.train()
    steps_per_epoch = math.ceil(len(x_train) / cfg.batch_size)
    total = max(1, round(cfg.epochs * steps_per_epoch))
    total = min(total, cfg.max_steps) if cfg.max_steps else total
    opt = torch.optim.AdamW([p for p in kind.trained(model).parameters() if p.requires_grad], lr=cfg.lr,
                            weight_decay=cfg.weight_decay, betas=kind.betas)
    sched, aux = one_cycle(opt, cfg.lr, total), kind.setup(cfg)
    ema = (torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema))
           if cfg.ema else None)
    keys = clip_group_keys(cfg.limit or None) if cfg.kind == "clip" and cfg.clip_groups else None
    stateful = (model, opt, sched, ema)
    step, pending, before = resume(cfg, g, *stateful)
    t0, interrupted = time.time() - before, False
    bar = tqdm(total=total, initial=step, desc=f"{cfg.bundle}/{cfg.name}", mininterval=5)
    try:
        while step < total:
            batches = pending or batch_indices(len(x_train), cfg.batch_size, g, keys, cfg.clip_groups)
            batches, pending = batches[:total - step], None
            for i, idx in enumerate(batches):
                x = augment(x_train[idx], cfg.augment, g).to(cfg.device)
                loss = kind.loss(cfg, model, x, y_train[idx].to(cfg.device), g, aux)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                kind.after_step(cfg, model)
                if ema is not None:
                    ema.update_parameters(model)
                step += 1
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < total:
                    save_checkpoint(cfg, step, batches[i + 1:], time.time() - t0, g, *stateful)
    except KeyboardInterrupt:
        interrupted = True
        print(f"interrupted after {step} of {total} steps: saving and measuring the model as it is "
              f"(the checkpoint of step {step - step % cfg.checkpoint_every if cfg.checkpoint_every else 0} "
              "stays: the same command continues from it)", flush=True)
    bar.close()
    if not interrupted:
        checkpoint_path(cfg).unlink(missing_ok=True)
    return Run(ema.module if ema is not None else model, step, total, steps_per_epoch, len(x_train),
               time.time() - t0, interrupted)


def recorded_config(cfg: TrainConfig) -> dict:
    """The TrainConfig fields a manifest entry records: not the output folder, not the fields of
    other kinds, no init fields without --init, no MAE size for a fine-tuned MAE."""
    others = {f for name, k in KINDS.items() if name != cfg.kind for f in k.own_fields} - set(kind_of(cfg).own_fields)
    return {k: v for k, v in asdict(cfg).items()
            if k not in ("out", "checkpoint_every") and k not in others and not (k == "mae" and cfg.init)
            and not (k in ("init", "init_dir") and not cfg.init)}


def record(cfg: TrainConfig, kind: Kind, run: Run, command: str, start: dict | None) -> dict:
    """Save the weights (float16) and start the manifest entry: file, checksum, how it was trained."""
    out = Path(cfg.out) if cfg.out else zoo.WEIGHTS_DIR
    rel = f"{cfg.bundle}/{cfg.name}.safetensors"
    (out / cfg.bundle).mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in kind.saved(run.model).state_dict().items()}
    save_weights(state, out / rel, clip=cfg.kind == "clip")
    entry = {"name": cfg.name, "kind": cfg.kind, "role": cfg.role if cfg.kind == "classifier" else cfg.kind,
             "file": rel, "sha256": zoo.sha256(out / rel), "dtype": "float16",
             "params": sum(p.numel() for p in run.model.parameters()),
             "training": {"command": command or "cag_lib.train.train(...)", "seconds": round(run.seconds, 1),
                          "steps": run.steps, "epochs": round(run.steps / run.steps_per_epoch, 2),
                          "train_images": run.train_images, "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "device": cfg.device, "config": recorded_config(cfg)}}
    if run.interrupted:
        entry["training"]["interrupted_after_steps_of"] = run.total
    if start:   # a fine-tuned model: what it started from
        entry["training"]["init"] = {"name": cfg.init, "sha256": start["sha256"],
                                     "command": start["training"]["command"], "epochs": start["training"]["epochs"]}
    return entry


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m cag_lib.train", description=__doc__.split("\n")[0])
    p.add_argument("kind", choices=tuple(KINDS))
    d = TrainConfig()
    for f in ("bundle", "name", "arch", "target", "role", "augment", "out", "device", "clip_model", "init", "init_dir"):
        p.add_argument(f"--{f.replace('_', '-')}", default=getattr(d, f))
    for f in ("epochs", "lr", "weight_decay", "label_smoothing", "mask_ratio", "visible_weight", "ema", "adv_eps"):
        p.add_argument(f"--{f.replace('_', '-')}", type=float, default=getattr(d, f))
    for f in ("batch_size", "seed", "limit", "max_steps", "test_limit", "clip_groups", "adv_steps", "input_size",
              "checkpoint_every"):
        p.add_argument(f"--{f.replace('_', '-')}", type=int, default=getattr(d, f))
    p.add_argument("--mae-config", type=json.loads, default=None,
                   help='MAE size as JSON, e.g. \'{"embed_dim": 192, "depth": 6}\' (merged into the default)')
    p.add_argument("--unet-config", type=json.loads, default=None,
                   help='diffusion UNet overrides as JSON, e.g. \'{"block_out_channels": [32, 64, 64]}\'')
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = TrainConfig(**{k: v for k, v in vars(a).items() if k not in ("threads", "mae_config", "unet_config")})
    if cfg.init and (a.mae_config or a.unet_config):
        p.error("--init starts from a trained model, whose architecture is fixed: drop --mae-config / --unet-config")
    cfg.mae.update(a.mae_config or {})
    cfg.unet.update(a.unet_config or {})
    if cfg.kind != "classifier" and cfg.name == "resnet":
        cfg.name = cfg.kind
    entry = train(cfg, "python -m cag_lib.train " + " ".join(argv))
    print(f"{cfg.bundle}/{cfg.name}: {entry['metrics']}  ({entry['training']['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
