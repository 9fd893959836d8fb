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
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

from .errors import require_hub
from .files import read_or_explain
from .models import ClassifierOutput

CONFIG_DIR = Path(__file__).parent / "clip_configs"
SHAPES_CLIP = "cag-shapes-clip"
IMAGENET_CLIP = ("ViT-B-32", "laion2b_s34b_b79k")


def registered_open_clip():
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
    open_clip = registered_open_clip()
    if pretrained and checkpoint is None:
        require_hub(f"open_clip {name} ({pretrained})")
    with _quiet():
        model = open_clip.create_model(name, pretrained=pretrained if checkpoint is None else None, device=device)
    if checkpoint is not None:
        model.load_state_dict(load_state(checkpoint))
    return model.eval().requires_grad_(False), open_clip.get_tokenizer(name)


def load_state(path) -> dict:
    def read(p: Path) -> dict:
        if p.suffix == ".safetensors":
            return {k: v.float() for k, v in load_file(str(p)).items()}
        return torch.load(p, map_location="cpu", weights_only=True)
    return read_or_explain(Path(path), read, "a CLIP state dict (.safetensors or torch)",
                           "write it again (torch.save(model.state_dict(), path)) or give another file")


def text_weights(model, tokenizer, classes: Sequence[str], templates: Sequence[str] = ("{}",)) -> torch.Tensor:
    """Zero-shot classifier weights (K, D): per class, the normalised mean of the normalised text
    embeddings of its prompts (open_clip's build_zero_shot_classifier)."""
    from open_clip.zero_shot_classifier import build_zero_shot_classifier
    device = next(model.parameters()).device
    return build_zero_shot_classifier(model, tokenizer, list(classes), list(templates), num_classes_per_batch=64,
                                      device=device).T.contiguous()


def normalise_images(model, x: torch.Tensor) -> torch.Tensor:
    """Images (B, 3, H, W) in [0, 1] at the model's input size -> its normalised input."""
    cfg = registered_open_clip().get_model_preprocess_cfg(model)
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
        cfg = registered_open_clip().get_model_preprocess_cfg(model)
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
    check_prompts(tokenizer, [t.format(c) for c in classes for t in templates[:1]],
                  getattr(model, "known_tokens", None))
    weights = text_weights(model, tokenizer, classes, templates)
    check_distinct(classes, weights)
    return ClipClassifier(model, weights, classes, name)


def check_distinct(classes: Sequence[str], weights: torch.Tensor) -> None:
    """Two prompts that CLIP reads as one text (the same words, or the same embedding) give the
    sampler nothing to tell them apart by: every picture would score the same on both."""
    seen = {}
    for i, c in enumerate(classes):
        key = " ".join(str(c).lower().split())
        if key in seen:
            raise ValueError(f"the prompt {c!r} is given twice (as prompt {seen[key]} and {i}); give each "
                             "prompt once")
        seen[key] = i
    sim = weights.float() @ weights.float().T                               # (K, K), unit rows
    sim.fill_diagonal_(-1)
    i, j = divmod(int(sim.argmax()), len(classes))
    if sim[i, j] > 1 - 1e-6:
        raise ValueError(f"this CLIP reads the prompts {classes[i]!r} and {classes[j]!r} as the same text "
                         "(identical embeddings), so no picture can match one more than the other; "
                         "change or drop one")


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


def check_prompts(tokenizer, prompts: Sequence[str], known_tokens: torch.Tensor | None = None) -> None:
    """An empty prompt, a word the CLIP has no trained embedding for (known_tokens: the token ids it
    was trained on, where it says), or a prompt longer than the text tower reads (open_clip would cut
    it without a word) is a ValueError that names it."""
    for p in prompts:
        if not str(p).strip():
            raise ValueError("an empty prompt: describe the picture, e.g. 'a red fox in snow'")
    encode = getattr(tokenizer, "encode", None)
    if encode is None:
        return
    if known_tokens is not None:
        known = set(known_tokens.tolist())
        for p in prompts:
            unknown = [w for w in dict.fromkeys(re.findall(r"\w+", str(p))) if not set(encode(w)) <= known]
            if unknown:
                raise ValueError(f"this CLIP never saw the words {', '.join(map(repr, unknown))} (in the prompt "
                                 f"{p[:60]!r}): it has no trained embedding for them, so the prompt cannot "
                                 f"guide a picture; use the words of its captions: {known_words(tokenizer, known)}")
    length = getattr(tokenizer, "context_length", None)
    if length is None:
        return
    for p in prompts:
        n = len(encode(p)) + 2                                  # + start and end tokens
        if n > length:
            raise ValueError(f"the prompt {p[:60]!r}... is {n} tokens and CLIP reads {length}: shorten it")


def known_words(tokenizer, known: set) -> str:
    """The words whose tokens a CLIP with a pruned vocabulary knows, for its error messages."""
    decode = getattr(tokenizer, "decode", None)
    if decode is None:
        return f"{len(known)} tokens"
    words = sorted({decode([t]).strip() for t in known} - {""})
    return ", ".join(w for w in words if w.isalpha())
