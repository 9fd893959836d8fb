"""CaG against a DDPM, judged by a sealed panel: samples by the thousand, every number per judge.

    python benchmarks/panel.py make ROW [ROW ...]   # generate with python -m cag_lib.sample, store
    python benchmarks/panel.py cost                 # seconds per image of every generator, quiet machine
    python benchmarks/panel.py score                # score every stored set -> the JSON the book quotes
    python benchmarks/panel.py list                 # the rows and whether they are stored
    python benchmarks/panel.py table                # the ablation page's two tables, from the JSON
    python benchmarks/panel.py figure               # the paper rows side by side -> book/figures/

`make` runs the sampling command for a row (100 images per class, seed 0, resumable: run it again
after a stop) in runs/panel/<row>/ and stores the images as uint8 with their targets in
benchmarks/results/samples/<row>.npz, with the cost the command measured. Anyone can re-score
those files. `score` compares every stored set with the fixed real reference (test images
5000-9999) in the features of every judge of cag_lib.panel: the validation judge (the only one
looked at when choosing a recipe) and the test judges, and writes
benchmarks/results/panel_fmnist.json.
"""
from __future__ import annotations

import json
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cag_lib import bench
from cag_lib.files import read_or_explain
from cag_lib.generate import GenerateConfig, generate, mean_reconstruction, per_image_starts
from cag_lib.lucent_baseline import STEPS as LUCENT_STEPS
from cag_lib.lucent_baseline import lucent_images
from cag_lib.panel import (
    TEST_JUDGES,
    ablation_table,
    classification_accuracy_score,
    load_judges,
    load_sample_set,
    minus_one_table,
    real_row,
    reference_features,
    reference_images,
    score_set,
    set_slug,
    source_inception_score,
)
from cag_lib.recipes import parse_sets, recipe, shown_images
from cag_lib.sample import cag_passes
from cag_lib.shards import to_uint8
from cag_lib.zoo import load_bundle

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "benchmarks" / "results" / "samples"
JSON = ROOT / "benchmarks" / "results" / "panel_fmnist.json"
RUNS = ROOT / "runs" / "panel"
COST = ROOT / "benchmarks" / "results" / "panel_cost_fmnist.json"

