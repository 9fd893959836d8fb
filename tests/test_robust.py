"""Robust sources and the rivals' pieces: the project's L2 PGD against torchattacks' PGDL2, the PGD
sampler (Santurkar et al.), the class-Gaussian start, DeepInversion's BatchNorm prior, and a
training run that continues from its checkpoint exactly."""
import dataclasses
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cag_lib import zoo
from cag_lib.attacks import pgd_l2
from cag_lib.batchnorm import batch_divergence, batchnorm_divergence, batchnorm_layers, class_batches
from cag_lib.samplers import PGD
from cag_lib.stats import class_image_gaussians, sample_class_gaussians
from cag_lib.train import checkpoint_path, main

torchattacks = pytest.importorskip("torchattacks")   # installed by scripts/setup.sh (without its pins)


def small_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 4)).eval()


def test_pgd_l2_is_torchattacks_pgdl2_without_the_random_start():
    net, x, y = small_net(), torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 3, 0, 1])
    eps, steps = 0.7, 5
    ours = pgd_l2(lambda xi: F.cross_entropy(net(xi), y), x, eps, steps, None, random_start=False)
    theirs = torchattacks.PGDL2(net, eps=eps, alpha=2.5 * eps / steps, steps=steps, random_start=False)(x, y)
    assert (ours - x).abs().max() > 0.05                       # it moved
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_pgd_sampler_is_a_targeted_torchattacks_pgdl2():
    net, x0, target = small_net(1), torch.rand(5, 1, 8, 8), torch.tensor([3, 2, 1, 0, 3])
    eps, step, steps = 1.5, 0.2, 12
    sampler, x = PGD(step, eps), None
    x = sampler.start(x0, steps)

    def evaluate(xs):   # what the loop gives a sampler: per-image objective, parts, the view
        logits = net(xs)
        return F.cross_entropy(logits, target, reduction="none"), {}, SimpleNamespace(outputs=[logits])
    for _ in range(steps):
        x = sampler.step(x, evaluate).x
    atk = torchattacks.PGDL2(net, eps=eps, alpha=step, steps=steps, random_start=False)
    atk.set_mode_targeted_by_label(quiet=True)
    theirs = atk(x0, target)
    torch.testing.assert_close(x, theirs, atol=1e-5, rtol=0)
    assert ((x - x0).flatten(1).norm(dim=1) <= eps + 1e-5).all() and x.min() >= 0 and x.max() <= 1
    assert (net(x).argmax(1) == target).float().mean() > (net(x0).argmax(1) == target).float().mean()


def test_batchnorm_prior_is_zero_at_the_running_statistics_and_leaves_no_hooks():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3).eval()
    bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
    bn.running_var.copy_(torch.tensor([1.0, 4.0, 0.25]))
    z = torch.randn(64, 3, 4, 4)
    z = (z - z.mean((0, 2, 3), keepdim=True)) / z.std((0, 2, 3), unbiased=False, keepdim=True)
    matched = z * bn.running_var.sqrt().view(1, 3, 1, 1) + bn.running_mean.view(1, 3, 1, 1)
    assert batch_divergence(matched, bn) < 1e-4
    assert batch_divergence(matched + 1, bn) == pytest.approx(3 ** 0.5, rel=1e-4)   # every mean off by 1

    net = nn.Sequential(nn.Conv2d(1, 3, 3), bn, nn.ReLU(), nn.Conv2d(3, 2, 3), nn.BatchNorm2d(2).eval())
    x = torch.rand(8, 1, 8, 8)
    with batchnorm_divergence(net) as divergence:
        net(x)
        total = divergence()
    h = net[0](x)
    by_hand = batch_divergence(h, net[1]) + batch_divergence(net[3](net[2](net[1](h))), net[4])
    torch.testing.assert_close(total, by_hand)
    assert all(not layer._forward_hooks for layer in batchnorm_layers(net))
    with batchnorm_divergence(net, enabled=False) as divergence:
        net(x)
        assert divergence() is None


