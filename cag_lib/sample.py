"""Many samples on disk: a sharded, resumable sampling command, spread over processes.

    python -m cag_lib.sample --bundle fmnist --recipe "CaG full" --per-class 100 --out runs/cag_full
    torchrun --nproc-per-node 4 -m cag_lib.sample --bundle fmnist --per-class 100 --out runs/cag_full

The work is a list of jobs (class, index), cut into shards of at most --shard-size jobs of one
class. A shard is one call of the sampler (one batch: eq. 4 and eq. 6 couple the images of a
class) and is written atomically to <out>/shards/c0007_i000025.npz: uint8 images, targets, the
per-image seeds and the config. Image i of class c starts from noise drawn with its own seed,
seed(run seed, c, i); the shard's masks come from seed(run seed, c, first index). So a shard's
images depend on the run's settings only, never on which process made it or how often the run
was stopped: an interrupted, resumed or re-spread run gives the images of one uninterrupted run.

A rerun of the same command skips finished shards and redoes corrupt ones; a different recipe in
the same folder is refused, and so is a second run while one is writing
there (<out>/.lock names it). At the end, rank 0 merges the shards into samples.npz, grid.png and
metrics.json (judge accuracy, Frechet distance, KID, diversity, seconds per image).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from . import __version__, zoo
from .shapes_text import SHAPES_ROBUST_CLIPS, attribute_scores, load_attribute_judges, load_text_bundle
from .data import load_world
from .diffusion import sample_images
from .errors import CorruptFileError
from .files import FolderInUseError, hold_folder, read_json
from .generate import GenerateConfig, generate, per_image_starts
from .imagenet import imagenet_preset, load_imagenet_bundle, measure_class_stats
from .metrics import evaluate, kernel_distance
from .processes import Dist, barrier, broadcast, init_distributed, pick_device, set_threads, sigterm_as_interrupt
from .recipes import RECIPES, recipe, shown_images
from .recipes import parse_sets as parse_changes
from .shards import MEND as SHARD_MEND
from .shards import (CorruptShardError, Shard, job_seed, plan_shards, read_shard, save_npz,  # noqa: F401
                     to_uint8, write_atomic)
from .shapes import HELD_OUT, scene_prompt, scene_triple
from .stats import bundle_class_grams, bundle_class_stats
from .viz import rows_figure

BUNDLE_CHOICES = (*zoo.BUNDLES, "shapes-text", "imagenet")
DEFAULT_RECIPE = {"shapes-text": "text-to-image", "imagenet": "imagenet"}   # else "CaG full"
IMAGENET_RECIPES = {"imagenet": "paper", "imagenet fast": "paper fast"}     # imagenet.PRESETS


class RunMismatchError(ValueError):
    """The output folder holds a run with other settings."""


# --- the run's settings -------------------------------------------------------------------------
@dataclass(frozen=True)
class DiffusionConfig:
    """A sample of the zoo's class-conditional DDPM (chapter 9's model) with one of diffusers' samplers."""
    sampler: str = "ddpm"   # "ddpm": ancestral, at the training's steps; "ddim": deterministic (eta 0)
    steps: int = 1000

    def __post_init__(self):
        if self.sampler not in ("ddpm", "ddim"):
            raise ValueError(f"sampler must be 'ddpm' or 'ddim', not {self.sampler!r}")
        if not 1 <= self.steps <= 1000:
            raise ValueError(f"steps must be between 1 and the training's 1000 timesteps, not {self.steps}")


@dataclass(frozen=True)
class GANConfig:
    """A sample of the zoo's class-conditional GAN: one forward pass of its generator."""
    model: str = "gan"      # the zoo name of the GAN


DIFFUSION_RECIPES = {"DDPM": DiffusionConfig("ddpm", 1000), "DDIM-10": DiffusionConfig("ddim", 10),
                     "DDIM-25": DiffusionConfig("ddim", 25), "DDIM-50": DiffusionConfig("ddim", 50)}


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides the images; a folder holds one run of one spec."""
    bundle: str
    recipe: str
    config: dict          # the resolved GenerateConfig, without seed and progress
    classes: tuple        # class names (prompts for text bundles), in run order
    per_class: int
    shard_size: int
    seed: int
    weights: dict         # model name -> sha256 (or how the weights were made)

    def identity(self) -> dict:
        return json.loads(json.dumps(asdict(self)))   # tuples as lists, as run.json stores them

    def run_id(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]


SAMPLE_RESERVED = {"seed": "use --seed for the run's seed (each shard derives its own)",
                   "progress": "the command shows its own progress bar"}


def parse_sets(pairs, config_class=GenerateConfig) -> dict:
    """--set's FIELD=VALUE pairs -> changes (recipes.parse_sets), seed and progress reserved."""
    return parse_changes(pairs, config_class, reserved=SAMPLE_RESERVED)


