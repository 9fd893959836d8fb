import pytest
import torch

from cag_lib.models import ARCHS, Classifier, ClassifierOutput, Ensemble, arch_kwargs, build_network


def make(arch, in_chans=1, classes=10):
    torch.manual_seed(0)
    return Classifier(build_network(arch, in_chans, classes, **arch_kwargs(arch, 32)), 32, [0.2] * in_chans, [0.3] * in_chans,
                      [f"c{i}" for i in range(classes)], name=arch).eval()


@pytest.mark.parametrize("arch", list(ARCHS))
def test_logits_and_features_in_one_pass(arch):
    m = make(arch)
    out = m(torch.rand(3, 1, 32, 32))
    assert isinstance(out, ClassifierOutput)
    assert out.logits.shape == (3, 10) and out.features.ndim == 2 and out.features.shape[0] == 3
    # the features are exactly what the last linear layer sees
    torch.testing.assert_close(m.net.get_classifier()(out.features), out.logits)
    # and the uniform API agrees with the plain timm forward on normalised input
    x = torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(m(x).logits, m.net((x - 0.2) / 0.3))


@pytest.mark.parametrize("size", [8, 16, 64])
def test_wrapper_resizes_to_its_input_size(size):
    m = make("resnet", in_chans=3)
    x = torch.rand(2, 3, size, size, requires_grad=True)
    out = m(x)
    assert out.logits.shape == (2, 10)
    out.logits.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape and x.grad.abs().sum() > 0


def test_wrong_channels_is_a_clear_error():
    with pytest.raises(ValueError, match="expects 1 channels, got 3"):
        make("vit")(torch.rand(1, 3, 32, 32))


def test_unknown_arch():
    with pytest.raises(ValueError, match="resnet, vit, convnext"):
        build_network("lenet", 1, 10)


def test_ensemble():
    e = Ensemble([make("resnet"), make("vit")])
    x = torch.rand(2, 1, 32, 32)
    outs = e(x)
    assert len(outs) == 2
    ref = (outs[0].logits.log_softmax(-1) + outs[1].logits.log_softmax(-1)) / 2
    torch.testing.assert_close(e.logits(x), ref)
    with pytest.raises(ValueError, match="disagree"):
        Ensemble([make("resnet"), make("vit", classes=5)])
    with pytest.raises(ValueError, match="at least one"):
        Ensemble([])


@pytest.mark.parametrize("arch", ["resnet", "vit", "convnext_ln"])
def test_forward_with_map_matches_forward(arch):
    torch.manual_seed(0)
    clf = Classifier(build_network(arch, 1, 4), 32, [0.5], [0.25]).eval()
    x = torch.rand(2, 1, 32, 32)
    out, fmap = clf.forward_with_map(x)
    assert torch.allclose(out.logits, clf(x).logits, atol=1e-5)
    assert fmap.dim() == 3 and fmap.shape[0] == 2   # (B, channels, positions); 1 position for a 32x32 ResNet


def test_mixer_sees_its_own_input_size():
    """The MLP-Mixer test judge works at 28x28: the wrapper resizes the world's 32x32 images."""
    m = Classifier(build_network("mixer", 1, 10, **arch_kwargs("mixer", 28)), 28, [0.2], [0.3]).eval()
    assert m(torch.rand(2, 1, 32, 32)).logits.shape == (2, 10)
    with pytest.raises(AssertionError):       # the bare network has a fixed token grid
        m.net(torch.rand(2, 1, 32, 32))


def test_plain_cnn_has_no_normalisation_layers():
    net = build_network("cnn", 1, 10)
    norms = (torch.nn.BatchNorm2d, torch.nn.LayerNorm, torch.nn.GroupNorm)
    assert not any(isinstance(m, norms) for m in net.modules())
