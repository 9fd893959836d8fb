"""Text-to-image bundles for any CLIP: the prompts are the classes (chapter 8, the ImageNet scale)."""
from __future__ import annotations

from .bundles import lookup_class, no_stats


class PromptBundle:
    """What the sampler needs for text-to-image: CLIP zero-shot classifiers whose classes are prompts
    (one, or several for an ensemble), and an MAE. generate(PromptBundle(...), ["a goldfish", ...]) is
    the same loop as ever. With several prompts the loss is the cross-entropy (towards one prompt,
    away from the others); with a single prompt it is that prompt's negative logit."""

    def __init__(self, classifiers, mae, name: str = "prompts"):
        classifiers = list(classifiers) if isinstance(classifiers, (list, tuple)) else [classifiers]
        if any(c.class_names != classifiers[0].class_names for c in classifiers):
            raise ValueError("every classifier of an ensemble needs the same prompts, in the same order")
        self.classifiers, self.mae, self.name = classifiers, mae, name

    @property
    def class_names(self) -> tuple:
        return self.classifiers[0].class_names

    @property
    def in_chans(self) -> int:
        return 3

    def class_index(self, prompt) -> int:
        return lookup_class(prompt, self.class_names, "prompt", "build a PromptBundle with the prompts you want to draw")

    def feature_stats(self, sources) -> list:
        raise no_stats(self, "distribution_weight")   # no real images of a prompt

    def gram_stats(self, sources) -> list:
        raise no_stats(self, "gram_weight")
