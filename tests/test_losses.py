"""Each loss and metric on small tensors whose answer is worked out by hand."""
import math

import pytest
import torch

from cag_lib.losses import classification_loss, distribution_loss, diversity_loss, total_variation
from cag_lib.metrics import format_table, frechet_distance, gaussian_stats, intra_class_diversity


def test_classification_loss_is_cross_entropy_of_the_target():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # p(target=1) = 3/4
    assert classification_loss(logits, torch.tensor([1])).item() == pytest.approx(-math.log(0.75))


def test_a_single_class_is_scored_by_its_negative_logit():
    """One prompt: the cross-entropy over one class is 0 for every image (no gradient), so the loss
    is the class's negative logit, per image or averaged."""
    logits = torch.tensor([[2.0], [-1.0]], requires_grad=True)
    t = torch.zeros(2, dtype=torch.long)
    assert classification_loss(logits, t, reduction="none").tolist() == [-2.0, 1.0]
    loss = classification_loss(logits, t)
    loss.backward()
    assert loss.item() == pytest.approx(-0.5) and logits.grad.flatten().tolist() == [-0.5, -0.5]
    two = torch.tensor([[2.0, 0.0]])
    assert classification_loss(two, torch.tensor([0])).item() == pytest.approx(math.log(1 + math.exp(-2)))


def test_diversity_loss_by_hand():
    f = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    # all one class: pairwise cosines 0.6, 0.0, 0.8 -> mean 1.4 / 3
    assert diversity_loss(f, torch.tensor([0, 0, 0])).item() == pytest.approx(1.4 / 3)
    # only samples 0 and 1 share a class
    assert diversity_loss(f, torch.tensor([0, 0, 1])).item() == pytest.approx(0.6)
    # unnormalised: the raw dot product
    assert diversity_loss(2 * f, torch.tensor([0, 0, 1]), normalize=False).item() == pytest.approx(2.4)
    # no pair of the same class: nothing to push apart
    assert diversity_loss(f, torch.tensor([0, 1, 2])).item() == 0.0


def test_distribution_loss_by_hand():
    f = torch.tensor([[0.0], [2.0], [5.0]])
    y = torch.tensor([0, 0, 1])
    mean, std = torch.tensor([[1.0], [5.0]]), torch.tensor([[math.sqrt(2.0)], [1.0]])
    assert distribution_loss(f, y, mean, std).item() == pytest.approx(0.0, abs=1e-6)
    # class 0's mean off by 1 (error 1), class 1 matches: average over the two classes = 0.5
    assert distribution_loss(f, y, mean - torch.tensor([[1.0], [0.0]]), std).item() == pytest.approx(0.5)


def test_total_variation_by_hand():
    img = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])  # a vertical edge: only horizontal differences
    assert total_variation(img).item() == pytest.approx(1.0)