# row -> (how it is made, the sampling command's arguments, which array is the picture)
ROWS = {
    "real": ("real", [], None),
    "g(real)": ("g(real)", [], None),
    "g(real), 2 x 2-patch MAE": ("g(real)", ["--bundle", "fmnist-mae-p2"], None),
    "g(real), one mask": ("g(real)", ["--set", "final_masks=1"], None),
    **{f"g(real), mask ratio {r}": ("g(real)", ["--set", f"mask_ratio={r}"], None) for r in ("0.5", "0.25")},
    "CaG full, 250 steps, g(x)": ("sample", ["--recipe", "CaG full"], "images"),
    "CaG full, 250 steps, x": ("sample", ["--recipe", "CaG full"], "inputs"),
    "CaG full, 100 steps, g(x)": ("sample", ["--recipe", "CaG full", "--set", "steps=100"], "images"),
    "CaG full, 1000 steps, g(x)": ("sample", ["--recipe", "CaG full", "--set", "steps=1000"], "images"),
    # the same recipe with the models under bf16 autocast: does the faster path move the judges?
    "CaG full, 250 steps, g(x), bf16": ("sample", ["--recipe", "CaG full", "--set", "autocast=bf16"], "images"),
    # the full recipe minus one part, each at N = 1,000 (bf16, as the row above: the faster path)
    **{f"{name}, bf16": ("sample", ["--recipe", name, "--set", "autocast=bf16"], "images")
       for name in ("full - MAE", "full - progressive", "full - diversity", "full - distribution",
                    "full - ensemble")},
    "full - blur, bf16": ("sample", ["--recipe", "full - blur", "--set", "autocast=bf16"], "images"),
    # CaG as the paper writes it (x shown), the same run shown as g(x), and each of the book's
    # departures from the paper as one change (bf16, as the full-minus-one rows)
    "CaG (paper), x, bf16": ("sample", ["--recipe", "CaG (paper)", "--set", "autocast=bf16"], "inputs"),
    "CaG (paper), g(x), bf16": ("sample", ["--recipe", "CaG (paper)", "--set", "autocast=bf16"], "images"),
    **{f"{name}, x, bf16": ("sample", ["--recipe", name, "--set", "autocast=bf16"], "inputs")
       for name in ("paper + cosine eq. 4", "paper + averaged eq. 6", "paper + blur")},
    "classic (every prior, no MAE)": ("sample", ["--recipe", "classic: ens+prog+blur+jitter+TV"], "images"),
    # the levers that might close the realism gap (book/gap.md; settings chosen by benchmarks/levers.py on
    # the validation judge), and the rivals the paper names: bf16 like the minus-one rows where CaG runs
    "CaG full, robust sources, g(x), bf16": ("sample", ["--bundle", "fmnist-robust", "--recipe", "CaG full", "--set",
                                                       "autocast=bf16"], "images"),
    "CaG full, 2 x 2-patch MAE, g(x), bf16": ("sample", ["--bundle", "fmnist-mae-p2", "--recipe", "CaG full",
                                                        "--set", "autocast=bf16"], "images"),
    # the paper gives no mask ratio (the book: the MAE's training ratio, 0.75); the validation judge chose 0.5
    "CaG full, mask ratio 0.5, g(x), bf16": ("sample", ["--recipe", "CaG full", "--set", "mask_ratio=0.5",
                                                       "autocast=bf16"], "images"),
    # the levers chosen one at a time, together: the validation judge's choice among the combinations is
    # robust sources, class-Gaussian start, mask ratio 0.5 and the BatchNorm prior (so its batches mix)
    "CaG, levers together, g(x), bf16": ("mixed", ["--bundle", "fmnist-robust", "--recipe", "CaG + BN prior",
                                                   "--set", "start=class gaussian", "mask_ratio=0.5",
                                                   "autocast=bf16"], None),
    # the BatchNorm prior matches a batch to statistics over all classes: its batches mix the classes
    "CaG + BN prior, g(x), bf16": ("mixed", ["--recipe", "CaG + BN prior", "--set", "autocast=bf16"], None),
    "CaG, class-Gaussian start, g(x), bf16": ("sample", ["--recipe", "CaG, class-Gaussian start", "--set",
                                                        "autocast=bf16"], "images"),
    "Santurkar et al. (robust PGD)": ("sample", ["--bundle", "fmnist-robust", "--recipe",
                                                "Santurkar et al. (robust PGD)"], "images"),
    "DeepInversion": ("mixed", ["--recipe", "DeepInversion"], None),
    # the control for every row that starts from it: the class-Gaussian seeds alone, no classifier
    "class-Gaussian seeds alone": ("seeds", [], None),
    "eq. 1": ("sample", ["--recipe", "eq1"], "images"),
    # Lucent's render_vis defaults (torch-lucent) on the ResNet source, adapted to 32x32 grey
    "Lucent (standard recipe)": ("lucent", [], None),
    "MALA (MAE+ens+prog)": ("sample", ["--recipe", "MALA (MAE+ens+prog)"], "images"),
    "DDPM, 1000 steps": ("sample", ["--recipe", "DDPM"], "images"),
    "DDIM, 50 steps": ("sample", ["--recipe", "DDIM-50"], "images"),
    "DDIM, 25 steps": ("sample", ["--recipe", "DDIM-25"], "images"),
    "DDIM, 10 steps": ("sample", ["--recipe", "DDIM-10"], "images"),
    "GAN": ("sample", ["--recipe", "GAN"], "images"),
}
PER_CLASS = 100


def row_bundle(args: list) -> str:
    """The bundle a row's sampling arguments name (fmnist unless --bundle says otherwise)."""
    return args[args.index("--bundle") + 1] if "--bundle" in args else "fmnist"


def bundle_args(args: list) -> list:
    """A row's sampling arguments, with --bundle fmnist unless the row names its own bundle."""
    return args if "--bundle" in args else ["--bundle", row_bundle(args), *args]


def run_folder(row: str) -> Path:
    """Rows that differ only in the array shown (g(x) or x) share one run."""
    args = ROWS[row][1]
    return RUNS / set_slug(" ".join(args) or row)