def test_class_gaussian_start_follows_each_class():
    mean, chol = class_image_gaussians("fmnist", 8, 2000)
    assert mean.shape == (10, 64) and chol.shape == (10, 64, 64)
    g = torch.Generator().manual_seed(0)
    x = sample_class_gaussians((mean, chol), torch.tensor([1] * 400 + [8] * 400), 1, 8, g)   # trousers, bags
    assert x.shape == (800, 1, 8, 8) and 0 <= x.min() and x.max() <= 1
    for i, c in enumerate((1, 8)):   # the draws' mean is the class's (clamping moves it a little)
        drawn = x[400 * i:400 * (i + 1)].flatten(1).mean(0)
        assert (drawn - mean[c].clamp(0, 1)).abs().mean() < 0.03
    assert (mean[1] - mean[8]).abs().mean() > 0.1


def test_adversarial_classifier_run_continues_from_its_checkpoint_exactly(tmp_path, monkeypatch):
    import cag_lib.train as train
    args = ["classifier", "--bundle", "fmnist", "--arch", "resnet", "--name", "r", "--limit", "256",
            "--batch-size", "32", "--max-steps", "6", "--test-limit", "32", "--adv-eps", "0.5",
            "--adv-steps", "2", "--checkpoint-every", "2"]
    main([*args, "--out", str(tmp_path / "a")])                      # uninterrupted
    entry = zoo.read_manifest(tmp_path / "a")["fmnist"]["r"]
    assert entry["training"]["config"]["adv_eps"] == 0.5 and "checkpoint_every" not in entry["training"]["config"]
    assert not checkpoint_path(train.TrainConfig(bundle="fmnist", name="r", out=str(tmp_path / "a"))).exists()

    calls = {"n": 0}
    real = train.KINDS["classifier"].loss

    def stop_at_fifth(*a, **k):   # Ctrl-C during the fifth batch: the checkpoint of step 4 stays
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*a, **k)
    with monkeypatch.context() as m:
        m.setitem(train.KINDS, "classifier", dataclasses.replace(train.KINDS["classifier"], loss=stop_at_fifth))
        main([*args, "--out", str(tmp_path / "b")])
    assert zoo.read_manifest(tmp_path / "b")["fmnist"]["r"]["training"]["steps"] == 4
    main([*args, "--out", str(tmp_path / "b")])                      # the same command continues
    a, b = (zoo.load_model("fmnist", "r", weights_dir=tmp_path / d).state_dict() for d in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert zoo.read_manifest(tmp_path / "b")["fmnist"]["r"]["training"]["steps"] == 6

    with monkeypatch.context() as m:   # a checkpoint of other settings is refused, not mixed in
        m.setitem(train.KINDS, "classifier", dataclasses.replace(train.KINDS["classifier"], loss=stop_at_fifth))
        calls["n"] = 0
        main([*args, "--out", str(tmp_path / "c")])
    with pytest.raises(ValueError, match="other settings .*adv_eps"):
        main([*args[:-6], "--adv-eps", "0.25", "--adv-steps", "2", "--checkpoint-every", "2", "--out",
              str(tmp_path / "c")])


@pytest.mark.parametrize("world", ["fmnist", "shapes"])
def test_the_shipped_robust_sources_resist_the_attack_that_breaks_the_plain_ones(world, fmnist_test, shapes_test):
    from cag_lib.attacks import robust_accuracy
    test = {"fmnist": fmnist_test, "shapes": shapes_test}[world]
    x, y = test[0][:200], test[1][:200]
    for plain, robust in (("resnet", "resnet_robust"), ("vit", "vit_robust")):
        entry = zoo.read_manifest()[world][robust]
        eps = entry["training"]["config"]["adv_eps"]
        p, r = (robust_accuracy(zoo.load_model(world, m), x, y, eps) for m in (plain, robust))
        assert r > p + 0.2, (robust, r, p)
        stored = entry["metrics"][f"robust_accuracy@{eps:g}"]   # measured on 1000 images at training time
        assert abs(r - stored) < 0.1, (robust, r, stored)


def test_class_batches_hold_one_class_or_every_class_in_turn():
    assert class_batches([0, 2], 3, mixed=False) == [[0, 0, 0], [2, 2, 2]]
    mixed = class_batches(range(8), 25, mixed=True)
    assert len(mixed) == 8 and all(len(b) == 25 for b in mixed)
    assert all(set(b) == set(range(8)) for b in mixed)                 # every batch holds every class
    flat = [c for b in mixed for c in b]
    assert all(flat.count(c) == 25 for c in range(8)) and flat[:9] == [0, 1, 2, 3, 4, 5, 6, 7, 0]