def resolve_config(bundle, name: str, sets) -> GenerateConfig | DiffusionConfig | GANConfig:
    """The named recipe (the ImageNet preset, a DDPM sampler, the GAN) with --set's changes."""
    if name == "GAN":
        return replace(GANConfig(), **parse_sets(sets, GANConfig))
    if name in DIFFUSION_RECIPES:
        return replace(DIFFUSION_RECIPES[name], **parse_sets(sets, DiffusionConfig))
    if name in IMAGENET_RECIPES:
        cfg = imagenet_preset(bundle, IMAGENET_RECIPES[name])
    elif name in RECIPES:
        cfg = recipe(name)
    else:
        raise ValueError(f"unknown recipe {name!r}; valid: {', '.join((*RECIPES, *DIFFUSION_RECIPES))}, GAN, "
                         + ", ".join(IMAGENET_RECIPES))
    return replace(cfg, **parse_sets(sets), progress=False)


def weights_ids(bundle_name: str, bundle, random_weights: bool, recipe_name: str = "") -> dict:
    """What identifies the weights a run used: sha256 from the zoo's manifest, or how they were made."""
    if recipe_name in (*DIFFUSION_RECIPES, "GAN"):
        model = "gan" if recipe_name == "GAN" else "diffusion"
        if bundle_name not in zoo.BUNDLES or model not in bundle.manifest:
            raise ValueError(f"--recipe {recipe_name}: the bundle {bundle_name!r} has no {model} model; "
                             "use --bundle fmnist")
        return {m: bundle.manifest[m]["sha256"] for m in (model, bundle.spec.judge)}
    if bundle_name == "imagenet":
        kind = "random (pretrained=False)" if random_weights else "pretrained"
        return {m: kind for m in (*bundle.spec.sources, bundle.spec.judge, bundle.spec.mae)}
    if bundle_name == "shapes-text":
        entries = zoo.read_manifest().get("shapes", {})
        return {m: entries[m]["sha256"] for m in (*SHAPES_ROBUST_CLIPS, "mae")}
    spec = bundle.spec
    return {m: bundle.manifest[m]["sha256"] for m in (*spec.sources, spec.judge, spec.mae)}


def load_any_bundle(name: str, device, random_weights: bool = False):
    """A zoo bundle, the shapes text-to-image bundle (robust CLIPs) or the ImageNet bundle."""
    if name in zoo.BUNDLES:
        return zoo.load_bundle(name, device)
    if name == "shapes-text":
        return load_text_bundle(device, members=SHAPES_ROBUST_CLIPS)
    if name == "imagenet":
        return load_imagenet_bundle(device, pretrained=not random_weights)
    raise ValueError(f"unknown bundle {name!r}; valid: {', '.join(BUNDLE_CHOICES)}")


def default_classes(bundle_name: str, bundle) -> list:
    if bundle_name == "shapes-text":     # the compositions no CLIP saw in training
        return [scene_prompt(*t) for t in HELD_OUT]
    return list(bundle.class_names)


def resolve_classes(bundle_name: str, bundle, given) -> list[int]:
    """--classes (names, indices, prompts; 'all' or nothing: the bundle's default) -> class indices."""
    if not given or list(given) == ["all"]:
        given = default_classes(bundle_name, bundle)
    idx = [bundle.class_index(int(c) if str(c).isdigit() else c) for c in given]
    if len(set(idx)) != len(idx):
        raise ValueError(f"--classes names a class twice: {list(given)}")
    return idx


def cag_passes(cfg: GenerateConfig, n_sources: int) -> int:
    """Network evaluations per image (each a forward and a backward pass): the MAE and every used
    source per step (twice per MALA step), then the final reconstructions."""
    per_step = int(cfg.use_mae) + (len(cfg.classifiers) if cfg.classifiers is not None else n_sources)
    return cfg.steps * per_step * (2 if cfg.sampler == "mala" else 1) + (cfg.final_masks if cfg.use_mae else 0)


