"""A sealed panel of judges, and the numbers that compare generators.

A generator's own classifiers flatter it, and so does a judge that was watched while the recipe
was chosen. Fashion-MNIST therefore has seven judges, none of them used for generation:

- the **validation judge** (the bundle's ConvNeXt): the only judge looked at while choosing a
  recipe or a setting;
- six **test judges** (`TEST_JUDGES`): other architecture families (a CNN without normalisation
  layers, an MLP-Mixer that sees the images resized to 28x28, a ResNet-D), other augmentation
  (none; light; strong; "degrade": blur, contrast, noise) and seeds, trained separately and only
  ever reported; and one that is no network (`NearestNeighbourJudge`: ten nearest training images
  vote in 64 principal components of pixels).

The coloured-shapes world has four test judges of shape as well (`TEST_JUDGES["shapes"]`; no
panel of sample sets: benchmarks/shapes_conditional.py reads its pictures with them), and
`judge_card` measures how any judge names real images that are blurred or noisy.

Every Fashion-MNIST sample set is compared with one fixed real reference, the last 5,000 test images, in each
judge's penultimate features scaled so that the reference has variance 1 per dimension on average
(FD and KID then have the same units for every judge). The "real" row of a comparison is 100 test
images per class from the first 5,000, so its distances are the real-vs-real floor at N = 1,000.

    >>> judges = load_judges(load_bundle("fmnist"))
    >>> rows = score_set(judges, images, targets, reference_features(judges))
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from . import zoo
from .claims import difference_se
from .data import load_world
from .files import read_json, read_or_explain
from .metrics import (frechet_distance, gaussian_stats, inception_score, intra_class_diversity,
                      kid_from_features, knn_radii, precision_recall)
from .models import ClassifierOutput, accuracy, predict

TEST_JUDGES = {"fmnist": ("judge_cnn", "judge_resnet_d", "judge_mixer", "judge_cnn_plain", "judge_cnn_degrade",
                          "knn_pixels"),
               # the shapes world's judges of shape besides its ConvNeXt (benchmarks/shapes_conditional.py)
               "shapes": ("judge_cnn", "judge_resnet_d", "judge_mixer", "judge_cnn_degrade")}
NOT_TRAINED = {"knn_pixels"}       # judges that are not networks: a rule on the training images
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


# real test images as a generator's pictures often are: blurred, noisy (the noise seeded)
CORRUPTIONS = {"clean": lambda x, g: x,
               "blurred (sigma 2 px)": lambda x, g: TF.gaussian_blur(x, kernel_size=13, sigma=2.0),
               "noisy (sigma 0.15)": lambda x, g: (x + 0.15 * torch.randn(x.shape, generator=g)).clamp(0, 1)}


def judge_card(judges: dict, world: str, n: int = 1000) -> dict:
    """{judge: {corruption: accuracy}} on the first n real test images of a world, clean, blurred and
    noisy: a judge that cannot name a blurred or noisy real image says little of pictures made by
    optimisation, which are often both."""
    x, y = load_world(world, "test", n=n)
    seen = {c: f(x, torch.Generator().manual_seed(0)) for c, f in CORRUPTIONS.items()}   # the same for every judge
    return {name: {c: accuracy(j, xc, y) for c, xc in seen.items()} for name, j in judges.items()}


def load_judges(bundle, device="cpu") -> dict:
    """{"validation": the bundle's judge, test judge name: Classifier, ...}; a clear error without them."""
    names = TEST_JUDGES.get(bundle.name)
    if names is None:
        raise ValueError(f"the bundle {bundle.name!r} has no test judges; bundles with test judges: "
                         f"{', '.join(TEST_JUDGES)}")
    return {VALIDATION: bundle.judge, **{n: NearestNeighbourJudge.fit(bundle.spec.world).to(device)
                                         if n in NOT_TRAINED else zoo.load_model(bundle.name, n, device) for n in names}}


class NearestNeighbourJudge(torch.nn.Module):
    """A judge that is no network: the k = 10 nearest training images vote, in the space of the
    training images' first 64 principal components of pixels. features: those 64 coordinates;
    logits: log of the vote shares (smoothed by 0.1 vote per class). Nothing in it was trained for
    this panel or shaped by a loss, so it cannot share a network's taste for prototypes."""

    name = "knn_pixels"

    def __init__(self, mean: torch.Tensor, basis: torch.Tensor, bank: torch.Tensor, labels: torch.Tensor,
                 num_classes: int, k: int = 10):
        super().__init__()
        self.register_buffer("mean", mean)          # (P,) pixels
        self.register_buffer("basis", basis)        # (P, 64)
        self.register_buffer("bank", bank)          # (N, 64) training images' coordinates
        self.register_buffer("labels", labels)      # (N,)
        self.num_classes, self.k = num_classes, k

    @classmethod
    def fit(cls, world: str, dims: int = 64, k: int = 10) -> "NearestNeighbourJudge":
        x, y = load_world(world, "train")
        flat = x.flatten(1).double()
        mean = flat.mean(0)
        centred = flat - mean
        _, vecs = torch.linalg.eigh(centred.T @ centred / len(flat))          # ascending eigenvalues
        basis = vecs[:, -dims:].flip(1)
        basis = basis * torch.where(basis.sum(0) < 0, -1.0, 1.0).double()      # one sign per axis
        return cls(mean.float(), basis.float(), (centred @ basis).float(), y.long(), int(y.max()) + 1, k)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> ClassifierOutput:
        f = (x.flatten(1).float() - self.mean) @ self.basis                     # (B, 64)
        nearest = torch.cdist(f, self.bank).topk(self.k, largest=False).indices   # (B, k)
        votes = F.one_hot(self.labels[nearest], self.num_classes).sum(1).float()  # (B, K)
        return ClassifierOutput(torch.log((votes + 0.1) / (self.k + 0.1 * self.num_classes)), f)


class _CASNet(torch.nn.Module):
    """The one fixed small classifier of the Classification Accuracy Score: three 3x3 convolutions
    (32, 64, 64 channels) with batch norm and max-pooling, global average pooling, a linear layer."""

    def __init__(self, in_chans: int, num_classes: int):
        super().__init__()
        c = torch.nn
        block = lambda i, o: [c.Conv2d(i, o, 3, padding=1, bias=False), c.BatchNorm2d(o), c.ReLU()]  # noqa: E731
        self.net = c.Sequential(*block(in_chans, 32), c.MaxPool2d(2), *block(32, 64), c.MaxPool2d(2),
                                *block(64, 64), c.AdaptiveAvgPool2d(1), c.Flatten(), c.Linear(64, num_classes))

    def forward(self, x):
        return self.net(x)


def classification_accuracy_score(images: torch.Tensor, targets: torch.Tensor, test_images: torch.Tensor,
                                  test_labels: torch.Tensor, epochs: int = 15, seed: int = 0) -> float:
    """CAS (Ravuri & Vinyals 2019): train the fixed small classifier (_CASNet: Adam, one-cycle learning rate up to 2e-3,
    batches of 50, `epochs` epochs, random horizontal flips, a fixed seed) on the generated images and their
    target classes alone, and return its accuracy on real test images. It rewards samples that carry
    their class *and* cover it: a set of one prototype per class teaches a poor classifier. The
    same training on as many real images is the reference."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _CASNet(images.shape[1], int(test_labels.max()) + 1)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    batches = -(-len(images) // 50)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * batches)
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=g)
        for i in range(0, len(images), 50):
            idx = order[i:i + 50]
            x = images[idx]
            flip = torch.rand(len(idx), generator=g) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            loss = F.cross_entropy(net(x), targets[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(test_images[i:i + 500]).argmax(1) for i in range(0, len(test_images), 500)])
    return float((pred == test_labels).float().mean())


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


def reference_features(judges: dict, world: str = "fmnist", classes=None) -> dict:
    """Each judge's view of the real reference, computed once: {judge: {"features": (M, D),
    "stats": (mean, covariance), "radii": (M,) k = 3 nearest-neighbour radii, "scale"}}. A judge's
    features are divided by `scale`, the root of the reference's mean variance per dimension, so
    that FD, KID and diversity have the same units for every judge (a CNN without normalisation
    layers has features a hundred times larger than a ConvNeXt's). classes: only the reference
    images of these classes (for a sample set that covers only them; None: every class)."""
    x, y = reference_images(world)
    if classes is not None:
        x = x[torch.isin(y, torch.as_tensor(list(classes)))]
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
             "| precision | recall | CAS |", "|---|---|---|---|---|---|---|"]
    for name in rows:
        r = report["rows"].get(name)
        if r is None:
            continue
        val, acc, fd = _judged(r)
        t = r["test_mean"]
        lines.append(f"| {name} | {val} | {acc} | {fd} | {t['precision']:.2f} | {t['recall']:.2f} | {_cas(r)} |")
    return "\n".join(lines)


def _cas(r: dict) -> str:
    return f"{r['cas']:.3f}" if "cas" in r else ""


# the paper as written, then each of the book's departures from it as one change, then all of them
PAPER_ROWS = (("CaG (paper): x shown", "CaG (paper), x, bf16"),
              ("+ g(x) shown instead of x", "CaG (paper), g(x), bf16"),
              ("+ cosine eq. 4", "paper + cosine eq. 4, x, bf16"),
              ("+ averaged eq. 6", "paper + averaged eq. 6, x, bf16"),
              ("+ gradient blur", "paper + blur, x, bf16"),
              ("all four: CaG full, g(x)", "CaG full, 250 steps, g(x), bf16"))


def paper_table(report: dict) -> str:
    """The ablation page's paper table: CaG as the paper writes it and each departure of the book's
    recipe as one change (rows of benchmarks/results/panel_fmnist.json). Besides the test judges'
    mean and range, each change against the paper's row is given as its smallest and largest over
    the test judges: a change whose sign is the same at both ends holds for every judge."""
    rows, judges = report["rows"], list(report["test_judges"])
    paper = rows.get(PAPER_ROWS[0][1])
    lines = ["| recipe (N = 1,000, bf16) | validation judge acc | test judges acc (range) | change of acc, each "
             "test judge | test judges FD (range) | FD / paper's, each test judge | recall | CAS |",
             "|---|---|---|---|---|---|---|---|"]
    for label, name in PAPER_ROWS:
        r = rows.get(name)
        if r is None or paper is None:
            continue
        val, acc, fd = _judged(r)
        d_acc = [r[j]["acc"] - paper[j]["acc"] for j in judges]
        d_fd = [r[j]["fd"] / paper[j]["fd"] for j in judges]
        change = "" if r is paper else f"{min(d_acc):+.3f} to {max(d_acc):+.3f}"
        ratio = "" if r is paper else f"{min(d_fd):.2f} to {max(d_fd):.2f}"
        lines.append(f"| {label} | {val} | {acc} | {change} | {fd} | {ratio} | {r['test_mean']['recall']:.2f} "
                     f"| {_cas(r)} |")
    return "\n".join(lines)


def _every(values: list, positive: bool) -> str:
    """'every test judge' or 'k of n test judges': how many of the per-judge changes have the sign
    that most of them have (positive: that sign)."""
    agree = sum((v > 0) == positive for v in values)
    return "every test judge" if agree == len(values) else f"{agree} of {len(values)} test judges"


def change_verdict(report: dict, base: str, rows, base_label: str) -> str:
    """What each row (label, name) changes against the row `base`, in words, from the stored
    numbers: the direction most test judges see, how many of them see it, the range over judges,
    and CAS, which asks no judge."""
    stored, judges = report["rows"], list(report["test_judges"])
    ref = stored.get(base)
    if ref is None:
        return ""
    lines = []
    for label, name in rows:
        r = stored.get(name)
        if r is None:
            continue
        d_acc = [r[j]["acc"] - ref[j]["acc"] for j in judges]
        log_fd = [math.log(r[j]["fd"] / ref[j]["fd"]) for j in judges]
        up, far = (sum(v > 0 for v in d_acc) * 2 > len(judges)), (sum(v > 0 for v in log_fd) * 2 > len(judges))
        who_acc, who_fd = _every(d_acc, up), _every(log_fd, far)
        ratios = [math.exp(v) for v in log_fd]
        cas = f" CAS {r['cas']:.3f} against {ref['cas']:.3f}." if "cas" in r and "cas" in ref else ""
        noise = [2 * difference_se(r[j]["acc"], ref[j]["acc"], r.get("n", 1000), ref.get("n", 1000)) for j in judges]
        if all(abs(d) < e for d, e in zip(d_acc, noise)):   # within two standard errors for every judge
            recognised = (f"no test judge's accuracy moves by more than two standard errors of a difference at "
                          f"N = 1,000 ({min(d_acc):+.3f} to {max(d_acc):+.3f})")
        else:
            recognised = (f"{who_acc} recognise{'s' if who_acc.startswith('every') else ''} "
                          f"{'more' if up else 'fewer'} pictures than with {base_label} ({min(d_acc):+.3f} to "
                          f"{max(d_acc):+.3f})")
        lines.append(f"- **{label}**: {recognised}, and for {who_fd} the pictures are "
                     f"{'further from' if far else 'closer to'} the data (FD × {min(ratios):.2f} to × "
                     f"{max(ratios):.2f}).{cas}")
    return "\n".join(lines)


def paper_verdict(report: dict) -> str:
    """Each departure from the paper against the paper's recipe (change_verdict)."""
    return change_verdict(report, PAPER_ROWS[0][1], PAPER_ROWS[1:], "the paper's recipe")


def minus_one_verdict(report: dict) -> str:
    """Each part removed from the full recipe against the full recipe (change_verdict, bf16 rows)."""
    return change_verdict(report, "CaG full, 250 steps, g(x), bf16", [(n, f"{n}, bf16") for n in MINUS_ONE],
                          "the full recipe")


def judges_verdict(report: dict, cag: str = "CaG full, 250 steps, g(x)", paper: str = "CaG (paper), x, bf16",
                   reference: str = "DDPM, 1000 steps") -> str:
    """The verdict that no judge of the panel overturns, in words: the spread of each main row's
    accuracy over the test judges, the smallest FD multiple of the reference generator's, and CAS."""
    rows, judges = report["rows"], list(report["test_judges"])
    if any(n not in rows for n in (cag, reference, "real")):
        return ""

    def span(name):
        accs = [rows[name][j]["acc"] for j in judges]
        return min(accs), max(accs)

    def ratio(name):
        return min(rows[name][j]["fd"] / rows[reference][j]["fd"] for j in judges)
    (rl, rh), (dl, dh), (cl, ch) = span("real"), span(reference), span(cag)
    text = [f"- **Recognisable: it depends on the judge.** Over the six test judges, real test images are "
            f"recognised {rl:.3f} to {rh:.3f} of the time, the DDPM's samples {dl:.3f} to {dh:.3f}, and CaG's "
            f"pictures (full recipe, g(x)) {cl:.3f} to {ch:.3f}: a spread of {ch - cl:.2f} against the "
            f"DDPM's {dh - dl:.2f}. A claim that CaG is recognised as often as the DDPM, or more or less often, "
            f"holds for some judges and not for others."]
    if paper in rows:
        pl, ph = span(paper)
        text.append(f"  The paper's recipe, shown as x: {pl:.3f} to {ph:.3f}.")
    text.append(f"- **Realistic: no, for every judge.** In each judge's own features, CaG's FD is at least "
                f"{ratio(cag):.1f} times the DDPM's" + (f" (the paper's recipe: at least {ratio(paper):.1f} times)"
                                                        if paper in rows else "") + ".")
    if all("cas" in rows[n] for n in ("real", cag, reference)):
        text.append(f"- **Asked of no judge (CAS)**: a classifier trained on 1,000 real images reaches "
                    f"{rows['real']['cas']:.3f} on real test images; trained on the DDPM's samples "
                    f"{rows[reference]['cas']:.3f}, on CaG's {rows[cag]['cas']:.3f}"
                    + (f", on the paper recipe's {rows[paper]['cas']:.3f}" if "cas" in rows.get(paper, {}) else "")
                    + ".")
    return "\n".join(text)


# short column names for the judges' table (the zoo page describes each judge)
JUDGE_LABELS = {"judge_cnn": "CNN", "judge_resnet_d": "ResNet-D", "judge_mixer": "Mixer",
                "judge_cnn_plain": "CNN, no aug.", "judge_cnn_degrade": "CNN, degraded", "knn_pixels": "kNN pixels"}
JUDGED_ROWS = ("real", "g(real)", "DDPM, 1000 steps", "GAN", "CaG full, 250 steps, g(x)", "CaG (paper), x, bf16",
               "classic (every prior, no MAE)", "eq. 1")


def judges_table(report: dict, rows=JUDGED_ROWS, reference: str = "DDPM, 1000 steps") -> str:
    """Each test judge's accuracy on the key rows, their smallest and largest, and the FD as a
    multiple of the reference generator's FD in the same judge's features (the smallest multiple
    over the judges: a claim about it holds for every judge of the panel)."""
    judges = list(report["test_judges"])
    ref = report["rows"][reference]
    lines = ["| method | " + " | ".join(JUDGE_LABELS.get(j, j) for j in judges) + " | smallest | largest "
             "| FD ÷ DDPM's, smallest |", "|---|" + "---|" * (len(judges) + 3)]
    for name in rows:
        r = report["rows"].get(name)
        if r is None:
            continue
        accs = [r[j]["acc"] for j in judges]
        ratio = min(r[j]["fd"] / ref[j]["fd"] for j in judges)
        lines.append(f"| {name} | " + " | ".join(f"{a:.3f}" for a in accs)
                     + f" | {min(accs):.3f} | {max(accs):.3f} | {ratio:.1f} |")
    return "\n".join(lines)


MINUS_ONE = ("full - MAE", "full - progressive", "full - diversity", "full - distribution", "full - ensemble",
             "full - blur")


def minus_one_table(report: dict) -> str:
    """The ablation page's full-minus-one table at N = 1,000 (bf16 rows): each part's removal, with
    the change of the test judges' mean accuracy against the full recipe, their features' diversity
    and recall (real test images first, for reference)."""
    rows = report["rows"]
    full = rows["CaG full, 250 steps, g(x), bf16"]
    lines = ["| recipe (N = 1,000, bf16) | validation judge acc | test judges acc (range) | change of test acc "
             "| test judges FD (range) | diversity | recall | CAS |", "|---|---|---|---|---|---|---|---|"]
    named = [("real test images", rows["real"]), ("CaG full", full),
             *[(n, rows.get(f"{n}, bf16")) for n in MINUS_ONE]]
    for name, r in named:
        if r is None:
            continue
        val, acc, fd = _judged(r)
        t = r["test_mean"]
        change = "" if name.startswith("real") else f"{t['acc'] - full['test_mean']['acc']:+.3f}"
        lines.append(f"| {name} | {val} | {acc} | {change} | {fd} | {t['diversity']:.2f} | {t['recall']:.2f} "
                     f"| {_cas(r)} |")
    return "\n".join(lines)


if __name__ == "__main__":  # the ablation page's tables: python -m cag_lib.panel ablation|minus_one|paper|judges
    import sys
    stored = read_json(results_dir() / "panel_fmnist.json", RESTORE)
    print({"ablation": ablation_table, "minus_one": minus_one_table, "paper": paper_table,
           "judges": judges_table, "paper_verdict": paper_verdict, "judges_verdict": judges_verdict,
           "minus_one_verdict": minus_one_verdict}[sys.argv[1]](stored))