def test_frechet_distance_by_hand():
    # diagonal covariances: |dmu|^2 + sum (sqrt(a) - sqrt(b))^2 = 1 + 1 + 1
    fd = frechet_distance(torch.tensor([0.0, 0.0]), torch.diag(torch.tensor([1.0, 4.0])),
                          torch.tensor([1.0, 0.0]), torch.diag(torch.tensor([4.0, 1.0])))
    assert fd == pytest.approx(3.0)
    f = torch.randn(200, 5, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(*gaussian_stats(f), *gaussian_stats(f)) == pytest.approx(0.0, abs=1e-6)


def test_intra_class_diversity_by_hand():
    f = torch.tensor([[0.0, 0.0], [3.0, 4.0], [10.0, 10.0]])
    assert intra_class_diversity(f, torch.tensor([0, 0, 1])) == pytest.approx(5.0)


def test_format_table():
    t = format_table({"eq1": {"judge_acc": 0.1}, "CaG": {"judge_acc": 0.9, "shown": "g(x)"}})
    assert "eq1" in t and "0.900" in t and "g(x)" in t


def test_gram_loss_is_zero_on_the_class_gram_and_one_at_zero_features():
    from cag_lib.losses import gram_loss, gram_matrix
    fmap = torch.randn(4, 5, 7)                                   # (B, C, positions)
    y = torch.tensor([0, 1, 2, 3])
    assert torch.allclose(gram_loss(fmap, y, gram_matrix(fmap)), torch.zeros(4), atol=1e-6)
    assert torch.allclose(gram_loss(torch.zeros(4, 5, 7), y, gram_matrix(fmap)), torch.ones(4))
    g = gram_matrix(fmap)
    assert g.shape == (4, 5, 5) and torch.allclose(g, g.transpose(1, 2))
    assert torch.allclose(g[0], fmap[0] @ fmap[0].T / 7)


def test_markdown_table_formats_numbers_and_shows_nan_as_a_dash():
    from cag_lib.metrics import markdown_table
    table = markdown_table({"a": {"judge_acc": 0.5, "diversity": float("nan"), "shown": "g(x)", "seconds": 12.34},
                            "b": {"judge_acc": 1.0}})
    lines = table.splitlines()
    assert lines[0] == "| method | judge acc | diversity | shown | seconds |"      # wraps between words
    assert lines[2] == "| a | 0.500 | – | g(x) | 12.3 |" and lines[3] == "| b | 1.000 |  |  |  |"


def test_distribution_loss_sees_a_wrong_spread_with_the_right_mean():
    """Features with the class's mean but twice its std: only the std term of eq. 6 is non-zero."""
    f = torch.tensor([[1.0], [3.0], [1.0], [3.0]])          # mean 2, std 1.1547 (unbiased)
    y = torch.zeros(4, dtype=torch.long)
    mean, std = torch.tensor([[2.0]]), torch.tensor([[f.std(0).item() / 2]])
    assert distribution_loss(f, y, mean, std).item() == pytest.approx((f.std(0).item() / 2) ** 2)
    assert distribution_loss(f, y, mean, f.std(0)[None]).item() == pytest.approx(0.0, abs=1e-12)


def test_eq4_and_eq6_vectorised_are_the_per_class_loops():
    """The losses sum over classes with one-hot matrices; the plain per-class loop is the same maths,
    value and gradient, with classes of one sample and classes absent."""
    def loop_distribution(f, y, mean, std):
        terms = []
        for c in y.unique():
            fc = f[y == c]
            t = (fc.mean(0) - mean[c]).pow(2).mean()
            terms.append(t + (fc.std(0) - std[c]).pow(2).mean() if len(fc) > 1 else t)
        return torch.stack(terms).mean()

    def loop_diversity(f, y):
        f = torch.nn.functional.normalize(f, dim=-1)
        same = (y[:, None] == y[None, :]) & ~torch.eye(len(y), dtype=torch.bool)
        return (f @ f.T)[same].mean() if same.any() else f.new_zeros(())

    g = torch.Generator().manual_seed(0)
    for b in (1, 2, 5, 12, 40):
        y = torch.randint(0, 6, (b,), generator=g)
        f = torch.randn(b, 8, generator=g).relu()
        f[:, :2] = 0                                   # features that are 0 for every image (ReLU)
        f.requires_grad_(True)
        mean, std = torch.randn(6, 8, generator=g), torch.rand(6, 8, generator=g)
        for ours, loop in ((distribution_loss(f, y, mean, std), loop_distribution(f, y, mean, std)),
                           (diversity_loss(f, y), loop_diversity(f, y))):
            assert ours.item() == pytest.approx(loop.item(), abs=1e-6), b
            if loop.requires_grad:
                (g1,), (g2,) = torch.autograd.grad(ours, f), torch.autograd.grad(loop, f)
                assert torch.isfinite(g1).all() and torch.allclose(g1, g2, atol=1e-6), b


def test_eq4_as_the_paper_writes_it_sums_raw_inner_products_over_ordered_pairs():
    from cag_lib.losses import diversity_loss_paper
    g = torch.Generator().manual_seed(0)
    f, y = torch.randn(6, 5, generator=g), torch.tensor([0, 0, 1, 1, 1, 2])
    by_hand = sum(f[i] @ f[j] for i in range(6) for j in range(6) if i != j and y[i] == y[j])
    assert diversity_loss_paper(f, y).item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert diversity_loss_paper(2 * f, y).item() == pytest.approx(4 * by_hand.item(), rel=1e-6)   # not a cosine
    assert diversity_loss_paper(f, torch.arange(6)).item() == 0                              # no pair: nothing


def test_eq6_as_the_paper_writes_it_is_the_sum_over_features():
    g = torch.Generator().manual_seed(1)
    f, y = torch.randn(8, 7, generator=g), torch.tensor([0, 0, 0, 1, 1, 1, 1, 2])
    mean, std = torch.randn(3, 7, generator=g), torch.rand(3, 7, generator=g) + 0.5
    summed, averaged = distribution_loss(f, y, mean, std, "sum"), distribution_loss(f, y, mean, std)
    assert summed.item() == pytest.approx(7 * averaged.item(), rel=1e-6)
    by_hand = sum(((f[y == c].mean(0) - mean[c]) ** 2).sum() + ((f[y == c].std(0) - std[c]) ** 2).sum()
                  for c in (0, 1)) + ((f[y == 2].mean(0) - mean[2]) ** 2).sum()
    assert summed.item() == pytest.approx(by_hand.item() / 3, rel=1e-5)      # averaged over the 3 classes present
    with pytest.raises(ValueError, match="'mean' .* or 'sum'"):
        distribution_loss(f, y, mean, std, "max")
