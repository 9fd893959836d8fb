"""The comparison's numbers by hand: precision/recall, the Inception-Score-like number, KID; the panel."""
import pytest
import torch

from cag_lib.metrics import frechet_distance, gaussian_stats, inception_score, kid_from_features, precision_recall


def test_precision_recall_by_hand():
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])     # k = 1: every real ball has radius 1
    gen = torch.tensor([[0.5], [10.0]])                    # one point on the data, one far away
    p, r = precision_recall(gen, real, k=1)
    assert p == 0.5                                        # half the samples are realistic
    # gen's own balls: radius 9.5 around both; they hold every real point
    assert r == 1.0
    collapsed = torch.tensor([[1.0], [1.0], [1.01]])       # mode collapse: precise, covers little
    p, r = precision_recall(collapsed, real, k=1)
    assert p == 1.0 and r == 0.25


def test_inception_score_by_hand():
    confident_even = torch.eye(4) * 100                   # each image one class, classes used evenly
    assert inception_score(confident_even) == pytest.approx(4.0)
    confident_one = torch.tensor([[100.0, 0, 0, 0]] * 4)  # always the same class: nothing gained
    assert inception_score(confident_one) == pytest.approx(1.0)
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    p = logits.softmax(-1)
    m = p.mean(0)
    by_hand = torch.exp((p * (p / m).log()).sum(1).mean())
    assert inception_score(logits) == pytest.approx(float(by_hand))


def test_kid_is_the_unbiased_mmd_of_the_cubic_kernel():
    """Averaged over many random subsets, KID is the full sets' unbiased MMD^2 with the kernel
    k(x, y) = (x.y / D + 1)^3 (a U-statistic averages to the U-statistic of the whole set)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(60, 3, generator=g).double(), torch.randn(60, 3, generator=g).double() + 1

    def k(x, y):
        return (x @ y.T / 3 + 1) ** 3

    def mmd(x, y):
        m = len(x)
        kxx, kyy = k(x, x), k(y, y)
        return float((kxx.sum() - kxx.diag().sum()) / (m * (m - 1)) + (kyy.sum() - kyy.diag().sum()) / (m * (m - 1))
                     - 2 * k(x, y).mean())
    mean, std = kid_from_features(a, b, subsets=3000)
    assert mean == pytest.approx(mmd(a, b), rel=0.03) and std > 0
    assert kid_from_features(a, b, seed=3) == kid_from_features(a, b, seed=3)   # seeded: re-scores agree
    same, _ = kid_from_features(a, torch.randn(60, 3, generator=g).double(), subsets=500)
    assert abs(same) < mean / 10


def test_panel_row_on_real_images_is_near_the_floor():
    """The panel, on real images: a judge recognises them, and the distances are small against the
    same numbers for noise."""
    from cag_lib.panel import judge_row, real_row, reference_features
    from cag_lib.zoo import load_bundle
    b = load_bundle("fmnist")
    x, y = real_row("fmnist", per_class=20)
    assert len(x) == 200 and y.bincount().tolist() == [20] * 10
    ref = reference_features({"validation": b.judge})["validation"]
    real = judge_row(b.judge, x, y, ref)
    noise = judge_row(b.judge, torch.rand(200, 1, 32, 32), y, ref)
    assert real["acc"] > 0.8 and noise["acc"] < 0.3
    assert real["fd"] < noise["fd"] / 5 and real["kid"] < noise["kid"] / 5
    assert real["precision"] > 0.8 and noise["precision"] < real["precision"] / 4 and real["is"] > noise["is"]


class Constant(torch.nn.Module):
    """A 'classifier' that says class k for every image."""

    def __init__(self, k: int, classes: int = 3):
        super().__init__()
        self.w = torch.nn.Parameter(torch.nn.functional.one_hot(torch.tensor(k), classes).float() * 10)

    def forward(self, x):
        from cag_lib.models import ClassifierOutput
        return ClassifierOutput(self.w.expand(len(x), -1), x.flatten(1)[:, :4])


def test_evaluate_asks_the_judge_and_not_the_sources():
    import types

    from cag_lib.metrics import evaluate
    b = types.SimpleNamespace(classifiers=[Constant(0)], judge=Constant(2))
    row = evaluate(b, torch.rand(6, 1, 8, 8), torch.full((6,), 2))
    assert row["judge_acc"] == 1.0 and row["source_acc"] == 0.0


def test_precision_recall_agree_with_prdc():
    """The hand-written improved precision and recall equal the maintained prdc package's
    (Naeem et al. 2020's reference code) on the same features."""
    import numpy as np
    from prdc import compute_prdc
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(300, 8, generator=g), 0.7 * torch.randn(200, 8, generator=g) + 0.4
    ours = precision_recall(fake, real, k=3)
    theirs = compute_prdc(real.numpy().astype(np.float64), fake.numpy().astype(np.float64), nearest_k=3)
    assert ours == pytest.approx((theirs["precision"], theirs["recall"]), abs=1e-12)


def test_frechet_distance_agrees_with_torchmetrics_fid_on_the_same_features():
    """frechet_distance(gaussian_stats(...)) is torchmetrics' FID with the judge's features as the
    feature extractor (here: the features themselves)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Given(torch.nn.Module):        # "images" that are already feature vectors
        num_features = 6

        def forward(self, x):
            return x

    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(400, 6, generator=g), 1.3 * torch.randn(300, 6, generator=g) + 0.5
    fid = FrechetInceptionDistance(feature=Given(), normalize=True)
    fid.update(real.double(), real=True)
    fid.update(fake.double(), real=False)
    ours = frechet_distance(*gaussian_stats(fake), *gaussian_stats(real))
    assert ours == pytest.approx(float(fid.compute()), rel=1e-6)


def test_answers_are_kept_per_exercise_and_a_rerun_replaces_one(tmp_path):
    import json

    import numpy as np

    from cag_lib.metrics import save_answer
    save_answer(tmp_path, 1, {"vit_acc": torch.tensor(0.123456), "rows": [np.float32(2.5), 3]})
    save_answer(tmp_path, 2, "the judge")
    save_answer(tmp_path, 1, 0.5)                                # the student ran exercise 1 again
    assert json.loads((tmp_path / "answers.json").read_text()) == {"1": 0.5, "2": "the judge"}
    save_answer(tmp_path, 3, {"acc": torch.tensor([0.123456, 1.0]), "ok": True})
    assert json.loads((tmp_path / "answers.json").read_text())["3"] == {"acc": [0.1235, 1.0], "ok": True}
