"""Text-to-image on the shapes world (chapter 8): its captions as prompts, its CLIPs, and the
judges that read a picture's attributes."""
from __future__ import annotations

from itertools import product
from typing import Sequence

import torch

from . import zoo
from .clip import SHAPES_CLIP, registered_open_clip, zero_shot_classifier
from .models import predict
from .prompts import PromptBundle
from .shapes import COLOUR_NAMES, SHAPES, SIZE_NAMES, scene_prompt


def caption_templates(attribute: str) -> list[str]:
    """Every shapes caption with `attribute` left as '{}': the templates that marginalise the other
    attributes when CLIP classifies that one attribute zero-shot (128 of them)."""
    slots = {"size": SIZE_NAMES, "colour": COLOUR_NAMES, "shape": SHAPES, "background": COLOUR_NAMES}
    if attribute not in slots:
        raise ValueError(f"unknown attribute {attribute!r}; valid: {', '.join(slots)}")
    choices = [("{}",) if slot == attribute else values for slot, values in slots.items()]
    return ["a {} {} {} on a {} background".format(*c) for c in product(*choices)]


def attribute_accuracy(clf_model, tokenizer, images: torch.Tensor, labels: torch.Tensor, attribute: str,
                       batch_size: int = 500) -> float:
    """Zero-shot accuracy of a shapes CLIP on one attribute: classes are the attribute's values, each
    prompt averaged over every caption with the other attributes filled in."""
    values = {"shape": SHAPES, "colour": COLOUR_NAMES, "background": COLOUR_NAMES, "size": SIZE_NAMES}[attribute]
    clf = zero_shot_classifier(clf_model, tokenizer, values, caption_templates(attribute), name=attribute)
    return (predict(clf, images, batch_size).argmax(1) == labels).sum().item() / len(labels)


class TextBundle(PromptBundle):
    """Text-to-image on the shapes world: the prompts are every scene the world can caption without its
    size ("red star on a blue background": 8 colours x 8 shapes x 7 backgrounds, each averaged over
    "a small ..." and "a large ..."); clip_models: one shapes CLIP or several (an ensemble, as the paper
    ensembles classifiers). There are no real images of a new composition, so there are no class
    statistics: eq. 6 stays off."""

    def __init__(self, clip_models, tokenizer, mae, name: str = "shapes-clip"):
        models = clip_models if isinstance(clip_models, (list, tuple)) else [clip_models]
        prompts = [scene_prompt(c, s, b) for c, s, b in product(COLOUR_NAMES, SHAPES, COLOUR_NAMES) if c != b]
        super().__init__([zero_shot_classifier(m, tokenizer, prompts, ("a small {}", "a large {}"), f"{name}-{i}")
                          for i, m in enumerate(models)], mae, name)

    def class_index(self, prompt) -> int:
        """A prompt ("a red star on a blue background", sizes and a final '.' allowed) or index -> class."""
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
    captions = [t.format(size) for t in caption_templates("size") for size in SIZE_NAMES]
    return registered_open_clip().get_tokenizer(SHAPES_CLIP)(captions).unique()


def prune_token_embedding(state: dict) -> dict:
    """A shapes CLIP's state dict with only the rows of its token embedding that the world's captions
    use: 'token_embedding.weight' (49408, D) becomes 'token_embedding.rows' (K, D) + 'token_embedding.ids'
    (K,). The other rows never enter a caption of this world; without them the file is 3 MB, not 9."""
    state = dict(state)
    ids = world_token_ids()
    state["token_embedding.rows"] = state.pop("token_embedding.weight")[ids]
    state["token_embedding.ids"] = ids
    return state


ATTRIBUTE_JUDGES = {"shape": "convnext", "colour": "colour_judge", "background": "background_judge"}


def load_attribute_judges(device="cpu", weights_dir=None) -> dict:
    """The shapes world's judges of a text-to-image picture, one per attribute; none takes part in
    generating: {"shape": ConvNeXt judge, "colour": ..., "background": ...}."""
    return {a: zoo.load_model("shapes", name, device, weights_dir) for a, name in ATTRIBUTE_JUDGES.items()}


def attribute_scores(judges: dict, images: torch.Tensor, triples: Sequence) -> dict:
    """Which attributes of each picture the judges read as asked. images (B, 3, H, W) in [0, 1];
    triples: (colour, shape, background) per image. Returns {attribute: (B,) 0/1, "shape+colour":
    (B,) 1 where both are right}."""
    if len(triples) != len(images):
        raise ValueError(f"{len(images)} images but {len(triples)} (colour, shape, background) triples")
    want = {"shape": [SHAPES.index(s) for _, s, _ in triples],
            "colour": [COLOUR_NAMES.index(c) for c, _, _ in triples],
            "background": [COLOUR_NAMES.index(b) for _, _, b in triples]}
    right = {a: (predict(j, images).argmax(1).cpu() == torch.tensor(want[a])).float() for a, j in judges.items()}
    right["shape+colour"] = right["shape"] * right["colour"]
    return right


# the shapes world's CLIPs: the same recipe trained from 16 seeds (chapter 8 ensembles them; 1-7 were
# trained on an NVIDIA H100, 0 and 8-15 on the 2-core CPU)
SHAPES_CLIPS = ("clip",) + tuple(f"clip_seed{i}" for i in range(1, 16))
# the first 8 of them fine-tuned 3 epochs on adversarial images (PGD in an L2 ball of radius 0.5,
# `python -m cag_lib.train clip --init NAME --adv-eps 0.5 ...`): their input gradients point at
# visible features, so they guide the sampler better (chapter 8, "Robust CLIPs")
SHAPES_ROBUST_CLIPS = tuple(f"clip_adv{i}" for i in range(8))


def load_text_bundle(device="cpu", weights_dir=None, clip_dir=None, mae_dir=None, members=SHAPES_CLIPS) -> TextBundle:
    """The shapes world's CLIPs (`members`, zoo names; default all 16: an ensemble) and MAE as a
    TextBundle; clip_dir / mae_dir: weights folders of other runs of `python -m cag_lib.train` to take
    that model from instead (clip_dir: its one CLIP, named "clip")."""
    names = ("clip",) if clip_dir else tuple(members)
    return TextBundle([zoo.load_model("shapes", n, device, clip_dir or weights_dir) for n in names],
                      registered_open_clip().get_tokenizer(SHAPES_CLIP),
                      zoo.load_model("shapes", "mae", device, mae_dir or weights_dir))