def cag_maker(bundle, cfg: GenerateConfig, stats):
    """make(shard, seeds, shard_seed) -> (shown, x or None, what is shown, seconds, evaluations)."""
    def make(shard: Shard, seeds, shard_seed: int):
        init = per_image_starts(bundle, cfg, [shard.cls] * len(seeds), seeds)   # (B, C, r0, r0)
        res = generate(bundle, [shard.cls] * len(seeds), replace(cfg, seed=shard_seed), init=init,
                       class_stats=stats[0], class_grams=stats[1])
        if res.interrupted:
            raise KeyboardInterrupt
        shown, what = shown_images(res)
        inputs = res.images if res.reconstructions is not None else None   # x itself beside g(x)
        return shown, inputs, what, res.seconds, cag_passes(cfg, len(bundle.classifiers))
    return make


def diffusion_maker(model, cfg: DiffusionConfig):
    """The same for the DDPM: image i starts from N(0, I) noise drawn with its own seed."""
    def make(shard: Shard, seeds, shard_seed: int):
        c, size = model.in_chans, model.img_size
        noise = torch.cat([torch.randn(1, c, size, size, generator=torch.Generator().manual_seed(s)) for s in seeds])
        t0 = time.time()
        x = sample_images(model, torch.full((len(seeds),), shard.cls), noise, cfg.sampler, cfg.steps, shard_seed)
        return x, None, "x", time.time() - t0, cfg.steps
    return make


