"""CLIP as a classifier (chapter 8): text prompts become the weights of the last linear layer.

open_clip builds the model and tokenizer; a zero-shot classifier's weights are the normalised text
embeddings of each class's prompts, averaged over templates and normalised again (open_clip's own
`build_zero_shot_classifier`), and its logits are `logit_scale * <image embedding, weight>`.
`ClipClassifier` wraps that with the `Classifier` API the sampler uses (images in [0, 1] at any size,
`ClassifierOutput(logits, features)`), so text-to-image is the same loop as everything else.

The small world's CLIP is an open_clip model with a custom config (`clip_configs/cag-shapes-clip.json`,
registered with `open_clip.add_model_config`: a small ModifiedResNet image tower and a text
transformer) trained with open_clip's `ClipLoss` on the shapes'
captions (`python -m cag_lib.train clip --bundle shapes`). At ImageNet scale the same wrapper takes
`create_clip("ViT-B-32", "laion2b_s34b_b79k")`.
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .models import ClassifierOutput

CONFIG_DIR = Path(__file__).parent / "clip_configs"
SHAPES_CLIP = "cag-shapes-clip"
IMAGENET_CLIP = ("ViT-B-32", "laion2b_s34b_b79k")


def _open_clip():
    import open_clip
    if SHAPES_CLIP not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_DIR)
    return open_clip


@contextmanager
def _quiet():
    """open_clip logs a warning through the root logger for every randomly initialised model."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def create_clip(name: str = SHAPES_CLIP, pretrained: str | None = None, checkpoint: str | Path | None = None,
                device="cpu"):
    """(model, tokenizer) from open_clip; `pretrained` is an open_clip tag (needs the hub),
    `checkpoint` a local state dict file (.safetensors or torch). Neither: random weights."""
    open_clip = _open_clip()
    if pretrained and checkpoint is None and os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        from .imagenet import OFFLINE_HINT, OfflineError
        raise OfflineError(f"open_clip {name} ({pretrained}) needs the Hugging Face hub, and HF_HUB_OFFLINE is "
                           "set; " + OFFLINE_HINT)
    with _quiet():
        model = open_clip.create_model(name, pretrained=pretrained if checkpoint is None else None, device=device)
    if checkpoint is not None:
        model.load_state_dict(load_state(checkpoint))
    return model.eval().requires_grad_(False), open_clip.get_tokenizer(name)


def load_state(path) -> dict:
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return {k: v.float() for k, v in load_file(str(path)).items()}
    return torch.load(path, map_location="cpu", weights_only=True)


def text_weights(model, tokenizer, classes: Sequence[str], templates: Sequence[str] = ("{}",)) -> torch.Tensor:
    """Zero-shot classifier weights (K, D): per class, the normalised mean of the normalised text
    embeddings of its prompts (open_clip's build_zero_shot_classifier)."""
    from open_clip.zero_shot_classifier import build_zero_shot_classifier
    device = next(model.parameters()).device
    return build_zero_shot_classifier(model, tokenizer, list(classes), list(templates), num_classes_per_batch=64,
                                      device=device).T.contiguous()


def normalise_images(model, x: torch.Tensor) -> torch.Tensor:
    """Images (B, 3, H, W) in [0, 1] at the model's input size -> its normalised input."""
    cfg = _open_clip().get_model_preprocess_cfg(model)
    mean, std = (torch.tensor(cfg[k], device=x.device).view(1, -1, 1, 1) for k in ("mean", "std"))
    return (x - mean) / std


class ClipClassifier(nn.Module):
    """An open_clip model as a Classifier over text-defined classes. forward: images (B, 3, H, W) in
    [0, 1] -> ClassifierOutput(logits (B, K), features = normalised image embeddings (B, D))."""

    def __init__(self, model, weights: torch.Tensor, class_names: Sequence[str], name: str = "clip"):
        super().__init__()
        self.model, self.name, self.class_names = model, name, tuple(class_names)
        if weights.shape[0] != len(self.class_names):
            raise ValueError(f"{weights.shape[0]} weight rows for {len(self.class_names)} classes")
        self.register_buffer("weights", weights, persistent=False)                 # (K, D)
        cfg = _open_clip().get_model_preprocess_cfg(model)
        self.input_size = int(cfg["size"][0] if isinstance(cfg["size"], (tuple, list)) else cfg["size"])
        device = weights.device   # the model's: build_zero_shot_classifier ran there
        self.register_buffer("mean", torch.tensor(cfg["mean"], device=device).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg["std"], device=device).view(1, -1, 1, 1), persistent=False)

    in_chans = 3

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 3:
            raise ValueError(f"{self.name} expects RGB images (B, 3, H, W), got {x.shape[1]} channels")
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bicubic", align_corners=False,
                              antialias=x.shape[-1] > self.input_size)
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> ClassifierOutput:
        f = self.model.encode_image(self.preprocess(x), normalize=True)            # (B, D)
        return ClassifierOutput(self.model.logit_scale.exp() * f @ self.weights.T, f)


