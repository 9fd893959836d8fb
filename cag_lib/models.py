"""Classifiers with one uniform API: logits and penultimate features in one pass.

A `Classifier` wraps any timm model. It takes images in pixel space, (B, C, H, W) in [0, 1], at
any resolution; it resizes them to the size the network was trained at and normalises them
itself, so the sampler never has to know either. `forward` returns `ClassifierOutput(logits,
features)` where `features` is what the last linear layer sees (h in the paper's eq. 4 and 6).

The small worlds' networks are built from timm's model classes with small configs, by name:
`build_network("resnet", in_chans, num_classes)` — see ARCHS.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import NamedTuple, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm


class ClassifierOutput(NamedTuple):
    logits: torch.Tensor    # (B, num_classes)
    features: torch.Tensor  # (B, D) penultimate features


def _resnet(in_chans, num_classes, **kw):
    from timm.models.resnet import BasicBlock, ResNet
    return ResNet(BasicBlock, [1, 1, 1, 1], channels=(32, 64, 128, 256), stem_width=32,
                  in_chans=in_chans, num_classes=num_classes, **kw)


def resnet_stem(in_chans: int, width: int = 32) -> nn.Sequential:
    """ResNet's stem: 7x7 conv stride 2, BN, ReLU, 3x3 max-pool stride 2. (B, C, H, W) -> (B, width, H/4, W/4)."""
    return nn.Sequential(nn.Conv2d(in_chans, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
                         nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))


def _conv_stem_embed():
    from timm.layers import PatchEmbed

    class ConvStemPatchEmbed(PatchEmbed):
        """timm's PatchEmbed with the linear 4x4 patch projection replaced by a ResNet stem, one residual
        block and a 1x1 conv (a hybrid ViT, like timm's vit_*_r26_*): the same 8x8 grid of tokens from
        a 32x32 image, but each token sees a 19x19 window."""

        def __init__(self, *args, **kw):
            from timm.models.resnet import BasicBlock
            super().__init__(*args, **kw)
            down = nn.Sequential(nn.Conv2d(32, 64, 1, bias=False), nn.BatchNorm2d(64))
            self.proj = nn.Sequential(*resnet_stem(self.proj.in_channels), BasicBlock(32, 64, downsample=down),
                                      nn.Conv2d(64, self.proj.out_channels, 1))

    return ConvStemPatchEmbed


def _vit(in_chans, num_classes, img_size=32, **kw):
    from timm.models.vision_transformer import VisionTransformer
    return VisionTransformer(img_size=img_size, patch_size=4, embed_dim=96, depth=4, num_heads=3, mlp_ratio=2.0,
                             global_pool="avg", class_token=False, embed_layer=_conv_stem_embed(),
                             in_chans=in_chans, num_classes=num_classes, **kw)


def _convnext(in_chans, num_classes, **kw):
    from timm.models.convnext import ConvNeXt
    net = ConvNeXt(depths=(1, 1, 2, 1), dims=(32, 64, 128, 192), patch_size=4, ls_init_value=1.0, conv_mlp=True,
                   norm_layer=nn.BatchNorm2d, in_chans=in_chans, num_classes=num_classes, **kw)
    net.stem = resnet_stem(in_chans, 32)
    return net


def _convnext_ln(in_chans, num_classes, **kw):
    from timm.models.convnext import ConvNeXt
    return ConvNeXt(depths=(1, 1, 2, 1), dims=(32, 64, 128, 192), patch_size=4, in_chans=in_chans,
                    num_classes=num_classes, **kw)


class PlainCNN(nn.Module):
    """A VGG-style CNN without any normalisation layer: (conv 3x3, ReLU) x 2 and a 2x2 max-pool per
    width, global average pooling, one linear layer; timm's model API (forward_features, forward_head,
    get_classifier). A test judge: no BatchNorm, no residuals, nothing shared with the sources."""

    def __init__(self, in_chans: int, num_classes: int, widths=(16, 32, 64)):
        super().__init__()
        layers, c = [], in_chans
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(w, w, 3, padding=1),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c = w
        self.features, self.num_features, self.num_classes = nn.Sequential(*layers), c, num_classes
        self.head = nn.Linear(c, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:   # (B, C, H, W) -> (B, c, H/8, W/8)
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3))                                          # (B, c)
        return x if pre_logits else self.head(x)

    def get_classifier(self) -> nn.Module:
        return self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _cnn(in_chans, num_classes, **kw):
    return PlainCNN(in_chans, num_classes)


def _mixer(in_chans, num_classes, img_size=28, **kw):
    from timm.models.mlp_mixer import MlpMixer
    return MlpMixer(num_classes, img_size=img_size, in_chans=in_chans, patch_size=4, num_blocks=4, embed_dim=96,
                    mlp_ratio=(0.5, 4.0), **kw)


def _resnet_d(in_chans, num_classes, **kw):
    from timm.models.resnet import BasicBlock, ResNet
    return ResNet(BasicBlock, [2, 2, 2, 2], channels=(32, 64, 128, 256), stem_width=16, stem_type="deep",
                  avg_down=True, in_chans=in_chans, num_classes=num_classes, **kw)


def arch_kwargs(arch: str, input_size: int) -> dict:
    """What an architecture needs to know of its input size (the MLP-Mixer's token grid)."""
    return {"img_size": input_size} if arch == "mixer" else {}


