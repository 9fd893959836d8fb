"""A sealed panel of judges, and the numbers that compare generators.

A generator's own classifiers flatter it, and so does a judge that was watched while the recipe
was chosen. Fashion-MNIST therefore has four judges, none of them used for generation:

- the **validation judge** (the bundle's ConvNeXt): the only judge looked at while choosing a
  recipe or a setting;
- three **test judges** (`TEST_JUDGES`): other architecture families (a CNN without normalisation
  layers, an MLP-Mixer that sees the images resized to 28x28, a ResNet-D), other augmentation and
  seeds, trained separately and only ever reported.

Every sample set is compared with one fixed real reference, the last 5,000 test images, in each
judge's penultimate features scaled so that the reference has variance 1 per dimension on average
(FD and KID then have the same units for every judge). The "real" row of a comparison is 100 test
images per class from the first 5,000, so its distances are the real-vs-real floor at N = 1,000.

    >>> judges = load_judges(load_bundle("fmnist"))
    >>> rows = score_set(judges, images, targets, reference_features(judges))
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from . import zoo
from .data import load_world
from .files import read_json, read_or_explain
from .metrics import (frechet_distance, gaussian_stats, inception_score, intra_class_diversity,
                      kid_from_features, knn_radii, precision_recall)
from .models import predict

TEST_JUDGES = {"fmnist": ("judge_cnn", "judge_resnet_d", "judge_mixer")}
VALIDATION = "validation"          # the key of the bundle's own judge in load_judges' dict
REFERENCE = (5000, 10000)          # test images [5000, 10000): the fixed real reference
REAL_ROW = (0, 5000)               # the real row is drawn from the first 5000 test images


def results_dir() -> Path:
    """benchmarks/results of the repository this cag_lib is installed from (an editable install or a
    clone); the stored sample sets and the panel's JSON live there."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    if not (path / "samples").exists():
        raise FileNotFoundError(f"no stored sample sets in {path / 'samples'}: clone the repository "
                                "and install it with `pip install -e .` to read them")
    return path


RESTORE = "restore it (in a clone: git checkout benchmarks/results) or write it again: python benchmarks/panel.py"


def set_slug(row: str) -> str:
    """A stored sample set's file name for a row name: "CaG full, 250 steps, g(x)" -> cag_full_250_steps_g_x."""
    return "".join(c if c.isalnum() else "_" for c in row).strip("_").lower()