def zero_shot_classifier(model, tokenizer, classes: Sequence[str], templates: Sequence[str] = ("{}",),
                         name: str = "clip") -> ClipClassifier:
    """A ClipClassifier whose class k is described by templates formatted with classes[k]."""
    return ClipClassifier(model, text_weights(model, tokenizer, classes, templates), classes, name)


def caption_templates(attribute: str) -> list[str]:
    """Every shapes caption with `attribute` left as '{}': the templates that marginalise the other
    attributes when CLIP classifies that one attribute zero-shot (128 of them)."""
    from itertools import product

    from .shapes import COLOUR_NAMES, SHAPES, SIZE_NAMES
    slots = {"size": SIZE_NAMES, "colour": COLOUR_NAMES, "shape": SHAPES, "background": COLOUR_NAMES}
    if attribute not in slots:
        raise ValueError(f"unknown attribute {attribute!r}; valid: {', '.join(slots)}")
    choices = [("{}",) if slot == attribute else values for slot, values in slots.items()]
    return ["a {} {} {} on a {} background".format(*c) for c in product(*choices)]


def attribute_accuracy(clf_model, tokenizer, images: torch.Tensor, labels: torch.Tensor, attribute: str,
                       batch_size: int = 500) -> float:
    """Zero-shot accuracy of a shapes CLIP on one attribute: classes are the attribute's values, each
    prompt averaged over every caption with the other attributes filled in."""
    from .models import predict
    from .shapes import COLOUR_NAMES, SHAPES, SIZE_NAMES
    values = {"shape": SHAPES, "colour": COLOUR_NAMES, "background": COLOUR_NAMES, "size": SIZE_NAMES}[attribute]
    clf = zero_shot_classifier(clf_model, tokenizer, values, caption_templates(attribute), name=attribute)
    return (predict(clf, images, batch_size).argmax(1) == labels).sum().item() / len(labels)


class PromptBundle:
    """What the sampler needs for text-to-image: CLIP zero-shot classifiers whose classes are prompts
    (one, or several for an ensemble), and an MAE. generate(PromptBundle(...), ["a goldfish", ...]) is
    the same loop as ever."""

    in_chans = 3

    def __init__(self, classifiers, mae, name: str = "prompts"):
        classifiers = list(classifiers) if isinstance(classifiers, (list, tuple)) else [classifiers]
        if classifiers[0].num_classes < 2:   # the cross-entropy over one class is 0: no gradient at all
            raise ValueError("give at least two prompts: the sampler pulls the image towards its prompt and away "
                             "from the others, e.g. ['a red fox in snow', 'a grey wolf in snow']")
        if any(c.class_names != classifiers[0].class_names for c in classifiers):
            raise ValueError("every classifier of an ensemble needs the same prompts, in the same order")
        self.classifiers, self.mae, self.name = classifiers, mae, name

    @property
    def class_names(self) -> tuple:
        return self.classifiers[0].class_names

    def class_index(self, prompt) -> int:
        if isinstance(prompt, int) and 0 <= prompt < len(self.class_names):
            return prompt
        lowered = [p.lower() for p in self.class_names]
        if isinstance(prompt, str) and prompt.strip().lower() in lowered:
            return lowered.index(prompt.strip().lower())
        shown = ", ".join(repr(p) for p in self.class_names[:8]) + (", ..." if len(self.class_names) > 8 else "")
        raise ValueError(f"unknown prompt {prompt!r}: this bundle's prompts are {shown}; build a PromptBundle "
                         "with the prompts you want to draw")


class TextBundle(PromptBundle):
    """Text-to-image on the shapes world: the prompts are every scene the world can caption without its
    size ("red star on a blue background": 8 colours x 8 shapes x 7 backgrounds, each averaged over
    "a small ..." and "a large ..."); clip_models: one shapes CLIP or several (an ensemble, as the paper
    ensembles classifiers). There are no real images of a new composition, so there are no class
    statistics: eq. 6 stays off."""

    def __init__(self, clip_models, tokenizer, mae, name: str = "shapes-clip"):
        from itertools import product

        from .shapes import COLOUR_NAMES, SHAPES, scene_prompt
        models = clip_models if isinstance(clip_models, (list, tuple)) else [clip_models]
        prompts = [scene_prompt(c, s, b) for c, s, b in product(COLOUR_NAMES, SHAPES, COLOUR_NAMES) if c != b]
        super().__init__([zero_shot_classifier(m, tokenizer, prompts, ("a small {}", "a large {}"), f"{name}-{i}")
                          for i, m in enumerate(models)], mae, name)

    def class_index(self, prompt) -> int:
        """A prompt ("a red star on a blue background", sizes and a final '.' allowed) or index -> class."""
        from .shapes import COLOUR_NAMES, SHAPES, SIZE_NAMES
        if isinstance(prompt, int) and 0 <= prompt < len(self.class_names):
            return prompt
        words = [w for w in str(prompt).lower().strip().rstrip(".").split() if w not in SIZE_NAMES]
        text = " ".join(words[1:] if words[:1] in (["a"], ["an"]) else words)
        if text in self.class_names:
            return self.class_names.index(text)
        raise ValueError(f"cannot read the prompt {prompt!r}; write '<colour> <shape> on a <colour> background' "
                         f"with two different colours from {', '.join(COLOUR_NAMES)} and a shape from "
                         f"{', '.join(SHAPES)}, e.g. 'a red star on a blue background'")