# Small-world architectures, three families: a CNN, a ViT and a ConvNeXt (the judges). From scratch on
# 2 CPU cores, a plain 4x4-patch ViT and a LayerNorm ConvNeXt learn these worlds 5-10x more slowly
# than the ResNet (shapes after 500 steps: ViT 31%, ConvNeXt 28%, ResNet 89%). Both therefore start
# with ResNet's stem ("early convolutions", Xiao et al. 2021; timm's hybrid ViTs do the same), and the
# ConvNeXt uses BatchNorm and layer scale 1.0. The transformer blocks and ConvNeXt blocks are timm's.
# The plain LayerNorm ConvNeXt ("convnext_ln") is the Fashion-MNIST judge: sharing no stem with the
# sources, it is fooled far less by their adversarial examples (see book/zoo.md); trained on a GPU.
# The test judges of Fashion-MNIST (reported, never looked at while choosing a recipe) add three more:
# a CNN without normalisation layers, timm's MLP-Mixer at 28x28 (the wrapper resizes its input), and a
# two-blocks-per-stage ResNet-D (deep stem, average-pool downsampling).
ARCHS = {"resnet": _resnet, "vit": _vit, "convnext": _convnext, "convnext_ln": _convnext_ln,
         "cnn": _cnn, "mixer": _mixer, "resnet_d": _resnet_d}


def build_network(arch: str, in_chans: int, num_classes: int, **kw) -> nn.Module:
    """A bare timm network of one of the small-world architectures."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHS)}")
    return ARCHS[arch](in_chans, num_classes, **kw)


class Classifier(nn.Module):
    """A timm network that owns its input size and normalisation; returns logits and features."""

    def __init__(self, net: nn.Module, input_size: int, mean: Sequence[float], std: Sequence[float],
                 class_names: Sequence[str] = (), name: str = ""):
        super().__init__()
        self.net, self.input_size, self.name = net, int(input_size), name
        self.class_names = tuple(class_names)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    @property
    def in_chans(self) -> int:
        return self.mean.shape[1]

    @property
    def num_classes(self) -> int:
        return self.net.num_classes

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] at any size -> normalised (B, C, S, S) at the network's size."""
        if x.shape[1] != self.in_chans:
            raise ValueError(f"{self.name or 'classifier'} expects {self.in_chans} channels, got {x.shape[1]}")
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              align_corners=False, antialias=x.shape[-1] > self.input_size)
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> ClassifierOutput:
        return self.forward_with_map(x)[0]

    def forward_with_map(self, x: torch.Tensor) -> tuple[ClassifierOutput, torch.Tensor]:
        """The output and the last feature map as (B, channels, positions): a CNN's (B, C, H, W)
        flattened, a ViT's tokens (B, N, D) transposed. STIC's Gram-matrix term uses it. (The small
        worlds' ResNet and ConvNeXt end at 1x1 on 32x32 inputs, so their Gram matrix is f f^T.)"""
        fmap = self.net.forward_features(self.preprocess(x))
        f = self.net.forward_head(fmap, pre_logits=True)  # (B, D)
        flat = fmap.flatten(2) if fmap.dim() == 4 else fmap.transpose(1, 2)
        return ClassifierOutput(self.net.get_classifier()(f), f), flat


class Ensemble(nn.Module):
    """Several classifiers over the same classes; forward returns one output per member."""

    def __init__(self, members: Sequence[Classifier]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one classifier")
        if len({m.num_classes for m in members}) != 1:
            raise ValueError("ensemble members disagree on the number of classes")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> list[ClassifierOutput]:
        return [m(x) for m in self.members]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of the members' log-probabilities: (B, num_classes)."""
        return torch.stack([o.logits.log_softmax(-1) for o in self(x)]).mean(0)


def attention_layers(networks: Sequence[nn.Module]) -> list[nn.Module]:
    """timm's attention layers in these networks (the modules with a `fused_attn` switch)."""
    return [m for net in networks for m in net.modules() if hasattr(m, "fused_attn")]


@contextmanager
def eager_attention(layers: Sequence[nn.Module], eager: bool = True):
    """Within the block, these attention layers compute softmax(q k^T / sqrt(d)) v as separate ops
    (eager) instead of one fused scaled_dot_product_attention; restored after. Same maths; under bf16
    on a CPU the eager form is faster for short sequences (benchmarks/speed_cpu.py)."""
    before = [m.fused_attn for m in layers]
    for m, b in zip(layers, before):
        m.fused_attn = b and not eager
    try:
        yield
    finally:
        for m, b in zip(layers, before):
            m.fused_attn = b


@torch.no_grad()
def batched_outputs(model: nn.Module, images: torch.Tensor, batch_size: int = 500,
                    desc: str | None = None) -> ClassifierOutput:
    """A Classifier on many images, in batches, on the CPU: logits (N, K), features (N, D); desc: a
    progress bar."""
    device = next(model.parameters()).device
    outs = [model(images[i:i + batch_size].to(device))
            for i in tqdm(range(0, len(images), batch_size), desc=desc, disable=desc is None, leave=False)]
    return ClassifierOutput(torch.cat([o.logits.float().cpu() for o in outs]),
                            torch.cat([o.features.float().cpu() for o in outs]))


def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Logits of a Classifier for many images, in batches: (N, num_classes)."""
    return batched_outputs(model, images, batch_size).logits


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy of a Classifier, in eval mode."""
    was_training = model.training
    model.eval()
    acc = (predict(model, images, batch_size).argmax(1) == labels.cpu()).sum().item() / len(labels)  # exact ratio
    model.train(was_training)
    return acc
