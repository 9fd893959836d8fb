"""Objectives compose like lucent's: terms add, weights multiply, parts are kept by name."""
from dataclasses import replace

import pytest
import torch

from cag_lib.config import GenerateConfig
from cag_lib.models import ClassifierOutput
from cag_lib.objectives import Objective, View, classification, diversity, objective_from_config, smoothness


def view() -> View:
    torch.manual_seed(0)
    logits, feats = torch.randn(4, 3), torch.randn(4, 5)
    return View(torch.rand(4, 1, 8, 8), torch.tensor([0, 0, 1, 2]), [ClassifierOutput(logits, feats)], [None])


def test_weights_multiply_and_terms_add():
    v = view()
    a = Objective.term("a", lambda v: torch.tensor(2.0))
    b = Objective.term("b", lambda v: torch.tensor([1.0, 2.0, 3.0, 4.0]), per_image=True)
    total, parts = (a + 0.5 * b - 3 * a).evaluate(v)
    assert torch.allclose(total, 2.0 + 0.5 * torch.tensor([1.0, 2, 3, 4]) - 6.0)    # a's weight: 1 - 3
    assert set(parts) == {"a", "b"} and repr(a + 0.5 * b) == "1 * a + 0.5 * b"
    assert (2 * b).per_image and not (a + b).per_image


def test_classification_is_the_per_image_cross_entropy_averaged_over_sources():
    v = view()
    two = replace(v, outputs=v.outputs * 2)
    ce = torch.nn.functional.cross_entropy(v.outputs[0].logits, v.targets, reduction="none")
    assert torch.allclose(classification()(v), ce) and torch.allclose(classification()(two), ce)


def test_the_config_names_its_terms_with_their_weights():
    cfg = replace(GenerateConfig(), diversity_weight=0.25, distribution_weight=0.0, tv_weight=2.0)
    obj = objective_from_config(cfg)
    assert [(n, w) for n, w, *_ in obj.terms] == [("cls", 1.0), ("div", 0.25), ("tv", 2.0)]
    v = view()
    want = classification()(v) + 0.25 * diversity()(v) + 2.0 * smoothness()(v)
    assert torch.allclose(obj(v), want)
    with pytest.raises(KeyError):
        obj.evaluate(v)[1]["dist"]


def test_two_terms_with_one_name_are_refused():
    with pytest.raises(ValueError, match="already has a different term named 'div'"):
        diversity() + 0.5 * diversity()
    a = diversity()
    assert [(n, w) for n, w, *_ in (a + 0.5 * a).terms] == [("div", 1.5)]