def load_sample_set(row: str, folder: Path | None = None) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(images (N, C, H, W) in [0, 1], targets (N,), how they were made) of a stored sample set."""
    path = (folder or results_dir() / "samples") / f"{set_slug(row)}.npz"
    mend = (f"restore it (in a clone: git checkout benchmarks/results/samples/{path.name}) or make it "
            f"again: python benchmarks/panel.py make {row!r}")
    def read(p):   # a missing array or unreadable metadata is a damaged file too
        with np.load(p, allow_pickle=False) as s:
            return (torch.from_numpy(s["images"]).float() / 255, torch.from_numpy(s["targets"]),
                    json.loads(str(s["meta"])))
    return read_or_explain(path, read, "a stored sample set", mend)


def load_judges(bundle, device="cpu") -> dict:
    """{"validation": the bundle's judge, test judge name: Classifier, ...}; a clear error without them."""
    names = TEST_JUDGES.get(bundle.name)
    if names is None:
        raise ValueError(f"the bundle {bundle.name!r} has no test judges; the panel exists for "
                         f"{', '.join(TEST_JUDGES)}")
    return {VALIDATION: bundle.judge, **{n: zoo.load_model(bundle.name, n, device) for n in names}}


def reference_images(world: str = "fmnist") -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_world(world, "test")
    return x[REFERENCE[0]:REFERENCE[1]], y[REFERENCE[0]:REFERENCE[1]]


def real_row(world: str = "fmnist", per_class: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """The first per_class test images of every class among the first 5000, class by class."""
    x, y = load_world(world, "test")
    x, y = x[REAL_ROW[0]:REAL_ROW[1]], y[REAL_ROW[0]:REAL_ROW[1]]
    idx = torch.cat([(y == c).nonzero()[:per_class, 0] for c in y.unique()])
    if len(idx) < per_class * len(y.unique()):
        raise ValueError(f"fewer than {per_class} test images of some class among the first {REAL_ROW[1]}")
    return x[idx], y[idx]


@torch.no_grad()
def logits_and_features(judge, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K) logits and (N, D) penultimate features in one pass per batch."""
    outs = [judge(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    return torch.cat([o.logits.float() for o in outs]), torch.cat([o.features.float() for o in outs])


def reference_features(judges: dict, world: str = "fmnist") -> dict:
    """Each judge's view of the real reference, computed once: {judge: {"features": (M, D),
    "stats": (mean, covariance), "radii": (M,) k = 3 nearest-neighbour radii, "scale"}}. A judge's
    features are divided by `scale`, the root of the reference's mean variance per dimension, so
    that FD, KID and diversity have the same units for every judge (a CNN without normalisation
    layers has features a hundred times larger than a ConvNeXt's)."""
    x, _ = reference_images(world)
    refs = {}
    for name, j in judges.items():
        f = logits_and_features(j, x)[1]
        scale = f.var(0).mean().sqrt()        # judges' features differ in scale by orders of magnitude
        f = f / scale
        refs[name] = {"features": f, "stats": gaussian_stats(f), "radii": knn_radii(f, 3), "scale": scale}
    return refs


def judge_row(judge, images: torch.Tensor, targets: torch.Tensor, ref: dict) -> dict:
    """One judge's numbers for one sample set against its view of the reference (reference_features)."""
    logits, f = logits_and_features(judge, images)
    f = f / ref["scale"]                      # the reference's units: mean variance 1 per dimension
    kid, kid_std = kid_from_features(f, ref["features"])
    precision, recall = precision_recall(f, ref["features"], k=3, real_radii=ref["radii"])
    return {"acc": float((logits.argmax(1) == targets).float().mean()),
            "conf": float(logits.softmax(-1).gather(1, targets[:, None]).mean()),
            "fd": frechet_distance(*gaussian_stats(f), *ref["stats"]),
            "kid": kid, "kid_std": kid_std, "precision": precision, "recall": recall,
            "is": inception_score(logits), "diversity": intra_class_diversity(f, targets)}


def score_set(judges: dict, images: torch.Tensor, targets: torch.Tensor, refs: dict) -> dict:
    """{judge: judge_row} for every judge of the panel, and the test judges' mean and spread."""
    rows = {name: judge_row(j, images, targets, refs[name]) for name, j in judges.items()}
    return {**rows, "test_mean": panel_summary(rows)}


def panel_summary(rows: dict) -> dict:
    """Mean, min and max of every number over the test judges (the validation judge left out)."""
    test = [r for name, r in rows.items() if name not in (VALIDATION, "test_mean")]
    out = {}
    for k in test[0]:
        vals = torch.tensor([r[k] for r in test], dtype=torch.float64)
        out[k], out[k + "_min"], out[k + "_max"] = float(vals.mean()), float(vals.min()), float(vals.max())
    return out


def source_inception_score(bundle, images: torch.Tensor) -> float:
    """The Inception-Score-like number of the bundle's first source classifier: what a generator's own
    classifier thinks of its images (compare with the test judges' "is")."""
    return inception_score(predict(bundle.classifiers[0], images))


ABLATION_ROWS = ("real", "g(real)", "CaG full, 250 steps, g(x)", "CaG full, 250 steps, x",
                 "classic (every prior, no MAE)", "eq. 1")


def _judged(r: dict) -> tuple[str, str, str]:
    """A stored row's cells that both ablation tables show: the validation judge's accuracy, the
    test judges' mean accuracy (range) and mean FD (range)."""
    t = r["test_mean"]
    return (f"{r['validation']['acc']:.3f}", f"{t['acc']:.3f} ({t['acc_min']:.3f}–{t['acc_max']:.3f})",
            f"{t['fd']:.1f} ({t['fd_min']:.1f}–{t['fd_max']:.1f})")


def ablation_table(report: dict, rows=ABLATION_ROWS) -> str:
    """The ablation page's panel table (rows of benchmarks/results/panel_fmnist.json): validation
    judge, then the test judges' mean and range."""
    lines = ["| method (N = 1,000) | validation judge acc | test judges acc (range) | test judges FD (range) "
             "| precision | recall |", "|---|---|---|---|---|---|"]
    for name in rows:
        r = report["rows"].get(name)
        if r is None:
            continue
        val, acc, fd = _judged(r)
        t = r["test_mean"]
        lines.append(f"| {name} | {val} | {acc} | {fd} | {t['precision']:.2f} | {t['recall']:.2f} |")
    return "\n".join(lines)


MINUS_ONE = ("full - MAE", "full - progressive", "full - diversity", "full - distribution", "full - ensemble")


def minus_one_table(report: dict) -> str:
    """The ablation page's full-minus-one table at N = 1,000 (bf16 rows): each part's removal, with
    the change of the test judges' mean accuracy against the full recipe, their features' diversity
    and recall (real test images first, for reference)."""
    rows = report["rows"]
    full = rows["CaG full, 250 steps, g(x), bf16"]
    lines = ["| recipe (N = 1,000, bf16) | validation judge acc | test judges acc (range) | change of test acc "
             "| test judges FD (range) | diversity | recall |", "|---|---|---|---|---|---|---|"]
    named = [("real test images", rows["real"]), ("CaG full", full),
             *[(n, rows.get(f"{n}, bf16")) for n in MINUS_ONE]]
    for name, r in named:
        if r is None:
            continue
        val, acc, fd = _judged(r)
        t = r["test_mean"]
        change = "" if name.startswith("real") else f"{t['acc'] - full['test_mean']['acc']:+.3f}"
        lines.append(f"| {name} | {val} | {acc} | {change} | {fd} | {t['diversity']:.2f} | {t['recall']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":  # the ablation page's two tables: python -m cag_lib.panel ablation|minus_one
    import sys
    stored = read_json(results_dir() / "panel_fmnist.json", RESTORE)
    print({"ablation": ablation_table, "minus_one": minus_one_table}[sys.argv[1]](stored))
