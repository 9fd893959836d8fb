"""The Lucent baseline: lucent's own parameterisation and transforms, seeded, on a small-world source."""
import builtins

import pytest
import torch

from cag_lib.lucent_baseline import lucent_images, small_transforms
from cag_lib.zoo import load_bundle

pytest.importorskip("lucent", reason="torch-lucent is not installed (pip install -e '.[lucent]')")


@pytest.fixture(scope="module")
def resnet():
    return load_bundle("fmnist").classifiers[0]


def test_lucent_images_are_seeded_grey_and_in_range(resnet):
    y = torch.tensor([0, 7, 9])
    a, b = lucent_images(resnet, y, steps=3, seed=1), lucent_images(resnet, y, steps=3, seed=1)
    c = lucent_images(resnet, y, steps=3, seed=2)
    assert a.shape == (3, 1, 32, 32) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_more_steps_raise_the_target_logit(resnet):
    y = torch.tensor([1, 5])
    few, many = (lucent_images(resnet, y, steps=s, seed=0) for s in (1, 40))
    logit = lambda x: resnet(x).logits.gather(1, y[:, None]).mean()   # noqa: E731
    assert logit(many) > logit(few) + 1


def test_the_transforms_are_lucents_scaled_to_32_px():
    from lucent.optvis import transform
    x = torch.full((2, 1, 32, 32), 0.5)
    out = transform.compose(small_transforms(transform, 32))(x)
    assert out.shape[0] == 2 and 32 + 2 * 3 <= out.shape[-1] <= int((32 + 6) * 1.1) + 1   # pad 3, scale <= 1.1


def test_without_lucent_the_error_names_the_install(monkeypatch, resnet):
    real = builtins.__import__

    def no_lucent(name, *a, **k):
        if name.startswith("lucent"):
            raise ImportError(name)
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_lucent)
    with pytest.raises(ImportError, match="pip install torch-lucent"):
        lucent_images(resnet, torch.tensor([0]), steps=1)
