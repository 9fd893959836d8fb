"""Named bundles of models: which classifiers generate, which judge evaluates, which MAE reconstructs.

The small worlds' weights ship inside the package (cag_lib/weights/<bundle>/*.safetensors) and are
listed in cag_lib/weights/manifest.json with their sha256, the exact command that trained them,
the training time and the test metrics measured on the shipped files. Loading checks the checksum.

    >>> b = load_bundle("fmnist")
    >>> out = b.classifiers[0](images)      # ClassifierOutput(logits, features)
    >>> g_x = b.mae.reconstruct(images)     # eq. 3's g(x)
"""
from __future__ import annotations

import fcntl
import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file

from . import stats
from .bundles import lookup_class
from .clip import create_clip, expand_token_embedding
from .data import world_classes
from .diffusion import ConditionalDiffusion
from .errors import CorruptFileError, resolve_device
from .files import read_json, read_or_explain
from .gan import ConditionalGAN
from .mae import MaskedAutoencoder
from .models import Classifier, Ensemble, arch_kwargs, build_network

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class BundleSpec:
    name: str
    world: str          # which small world's data the models were trained on
    sources: tuple      # classifiers used for generation
    judge: str          # held-out classifier of another family, never used for generation
    mae: str
    description: str


BUNDLES = {
    "fmnist": BundleSpec("fmnist", "fmnist", ("resnet", "vit"), "convnext", "mae",
                         "Fashion-MNIST, 10 garment classes, 32x32 grey"),
    "shapes": BundleSpec("shapes", "shapes", ("resnet", "vit"), "convnext", "mae",
                         "procedural coloured shapes, 8 shape classes, 32x32 RGB"),
    # the same world and judge, with sources fine-tuned adversarially (L2 PGD): Santurkar et al.'s
    # robust models, whose input gradients point at visible features
    "fmnist-robust": BundleSpec("fmnist-robust", "fmnist", ("resnet_robust", "vit_robust"), "convnext", "mae",
                                "Fashion-MNIST with adversarially trained (L2) sources"),
    # the same world, sources and judge, with an MAE of 2x2 patches trained for 6 epochs on a CPU: an
    # attempt at a sharper g (book/gap.md; its reconstructions came out further from the data)
    "fmnist-mae-p2": BundleSpec("fmnist-mae-p2", "fmnist", ("resnet", "vit"), "convnext", "mae_sharp",
                                "Fashion-MNIST with an MAE of 2x2 patches"),
    "shapes-robust": BundleSpec("shapes-robust", "shapes", ("resnet_robust", "vit_robust"), "convnext", "mae",
                                "coloured shapes with adversarially trained (L2) sources"),
}


REINSTALL = ("reinstall cag_lib (pip install --force-reinstall cag_lib; in a clone: "
             "git checkout cag_lib/weights)")


class ChecksumError(CorruptFileError, RuntimeError):
    pass


class WeightsNotFoundError(FileNotFoundError):
    pass


def bundle_spec(name: str) -> BundleSpec:
    if name not in BUNDLES:
        raise ValueError(f"unknown bundle {name!r}; available bundles: {', '.join(BUNDLES)} "
                         "(both run offline on a CPU)")
    return BUNDLES[name]


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(weights_dir: str | Path | None = None) -> dict:
    path = Path(weights_dir or WEIGHTS_DIR) / "manifest.json"
    if not path.exists():
        return {}
    return read_json(path, REINSTALL, "the weights manifest (JSON)")