def gan_maker(model):
    """The same for the GAN: image i's noise z is drawn with its own seed."""
    def make(shard: Shard, seeds, shard_seed: int):
        z = torch.cat([torch.randn(1, model.z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])
        t0 = time.time()
        x = model.sample(z.to(next(model.parameters()).device), torch.full((len(seeds),), shard.cls))
        return x, None, "x", time.time() - t0, 1
    return make


def make_shard(make, cfg, spec: RunSpec, shard: Shard) -> dict:
    """One shard's arrays; KeyboardInterrupt if it was stopped."""
    seeds = [job_seed(spec.seed, "image", shard.cls, i) for i in shard.indices]
    shard_seed = job_seed(spec.seed, "shard", shard.cls, shard.start)
    shown, inputs, what, seconds, passes = make(shard, seeds, shard_seed)
    arrays = {"images": to_uint8(shown), "targets": np.full(len(seeds), shard.cls, dtype=np.int64),
              "indices": np.array(shard.indices, dtype=np.int64), "seeds": np.array(seeds, dtype=np.int64),
              "shard_seed": np.array(shard_seed, dtype=np.int64), "seconds": np.array(seconds),
              "evaluations": np.array(passes), "shown": np.array(what), "run_id": np.array(spec.run_id()),
              "config": np.array(json.dumps(asdict(replace(cfg, seed=shard_seed) if hasattr(cfg, "seed") else cfg)))}
    if inputs is not None:
        arrays["inputs"] = to_uint8(inputs)
    return arrays


# --- one run --------------------------------------------------------------------------------------
def shard_path(out: Path, shard: Shard) -> Path:
    return out / "shards" / f"{shard.name}.npz"


def check_manifest(out: Path, spec: RunSpec, about: dict) -> None:
    """Write <out>/run.json for a new run; for an existing one, refuse other settings."""
    path = out / "run.json"
    if not path.exists():
        out.joinpath("shards").mkdir(parents=True, exist_ok=True)
        text = json.dumps({"run": spec.identity(), "run_id": spec.run_id(), **about}, indent=2) + "\n"
        write_atomic(path, lambda f: f.write(text.encode()))
        return
    mend = "point --out at another folder, or delete the folder to start this run afresh there"
    have = read_json(path, mend, "a run manifest of cag_lib.sample")
    if not isinstance(have.get("run"), dict):
        raise CorruptFileError(f"{path} is not a run manifest of cag_lib.sample; {mend}")
    have = have["run"]
    want = spec.identity()
    diff = [f"{k} (there: {have.get(k)!r:.80}, here: {want[k]!r:.80})" for k in want if have.get(k) != want[k]]
    if diff:
        raise RunMismatchError(f"{out} holds another run; it differs in: " + "; ".join(diff)
                               + ". Use another --out, or delete that folder to start over")


def scan(out: Path, shards: list[Shard], run_id: str, redo: bool) -> list[Shard]:
    """The shards still to make: missing ones, corrupt ones (said, then deleted), all with redo."""
    for tmp in (out / "shards").glob(".*.tmp"):      # left by a process killed outright (SIGKILL)
        tmp.unlink(missing_ok=True)
    pending = []
    for sh in shards:
        path = shard_path(out, sh)
        if path.exists() and not redo:
            try:
                read_shard(path, sh, run_id)
                continue
            except CorruptShardError as e:
                print(f"corrupt shard: {str(e).replace('; ' + SHARD_MEND, '')}; redoing it", flush=True)
        path.unlink(missing_ok=True)
        pending.append(sh)
    return pending


def class_stats_for(bundle, cfg: GenerateConfig, d: Dist) -> tuple:
    """(eq. 6's class statistics, the Gram term's) for a small world's bundle, measured and cached
    by rank 0 before the others read them; (None, None) where the sampler needs none or measures
    none (text bundles, ImageNet: bundle.class_stats)."""
    if not isinstance(bundle, zoo.Bundle):
        return None, None
    idx = range(len(bundle.classifiers)) if cfg.classifiers is None else cfg.classifiers

    def measure():
        return ([bundle_class_stats(bundle, i) for i in idx] if cfg.distribution_weight else None,
                [bundle_class_grams(bundle, i) for i in idx] if cfg.gram_weight else None)
    got = measure() if d.rank == 0 else None
    barrier(d)
    return got if d.rank == 0 else measure()


def work(make, cfg, spec: RunSpec, out: Path, shards, mine, d: Dist) -> None:
    """Make this rank's shards; rank 0's bar counts every rank's finished images on disk."""
    done = lambda: sum(len(s.indices) for s in shards if shard_path(out, s).exists())  # noqa: E731
    quiet = os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true") or d.rank != 0
    bar = tqdm(total=sum(len(s.indices) for s in shards), initial=done(), unit="img", disable=quiet,
               desc=f"sample {spec.bundle} {spec.recipe!r}" + (f" ({d.world} processes)" if d.active else ""))
    try:
        for sh in mine:
            save_npz(shard_path(out, sh), make_shard(make, cfg, spec, sh))
            bar.n = done()
            bar.refresh()
    finally:
        bar.close()


def merge(out: Path, spec: RunSpec, shards: list[Shard], class_names) -> dict:
    """Every shard, in plan order, into <out>/samples.npz; returns the merged arrays."""
    parts = [read_shard(shard_path(out, s), s, spec.run_id()) for s in shards]
    keys = ["images", "targets", "indices", "seeds"] + (["inputs"] if "inputs" in parts[0] else [])
    merged = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    merged.update(class_names=np.array(class_names), shown=parts[0]["shown"], run_id=np.array(spec.run_id()),
                  seconds=np.array(sum(float(p["seconds"]) for p in parts)), evaluations=parts[0]["evaluations"])
    save_npz(out / "samples.npz", merged)
    return merged


def score(bundle_name: str, bundle, images: np.ndarray, targets: np.ndarray, n_real: int = 2000) -> dict:
    """The merged samples' numbers: the judge's (and the real reference's) on a small world, the
    attribute judges' on the shapes prompts, the judge's alone at ImageNet scale."""
    x = torch.from_numpy(images).float() / 255                      # (N, C, H, W) in [0, 1]
    t = torch.from_numpy(targets)
    if bundle_name == "shapes-text":
        triples = [scene_triple(bundle.class_names[i]) for i in targets.tolist()]
        right = attribute_scores(load_attribute_judges(), x, triples)
        return {f"{k}_acc": float(v.mean()) for k, v in right.items()}
    if isinstance(bundle, zoo.Bundle) and len(x) >= 2:   # a distance between distributions needs two images
        x_real, y_real = load_world(bundle.spec.world, "test", n_real)
        row = evaluate(bundle, x, t, x_real, y_real)
        row["kid"], row["kid_std"] = kernel_distance(bundle.judge, x, x_real)
        return {**row, "n_real": len(x_real)}
    return evaluate(bundle, x, t)


def report(out: Path, bundle_name: str, bundle, spec: RunSpec, merged: dict, n_real: int) -> dict:
    """metrics.json and grid.png (up to 16 images of up to 20 classes) for the merged run."""
    metrics = score(bundle_name, bundle, merged["images"], merged["targets"], n_real)
    n = len(merged["targets"])
    metrics.update(n=n, per_class=spec.per_class, classes=len(spec.classes), shown=str(merged["shown"]),
                   seconds_per_image=float(merged["seconds"]) / n, evaluations_per_image=int(merged["evaluations"]),
                   threads_per_process=torch.get_num_threads())
    metrics = {k: None if isinstance(v, float) and v != v else v for k, v in metrics.items()}   # NaN: null
    text = json.dumps(metrics, indent=2) + "\n"
    write_atomic(out / "metrics.json", lambda f: f.write(text.encode()))
    x, t = torch.from_numpy(merged["images"]).float() / 255, merged["targets"]
    rows = {bundle.class_names[c]: x[t == c][:16] for c in dict.fromkeys(t.tolist()[: 20 * spec.per_class])}
    acc = metrics.get("judge_acc", metrics.get("shape+colour_acc")) or float("nan")
    rows_figure(dict(list(rows.items())[:20]), out / "grid.png",
                title=f"{spec.bundle} {spec.recipe!r} [{merged['shown']}]: N = {n}, judge acc {acc:.2f}")
    return metrics


# --- the command ----------------------------------------------------------------------------------
EXAMPLES = """examples:
  python -m cag_lib.sample --bundle fmnist --recipe "CaG full" --per-class 100 --out runs/cag_full
  python -m cag_lib.sample --bundle fmnist --recipe eq1 --classes Sneaker Bag --per-class 8 --out runs/eq1
  python -m cag_lib.sample --bundle fmnist --set steps=1000 --per-class 100 --out runs/cag_1000
  python -m cag_lib.sample --bundle shapes-text --prompts "red star on a blue background" --out runs/t2i
  torchrun --nproc-per-node 4 -m cag_lib.sample --bundle imagenet --classes goldfish --out runs/in
  python -m cag_lib.sample --bundle imagenet --classes n01443537 --stats-folder train/ --out runs/in6

Stop it at any time (Ctrl-C, or SIGTERM); the same command continues where it stopped.
Recipes: """ + ", ".join(repr(r) for r in RECIPES) + """, 'imagenet' (the paper's preset: 3000 steps,
no blur), 'imagenet fast' (its fast one: 2000 steps, blurred); with --bundle imagenet,
--stats-folder DIR (ImageNet's train layout) switches eq. 6 on;
the zoo's class-conditional DDPM: """ + ", ".join(DIFFUSION_RECIPES) + "; its GAN: GAN."


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cag_lib.sample", epilog=EXAMPLES,
                                description="Generate many samples into a folder: sharded, resumable, "
                                            "spread over processes by torchrun; merged and judged at the end.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default="fmnist", choices=BUNDLE_CHOICES, help="which models (default fmnist)")
    p.add_argument("--recipe", help="a named recipe (below); default 'CaG full', 'text-to-image' for "
                                    "shapes-text, 'imagenet' for imagenet")
    p.add_argument("--classes", "--prompts", nargs="+", metavar="CLASS",
                   help="class names or indices, prompts for shapes-text (default: all classes; the 10 "
                        "held-out prompts for shapes-text)")
    p.add_argument("--per-class", type=int, default=10, help="images per class (default 10)")
    p.add_argument("--out", type=Path, required=True, help="the run's folder (created; reused to resume)")
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="FIELD=VALUE",
                   help="change the recipe: any GenerateConfig field, e.g. steps=1000 'resolutions=(16,32)'")
    p.add_argument("--seed", type=int, default=0, help="the run's seed; every image derives its own")
    p.add_argument("--shard-size", type=int, default=25, help="images per shard: one sampler batch (25)")
    p.add_argument("--no-resume", dest="resume", action="store_false", help="redo finished shards too")
    p.add_argument("--device", default="auto", help="auto (this process's GPU, else mps, else cpu), cpu, cuda")
    p.add_argument("--threads", type=int, default=0, help="CPU threads per process (0: cores / processes)")
    p.add_argument("--n-real", type=int, default=2000, help="real test images the metrics compare with")
    p.add_argument("--stats-folder", type=Path, metavar="DIR",
                   help="imagenet only: real images in ImageNet's train layout (one subfolder per WordNet id); "
                        "eq. 6's class statistics are measured on all images of the classes drawn")
    p.add_argument("--random-weights", action="store_true",
                   help="imagenet only: randomly initialised models (tests, speed; no download)")
    return p


