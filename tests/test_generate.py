"""The sampler's contract: targets, seeding, interruption, bad input, and eq. 1 reaching its target."""
import types

import pytest
import torch

from cag_lib.generate import GenerateConfig, check_resolutions, generate
from cag_lib.mae import MaskedAutoencoder
from cag_lib.models import Classifier, build_network

NAMES = ("a", "b", "c")


@pytest.fixture(scope="module")
def tiny():
    """Random small models with the Bundle interface the sampler uses."""
    torch.manual_seed(0)
    clfs = [Classifier(build_network(a, 1, 3), 32, [0.5], [0.25], NAMES, name=a).eval().requires_grad_(False)
            for a in ("resnet", "vit")]
    mae = MaskedAutoencoder(img_size=32, patch_size=4, in_chans=1, embed_dim=32, depth=1, num_heads=2,
                            decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2, mlp_ratio=2.0,
                            mean=(0.5,), std=(0.25,)).eval().requires_grad_(False)

    def class_index(c):
        if c in NAMES:
            return NAMES.index(c)
        if isinstance(c, int) and 0 <= c < 3:
            return c
        raise ValueError(f"unknown class {c!r}; valid classes: {NAMES}")
    return types.SimpleNamespace(classifiers=clfs, mae=mae, in_chans=1, class_index=class_index)


QUICK = dict(steps=6, resolutions=(8, 16, 32), progress=False)


def test_shapes_history_and_snapshots(tiny):
    seen = []
    r = generate(tiny, ["a", "b", 2], GenerateConfig(snapshot_every=2, **QUICK),
                 callbacks=[lambda step, imgs, res: seen.append((step, imgs.shape))])
    assert r.images.shape == (3, 1, 32, 32) and r.reconstructions.shape == (3, 1, 32, 32)
    assert 0 <= r.images.min() and r.images.max() <= 1
    assert len(r.history["loss"]) == 6 and r.targets.tolist() == [0, 1, 2]
    assert seen == [(2, (3, 1, 32, 32)), (4, (3, 1, 32, 32)), (6, (3, 1, 32, 32))]
    assert not r.interrupted


def test_seeded_runs_are_identical_and_seeds_matter(tiny):
    cfg = GenerateConfig(diversity_weight=0.5, blur_sigma=1.0, jitter=1, tv_weight=0.1, **QUICK)
    a, b = generate(tiny, ["a", "a", "b"], cfg), generate(tiny, ["a", "a", "b"], cfg)
    assert torch.equal(a.images, b.images) and a.history == b.history
    c = generate(tiny, ["a", "a", "b"], GenerateConfig(seed=1, **QUICK))
    assert not torch.equal(a.images, c.images)


def test_ctrl_c_returns_the_partial_result(tiny):
    def interrupt(step, imgs, res):
        if step == 3:
            raise KeyboardInterrupt
    r = generate(tiny, ["a", "b"], GenerateConfig(snapshot_every=1, **QUICK), callbacks=[interrupt])
    assert r.interrupted and len(r.history["loss"]) == 3 and r.images.shape == (2, 1, 32, 32)


def test_bad_input_is_one_clear_error(tiny):
    with pytest.raises(ValueError, match="targets is empty"):
        generate(tiny, [], GenerateConfig(**QUICK))
    with pytest.raises(ValueError, match="valid classes"):
        generate(tiny, ["z"], GenerateConfig(**QUICK))
    with pytest.raises(ValueError, match=r"nearest valid: \[28, 32\]"):
        generate(tiny, ["a"], GenerateConfig(steps=2, resolutions=(30,), progress=False))
    with pytest.raises(ValueError, match="class_stats"):
        generate(tiny, ["a"], GenerateConfig(distribution_weight=1.0, **QUICK))
    check_resolutions((8, 16, 32), 4)  # valid ones pass
    with pytest.raises(ValueError, match=r"nearest valid: \[4\]"):
        check_resolutions((2,), 4)


def test_eq1_reaches_its_target_on_the_source():
    """The targeted adversarial attack (eq. 1) makes the trained sources say the target class."""
    from cag_lib.zoo import load_bundle
    b = load_bundle("fmnist")
    targets = list(range(10))
    r = generate(b, targets, GenerateConfig(steps=40, resolutions=(32,), use_mae=False, progress=False))
    for clf in b.classifiers:
        assert (clf(r.images).logits.argmax(1) == torch.tensor(targets)).all(), clf.name
    assert r.history["target_prob"][-1] > 0.9 > r.history["target_prob"][0]