@contextmanager
def _locked_manifest(weights_dir: Path):
    """Read-modify-write the manifest under a file lock (training jobs run in parallel)."""
    weights_dir.mkdir(parents=True, exist_ok=True)
    with open(weights_dir / ".manifest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest = read_manifest(weights_dir)
        yield manifest
        (weights_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def write_entry(bundle: str, name: str, entry: dict, weights_dir: str | Path | None = None) -> None:
    with _locked_manifest(Path(weights_dir or WEIGHTS_DIR)) as manifest:
        manifest.setdefault(bundle, {})[name] = entry


def update_metrics(bundle: str, name: str, metrics: dict, weights_dir: str | Path | None = None) -> None:
    with _locked_manifest(Path(weights_dir or WEIGHTS_DIR)) as manifest:
        manifest[bundle][name].setdefault("metrics", {}).update(metrics)


def model_from_entry(entry: dict) -> nn.Module:
    """An untrained model of the architecture an entry describes."""
    if entry["kind"] == "mae":
        return MaskedAutoencoder(**entry["config"])
    if entry["kind"] == "diffusion":
        return ConditionalDiffusion(**entry["config"])
    if entry["kind"] == "gan":
        return ConditionalGAN(**entry["config"])
    if entry["kind"] == "clip":
        return create_clip(entry["config"]["model"])[0]
    net = build_network(entry["arch"], entry["in_chans"], len(entry["class_names"]),
                        **arch_kwargs(entry["arch"], entry["input_size"]))
    return Classifier(net, entry["input_size"], entry["mean"], entry["std"], entry["class_names"],
                      name=entry.get("name", entry["arch"]))


def load_entry(entry: dict, weights_dir: str | Path | None = None, device="cpu") -> nn.Module:
    """Build the model an entry describes and load its checksummed weights (float32, eval mode)."""
    path = Path(weights_dir or WEIGHTS_DIR) / entry["file"]
    if not path.exists():
        raise WeightsNotFoundError(f"weights file {path} is missing; reinstall cag_lib or retrain with: "
                                   f"{entry['training']['command']}")
    digest = sha256(path)
    if digest != entry["sha256"]:
        raise ChecksumError(f"checksum mismatch for {path}: manifest says {entry['sha256'][:12]}..., "
                            f"file has {digest[:12]}...; the file is damaged (or was retrained without "
                            f"updating manifest.json): {REINSTALL}, or retrain it with: "
                            f"{entry['training']['command']}")
    device = resolve_device(device)
    model = model_from_entry(entry)
    state = read_or_explain(path, lambda p: load_file(str(p)), "safetensors weights", REINSTALL)
    state = {k: v if k.endswith(".ids") else v.float() for k, v in state.items()}
    known = state.get("token_embedding.ids")
    if entry["kind"] == "clip":   # shipped with only the token rows the world uses (shapes_text.prune_token_embedding)
        state = expand_token_embedding(state, model.token_embedding.num_embeddings)
    target = model.net if entry["kind"] == "classifier" else model
    target.load_state_dict(state)
    if known is not None:         # the other rows are zeros: clip.check_prompts refuses words that need them
        model.known_tokens = known.long()
    return model.to(device).eval().requires_grad_(False)


def load_model(bundle: str, name: str, device="cpu", weights_dir: str | Path | None = None) -> nn.Module:
    manifest = read_manifest(weights_dir)
    if name not in manifest.get(bundle, {}):
        have = ", ".join(manifest.get(bundle, {})) or "none"
        raise WeightsNotFoundError(f"no model {name!r} in bundle {bundle!r} (it has: {have})")
    return load_entry(manifest[bundle][name], weights_dir, device)


@dataclass
class Bundle:
    spec: BundleSpec
    classifiers: list          # source classifiers, used for generation
    judge: Classifier          # held-out, for evaluation only
    mae: MaskedAutoencoder
    manifest: dict             # this bundle's manifest entries

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def class_names(self) -> tuple:
        return world_classes(self.spec.world)

    @property
    def in_chans(self) -> int:
        return self.judge.in_chans

    @property
    def image_size(self) -> int:
        return self.mae.img_size

    def ensemble(self) -> Ensemble:
        return Ensemble(self.classifiers)

    def class_index(self, c) -> int:
        """A class given by name (case-insensitive) or index -> its index; a clear error otherwise."""
        return lookup_class(c, self.class_names, "class", f"the classes of bundle {self.name!r}")

    def feature_stats(self, sources) -> list:
        """Eq. 6's class statistics of each source on the world's training images, measured once
        (a progress bar) and cached under the weights' sha256."""
        return [stats.bundle_class_stats(self, i) for i in sources]

    def gram_stats(self, sources) -> list:
        return [stats.bundle_class_grams(self, i) for i in sources]

    def image_gaussians(self) -> tuple:
        """A Gaussian per class over the world's real images at 8x8 (the "class gaussian" start)."""
        return stats.class_image_gaussians(self.spec.world)


def load_bundle(name: str = "fmnist", device="cpu", weights_dir: str | Path | None = None) -> Bundle:
    """Load a named bundle: its source classifiers, held-out judge and MAE, checksums verified."""
    spec = bundle_spec(name)
    entries = read_manifest(weights_dir).get(spec.world, {})   # the manifest lists models by world
    if weights_dir is not None and not (Path(weights_dir) / "manifest.json").exists():
        raise WeightsNotFoundError(f"weights_dir {str(weights_dir)!r} has no manifest.json: point it at a folder "
                                   "that `python -m cag_lib.train --out` wrote, or leave it out for the weights "
                                   f"that ship with cag_lib ({WEIGHTS_DIR})")
    missing = [m for m in (*spec.sources, spec.judge, spec.mae) if m not in entries]
    if missing:
        raise WeightsNotFoundError(f"bundle {name!r} lacks trained weights for {missing} in the manifest; "
                                   "train them with `python -m cag_lib.train` (see the training appendix)")
    load = lambda m: load_entry(entries[m], weights_dir, device)  # noqa: E731
    # the sources' convolutions run channels_last: faster on the CPU (benchmarks/speed_cpu.py)
    sources = [load(m).to(memory_format=torch.channels_last) for m in spec.sources]
    return Bundle(spec, sources, load(spec.judge), load(spec.mae), entries)


def markdown_table(weights_dir: str | Path | None = None) -> str:
    """The zoo as a markdown table, straight from the manifest (the book's appendix shows it)."""
    manifest = read_manifest(weights_dir)
    lines = ["| bundle | model | role | architecture | params | test metric | training time |",
             "|---|---|---|---|---|---|---|"]
    for b in manifest:   # a world's models once, its default bundle's first
        spec = BUNDLES[b]
        named = (*spec.sources, spec.judge, spec.mae)
        others = sorted(set(manifest.get(b, {})) - set(named))   # e.g. the diffusion model (chapter 9)
        for name in (*named, *others):
            e = manifest.get(b, {}).get(name)
            if e is None:
                continue
            m = e["metrics"]
            if "test_accuracy" in m:
                target = e.get("training", {}).get("config", {}).get("target") or ""
                metric = f"{target + ' ' if target else ''}accuracy {m['test_accuracy']:.2%} on {m['test_images']} test images"
                robust = [k for k in m if k.startswith("robust_accuracy@")]
                if robust:   # an adversarially trained source: accuracy under its own attack too
                    metric += (f"; {m[robust[0]]:.2%} of the first {m['robust_images']} under an L2 attack of radius "
                               f"{robust[0].split('@')[1]} (PGD, 10 steps)")
            elif "zero_shot_shape_accuracy" in m:
                metric = (f"zero-shot accuracy: shape {m['zero_shot_shape_accuracy']:.2%}, colour "
                          f"{m['zero_shot_colour_accuracy']:.2%}, background {m['zero_shot_background_accuracy']:.2%} "
                          f"on {m['test_images']} test images")
            elif "dc_test_accuracy" in m:
                metric = f"diffusion-classifier accuracy {m['dc_test_accuracy']:.2%} on {m['dc_test_images']} test images"
            elif "sample_judge_accuracy" in m:
                metric = f"judge accuracy {m['sample_judge_accuracy']:.2%} on {m['test_images']} samples"
            elif "test_eps_mse" in m:
                metric = f"noise-prediction MSE {m['test_eps_mse']:.4f} on {m['test_images']} test images"
            else:
                metric = f"masked-patch MSE {m['masked_mse@0.75']:.4f} (mask 0.75) on {m['test_images']} test images"
            if e["kind"] == "clip":
                tower = "ResNet" if isinstance(e["config"]["open_clip_config"]["vision_cfg"]["layers"], list) else "ViT"
                arch = f"open_clip `{e['config']['model']}` ({tower} + text transformer)"
            elif e["kind"] == "diffusion":
                arch = f"diffusers UNet2DModel {tuple(e['config']['unet']['block_out_channels'])}"
            elif e["kind"] == "gan":
                arch = f"DCGAN-style, projection discriminator, width {e['config']['width']}"
            else:
                arch = e.get("arch", f"MAE, patch {e.get('config', {}).get('patch_size', '?')}")
            if e["training"].get("config", {}).get("adv_eps"):
                arch += f", adversarially fine-tuned (L2 {e['training']['config']['adv_eps']:g})"
            if e["training"].get("init"):   # fine-tuned (python -m cag_lib.train --init NAME)
                arch += f" from {e['training']['init']['name']}"
            lines.append(f"| {b} | {name} | {e['role']} | {arch} | {e['params'] / 1e6:.2f} M | {metric} "
                         f"| {e['training']['seconds'] / 60:.1f} min "
                         f"({'GPU' if e['training'].get('device', 'cpu').startswith('cuda') else 'CPU'}) |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