def config_identity(cfg) -> dict:
    return {k: v for k, v in asdict(cfg).items() if k not in ("seed", "progress")}


def prepare(args, d: Dist):
    """Load the bundle and fix the run's spec and shard plan from the arguments."""
    if args.per_class < 1 or args.shard_size < 1:
        raise ValueError("--per-class and --shard-size must be at least 1")
    if args.random_weights and args.bundle != "imagenet":
        raise ValueError("--random-weights is for --bundle imagenet; the small worlds ship trained weights")
    if args.stats_folder and args.bundle != "imagenet":
        raise ValueError("--stats-folder is for --bundle imagenet; the small worlds measure eq. 6's statistics "
                         "on their own data")
    device = pick_device(args.device, d)
    threads = set_threads(args.threads, d, device)
    bundle = load_any_bundle(args.bundle, device, args.random_weights)
    name = args.recipe or DEFAULT_RECIPE.get(args.bundle, "CaG full")
    classes = resolve_classes(args.bundle, bundle, args.classes)
    weights = weights_ids(args.bundle, bundle, args.random_weights, name)
    if args.stats_folder:   # measured once, on rank 0, for the classes drawn
        bundle.class_stats = on_rank0(d, lambda: measure_class_stats(bundle, args.stats_folder, classes))
        weights["class_stats"] = str(args.stats_folder.resolve())
    cfg = resolve_config(bundle, name, args.set)
    spec = RunSpec(args.bundle, name, config_identity(cfg), tuple(bundle.class_names[c] for c in classes),
                   args.per_class, args.shard_size, args.seed, weights)
    about = {"command": [Path(sys.argv[0]).name, *sys.argv[1:]], "created": time.strftime("%Y-%m-%d %H:%M:%S"),
             "processes": d.world, "threads_per_process": threads, "device": device.type,
             "versions": {"cag_lib": __version__, "torch": torch.__version__, "numpy": np.__version__,
                          "python": platform.python_version()}}
    return bundle, cfg, spec, plan_shards(classes, args.per_class, args.shard_size), about