def world_token_ids() -> torch.Tensor:
    """(K,) sorted ids of every token the shapes world's captions use (padding, start and end included)."""
    from .shapes import SIZE_NAMES
    captions = [t.format(size) for t in caption_templates("size") for size in SIZE_NAMES]
    return _open_clip().get_tokenizer(SHAPES_CLIP)(captions).unique()


def prune_token_embedding(state: dict) -> dict:
    """A shapes CLIP's state dict with only the rows of its token embedding that the world's captions
    use: 'token_embedding.weight' (49408, D) becomes 'token_embedding.rows' (K, D) + 'token_embedding.ids'
    (K,). The other rows never enter a caption of this world; without them the file is 3 MB, not 9."""
    state = dict(state)
    ids = world_token_ids()
    state["token_embedding.rows"] = state.pop("token_embedding.weight")[ids]
    state["token_embedding.ids"] = ids
    return state


def expand_token_embedding(state: dict, vocab_size: int) -> dict:
    """The inverse of prune_token_embedding for loading: rows not stored are zero."""
    if "token_embedding.ids" not in state:
        return state
    state = dict(state)
    ids, rows = state.pop("token_embedding.ids").long(), state.pop("token_embedding.rows")
    full = torch.zeros(vocab_size, rows.shape[1], dtype=rows.dtype)
    full[ids] = rows
    state["token_embedding.weight"] = full
    return state


ATTRIBUTE_JUDGES = {"shape": "convnext", "colour": "colour_judge", "background": "background_judge"}


def load_attribute_judges(device="cpu", weights_dir=None) -> dict:
    """The shapes world's judges of a text-to-image picture, one per attribute; none takes part in
    generating: {"shape": ConvNeXt judge, "colour": ..., "background": ...}."""
    from . import zoo
    return {a: zoo.load_model("shapes", name, device, weights_dir) for a, name in ATTRIBUTE_JUDGES.items()}


def attribute_scores(judges: dict, images: torch.Tensor, triples: Sequence) -> dict:
    """Which attributes of each picture the judges read as asked. images (B, 3, H, W) in [0, 1];
    triples: (colour, shape, background) per image. Returns {attribute: (B,) 0/1, "shape+colour":
    (B,) 1 where both are right} (issue 5's measure)."""
    from .models import predict
    from .shapes import COLOUR_NAMES, SHAPES
    if len(triples) != len(images):
        raise ValueError(f"{len(images)} images but {len(triples)} (colour, shape, background) triples")
    want = {"shape": [SHAPES.index(s) for _, s, _ in triples],
            "colour": [COLOUR_NAMES.index(c) for c, _, _ in triples],
            "background": [COLOUR_NAMES.index(b) for _, _, b in triples]}
    right = {a: (predict(j, images).argmax(1).cpu() == torch.tensor(want[a])).float() for a, j in judges.items()}
    right["shape+colour"] = right["shape"] * right["colour"]
    return right


# the shapes world's CLIPs: the same recipe trained from 16 seeds (chapter 8 ensembles them; 1-7 were
# trained on a lent H100, 0 and 8-15 on the 2-core CPU)
SHAPES_CLIPS = ("clip",) + tuple(f"clip_seed{i}" for i in range(1, 16))
# the first 8 of them fine-tuned 3 epochs on adversarial images (PGD in an L2 ball of radius 0.5,
# `python -m cag_lib.train clip --init NAME --adv-eps 0.5 ...`): their input gradients point at
# visible features, so they guide the sampler better (chapter 8, "Robust CLIPs")
SHAPES_ROBUST_CLIPS = tuple(f"clip_adv{i}" for i in range(8))


def load_text_bundle(device="cpu", weights_dir=None, clip_dir=None, mae_dir=None, members=SHAPES_CLIPS) -> TextBundle:
    """The shapes world's CLIPs (`members`, zoo names; default all 16: an ensemble) and MAE as a
    TextBundle; clip_dir / mae_dir: weights folders of other runs of `python -m cag_lib.train` to take
    that model from instead (clip_dir: its one CLIP, named "clip")."""
    from . import zoo
    names = ("clip",) if clip_dir else tuple(members)
    return TextBundle([zoo.load_model("shapes", n, device, clip_dir or weights_dir) for n in names],
                      _open_clip().get_tokenizer(SHAPES_CLIP),
                      zoo.load_model("shapes", "mae", device, mae_dir or weights_dir))