def make(row: str, threads: int = 1, procs: int = 2) -> None:
    """Generate one row and store it (uint8 images, targets, cost) under benchmarks/results/samples/.
    The cost is the sampling command's: seconds of one process per image, with `threads` threads
    (procs processes side by side, torchrun)."""
    how, args, key = ROWS[row]
    meta = {"row": row, "how": how, "per_class": PER_CLASS}
    if how == "lucent":
        x, y, meta = lucent_row(threads, meta)
    elif how == "mixed":
        x, y, meta = mixed_row(row, threads * procs, meta)
    elif how == "seeds":   # image i of class c: a draw of class c's Gaussian at 32 x 32 with its own seed i
        y = torch.arange(10).repeat_interleave(PER_CLASS)
        start = GenerateConfig(start="class gaussian", resolutions=(32,))
        x = per_image_starts(load_bundle("fmnist"), start, y, range(len(y)))
    elif how == "real":
        x, y = real_row("fmnist", PER_CLASS)
    elif how == "g(real)":   # the real row through the row's bundle's MAE, shown as CaG shows its pictures
        x, y = real_row("fmnist", PER_CLASS)
        cfg = recipe("CaG full", **set_changes(args))   # mask ratio 0.75 and 4 masks unless the row sets them
        x = mean_reconstruction(load_bundle(row_bundle(args)).mae, x, cfg.mask_ratio, False,
                                n_masks=cfg.final_masks, seed=0)
    else:
        out = run_folder(row)
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}"]
        cmd = ["-m", "cag_lib.sample", *bundle_args(args), "--per-class", str(PER_CLASS),
               "--threads", str(threads), "--out", str(out)]
        subprocess.run((launch if procs > 1 else [sys.executable]) + cmd, check=True)
        with np.load(out / "samples.npz") as s:
            images, targets = s[key], s["targets"]          # uint8 already: stored as the command wrote them
        m = json.loads((out / "metrics.json").read_text())
        shown_cmd = (["torchrun", "--standalone", f"--nproc-per-node={procs}"] if procs > 1 else ["python"]) + cmd
        meta.update(command=shlex.join(shown_cmd[:-2]), shown=key, processes=procs,
                    seconds_per_image=m["seconds_per_image"], evaluations_per_image=m["evaluations_per_image"],
                    threads=threads, cpu=platform.processor() or platform.machine())
    if how != "sample":
        images, targets = to_uint8(x), y.numpy()
        meta.setdefault("command", f"python benchmarks/panel.py make '{row}'")   # every row made here, not sampled
    SAMPLES.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(SAMPLES / f"{set_slug(row)}.npz", images=images, targets=targets, meta=np.array(json.dumps(meta)))
    print(f"stored {row}: {images.shape} -> {SAMPLES / (set_slug(row) + '.npz')}", flush=True)


def set_changes(args: list) -> dict:
    """The GenerateConfig changes of a row's sampling-style arguments (--set k=v ...)."""
    return parse_sets(args[args.index("--set") + 1:]) if "--set" in args else {}


def mixed_config(args: list):
    """A mixed row's bundle and GenerateConfig, from its sampling-style arguments."""
    recipe_name = args[args.index("--recipe") + 1]
    return row_bundle(args), recipe_name, set_changes(args)


def mixed_batch(args: list, targets: list, seed: int):
    """One batch of a mixed row's recipe for `targets` (classes mixed): (the Result, its bundle)."""
    bundle_name, name, changes = mixed_config(args)
    bundle = load_bundle(bundle_name)
    return generate(bundle, targets, recipe(name, seed=seed, progress=False, **changes)), bundle