ERRORS = {"FolderInUseError": FolderInUseError, "RunMismatchError": RunMismatchError,
          "CorruptFileError": CorruptFileError, "ValueError": ValueError, "FileNotFoundError": FileNotFoundError}


def on_rank0(d: Dist, fn):
    """fn() on rank 0, its result on every rank; an error of rank 0 is raised on every rank (else
    the others would wait at the broadcast for ever)."""
    result, error = None, None
    if d.rank == 0:
        try:
            result = fn()
        except Exception as e:
            error = (type(e).__name__, str(e))
    result, error = broadcast(d, (result, error))
    if error:
        raise ERRORS.get(error[0], RuntimeError)(error[1] if error[0] in ERRORS else f"{error[0]}: {error[1]}")
    return result


def run(args) -> dict:
    """The whole command on this process; rank 0 returns the metrics (others: {})."""
    d = init_distributed()
    sigterm_as_interrupt()
    bundle, cfg, spec, shards, about = prepare(args, d)
    with ExitStack() as held:
        def take_folder():   # rank 0 holds the folder for every rank of the run
            command = "python -m cag_lib.sample " + " ".join(about["command"][1:])
            held.enter_context(hold_folder(args.out, command))
            check_manifest(args.out, spec, about)
            return scan(args.out, shards, spec.run_id(), redo=not args.resume)
        pending = on_rank0(d, take_folder)
        return make_and_merge(args, d, bundle, cfg, spec, shards, pending)


def make_and_merge(args, d: Dist, bundle, cfg, spec: RunSpec, shards, pending) -> dict:
    """Make the pending shards on every rank, then merge and score them on rank 0."""
    out = args.out
    if d.rank == 0:
        print(f"{out}: {len(shards) - len(pending)} of {len(shards)} shards done, {len(pending)} to make"
              + (f" on {d.world} processes" if d.active else ""), flush=True)
    device = next(bundle.mae.parameters()).device
    if isinstance(cfg, DiffusionConfig):
        make = diffusion_maker(zoo.load_model(args.bundle, "diffusion", device), cfg)
    elif isinstance(cfg, GANConfig):
        make = gan_maker(zoo.load_model(args.bundle, cfg.model, device))
    else:
        make = cag_maker(bundle, cfg, class_stats_for(bundle, cfg, d))
    work(make, cfg, spec, out, shards, pending[d.rank::d.world], d)
    barrier(d)
    metrics = {}
    if d.rank == 0:
        metrics = report(out, args.bundle, bundle, spec, merge(out, spec, shards, bundle.class_names), args.n_real)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}), flush=True)
    barrier(d)        # every rank leaves together (gloo fails a rank whose peer already left)
    return metrics


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except KeyboardInterrupt:
        print(f"interrupted: finished shards are kept in {args.out}; run the same command again to continue",
              file=sys.stderr, flush=True)
        sys.exit(130)
    except (ValueError, OSError, RuntimeError) as e:   # OSError: a folder that cannot be written, a full disk
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