def mixed_row(row: str, threads: int, meta: dict, per_batch: int = 10, classes: int = 10):
    """A row whose batches hold every class (per_batch of each, seed = the batch's index), made with
    generate in one process; each batch is kept under runs/panel/<row>/ so a stopped run continues."""
    torch.set_num_threads(threads)
    folder = run_folder(row)
    folder.mkdir(parents=True, exist_ok=True)
    xs, ys, seconds = [], [], 0.0
    for b in range(PER_CLASS // per_batch):
        path = folder / f"batch{b}.pt"
        if not path.exists():
            res, _ = mixed_batch(ROWS[row][1], list(range(classes)) * per_batch, seed=b)
            torch.save({"x": shown_images(res)[0], "y": res.targets, "seconds": res.seconds}, path)
        done = read_or_explain(path, torch.load, "a stored batch of this row", "delete it and make the row again")
        xs.append(done["x"]), ys.append(done["y"])
        seconds += done["seconds"]
        print(f"{row}: batch {b} done", flush=True)
    n = PER_CLASS * classes
    meta.update(shown="images", processes=1, threads=threads, seconds_per_image=seconds / n,
                cpu=platform.processor() or platform.machine(),
                batches=f"{PER_CLASS // per_batch} batches of {per_batch * classes}, every class in each")
    return torch.cat(xs), torch.cat(ys), meta


def lucent_row(threads: int, meta: dict):
    """Lucent's standard recipe on the ResNet source: 100 images per class, one batch per class
    (seed = the class), with its cost: seconds and network evaluations per image, one process."""
    bundle = load_bundle("fmnist")
    torch.set_num_threads(threads)
    xs, ys, t0 = [], [], time.perf_counter()
    for c in range(len(bundle.class_names)):
        y = torch.full((PER_CLASS,), c)
        xs.append(lucent_images(bundle.classifiers[0], y, seed=c))
        ys.append(y)
        print(f"Lucent: class {c} done, {time.perf_counter() - t0:.0f} s", flush=True)
    n = PER_CLASS * len(bundle.class_names)
    meta.update(shown="images", processes=1, threads=threads, seconds_per_image=(time.perf_counter() - t0) / n,
                evaluations_per_image=LUCENT_STEPS, cpu=platform.processor() or platform.machine())
    return torch.cat(xs), torch.cat(ys), meta


def measure_cost(rows, per_image: int = 25) -> dict:
    """Seconds per image of each generated row on a quiet machine: one process, one thread, one
    shard of `per_image` images of one class (Sneaker), nothing else running. The stored sets were
    made two processes side by side while other work ran, so their own timings are noisier."""
    report = {}
    for row in rows:
        how, args, _ = ROWS[row]
        if how == "lucent":
            torch.set_num_threads(1)
            t0 = time.perf_counter()
            lucent_images(load_bundle("fmnist").classifiers[0], torch.full((per_image,), 7), seed=7)
            report[row] = {"seconds_per_image": (time.perf_counter() - t0) / per_image,
                           "evaluations_per_image": LUCENT_STEPS}
            print(f"{row:34s} {report[row]['seconds_per_image']:.3f} s per image", flush=True)
        if how == "mixed":   # one batch of per_image images holding every class in turn
            torch.set_num_threads(1)
            res, bundle = mixed_batch(args, [i % 10 for i in range(per_image)], seed=7)
            report[row] = {"seconds_per_image": res.seconds / per_image,
                           "evaluations_per_image": cag_passes(res.config, len(bundle.classifiers))}
            print(f"{row:34s} {report[row]['seconds_per_image']:.3f} s per image", flush=True)
        if how != "sample" or row.endswith(", x"):
            continue
        out = RUNS / "cost" / set_slug(row)
        cmd = [sys.executable, "-m", "cag_lib.sample", *bundle_args(args), "--classes", "Sneaker",
               "--per-class", str(per_image), "--shard-size", str(per_image), "--threads", "1", "--no-resume",
               "--out", str(out)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        m = json.loads((out / "metrics.json").read_text())
        report[row] = {k: m[k] for k in ("seconds_per_image", "evaluations_per_image")}
        print(f"{row:34s} {m['seconds_per_image']:.3f} s per image, {m['evaluations_per_image']} evaluations",
              flush=True)
    return report


def stored_rows() -> list[str]:
    return [r for r in ROWS if (SAMPLES / f"{set_slug(r)}.npz").exists()]


def score(rows=None) -> dict:
    """Every stored row (or `rows`), every judge: the report the book quotes."""
    bundle = load_bundle("fmnist")
    judges = load_judges(bundle)
    refs = reference_features(judges)
    costs = json.loads(COST.read_text())["rows"] if COST.exists() else {}
    report = {"reference": "Fashion-MNIST test images 5000-9999 (5000)", "validation_judge": bundle.spec.judge,
              "test_judges": list(TEST_JUDGES["fmnist"]), "rows": {}}
    test_x, test_y = reference_images("fmnist")     # CAS is tested on the reference: no row trains on it
    for row in rows or stored_rows():
        x, y, meta = load_sample_set(row, SAMPLES)
        scores = score_set(judges, x, y, refs)
        scores["source_is"] = source_inception_score(bundle, x)
        scores["cas"] = classification_accuracy_score(x, y.long(), test_x, test_y.long())
        cost = costs.get(row.replace(", x", ", g(x)"), {})
        report["rows"][row] = {"n": len(y), "cost": {**cost, "threads": 1} if cost else {},
                               "while_stored": {k: meta[k] for k in ("seconds_per_image", "threads", "processes")
                                                if k in meta},
                               "command": meta.get("command", meta["how"]), **scores}
        print(f"{row:34s} validation acc {scores['validation']['acc']:.3f}  test judges acc "
              f"{scores['test_mean']['acc']:.3f} [{scores['test_mean']['acc_min']:.3f}, "
              f"{scores['test_mean']['acc_max']:.3f}]  FD {scores['test_mean']['fd']:.2f}  CAS {scores['cas']:.3f}",
              flush=True)
    return report


def rows_picture(rows, path: Path) -> None:
    """One row of pictures per (label, stored row): the first two stored images of every class, from
    the same sets the panel scored."""
    from cag_lib.viz import rows_figure
    pictures = {}
    for label, row in rows:
        if not (SAMPLES / f"{set_slug(row)}.npz").exists():
            continue
        x, y, _ = load_sample_set(row, SAMPLES)
        pictures[label] = torch.cat([x[y == c][:2] for c in range(10)])
    rows_figure(pictures, path, scale=1.2)
    print(f"wrote {path}")


def main(argv=None):
    p = bench.parser(__doc__, threads=1)
    p.add_argument("what", choices=["make", "cost", "score", "list", "table", "figure"])
    p.add_argument("rows", nargs="*", help="rows to make (names from ROWS)")
    p.add_argument("--procs", type=int, default=2, help="make: sampling processes side by side (torchrun)")
    p.add_argument("--json", type=Path, default=JSON)
    a = p.parse_args(argv)
    bench.set_threads(a.threads if a.what == "make" else max(a.threads, 2))
    unknown = [r for r in a.rows if r not in ROWS]
    if unknown:
        p.error(f"unknown rows {unknown}; valid: {list(ROWS)}")
    if a.what == "table":        # the markdown the ablation page pastes: two tables
        report = json.loads(a.json.read_text())
        print(ablation_table(report) + "\n\n" + minus_one_table(report))
    elif a.what == "figure":   # the paper's recipe and each departure; the levers and the rivals
        from cag_lib.gap import GAP_ROWS
        from cag_lib.panel import PAPER_ROWS
        rows_picture(PAPER_ROWS, ROOT / "book" / "figures" / "paper_rows.png")
        rows_picture([(label, row) for label, row, _ in GAP_ROWS], ROOT / "book" / "figures" / "gap_rows.png")
    elif a.what == "list":
        for r in ROWS:
            print(("stored  " if r in stored_rows() else "missing ") + r)
    elif a.what == "make":
        for r in a.rows:
            make(r, a.threads, a.procs)
    elif a.what == "cost":
        torch.set_num_threads(1)
        report = {"what": "seconds per image, one process with one thread, 25 images of one class in one "
                          "batch, nothing else running", "rows": measure_cost(a.rows or list(ROWS))}
        bench.write_report(COST, bench.merged_rows(COST, report) if a.rows else report)
        print(f"wrote {COST}")
    else:
        t0 = time.time()
        report = score(a.rows or None)
        report.update(seconds=round(time.time() - t0, 1))
        bench.write_report(a.json, bench.merged_rows(a.json, report) if a.rows else report)   # others kept
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
