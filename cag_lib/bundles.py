"""What the sampler needs of a bundle, written down once, and the one class lookup they share.

A small world's `zoo.Bundle`, the `imagenet.ImageNetBundle` and the text bundles
(`prompts.PromptBundle`, `shapes_text.TextBundle`) all satisfy `BundleLike`; `generate` reads nothing
else of them.
"""
from __future__ import annotations

from typing import Callable, Protocol, Sequence, runtime_checkable

import torch


@runtime_checkable
class BundleLike(Protocol):
    name: str
    classifiers: list        # source classifiers: x (B, C, H, W) in [0, 1] -> ClassifierOutput
    mae: torch.nn.Module     # g: reconstruct(x, mask_ratio, noise), mask_noise, img_size, patch_size

    @property
    def class_names(self) -> tuple: ...

    @property
    def in_chans(self) -> int: ...

    def class_index(self, c) -> int:
        """A class name, index (or whatever the bundle reads, e.g. a prompt) -> its index."""

    def feature_stats(self, sources: Sequence[int]) -> list:
        """Eq. 6's (mean (K, D), std (K, D)) per source, measured on real data; a clear error if none."""

    def gram_stats(self, sources: Sequence[int]) -> list:
        """The Gram term's (K, C, C) class matrices per source; a clear error if none."""


def lookup_class(c, names: Sequence[str], what: str, hint: str = "", aliases: dict | None = None,
                 describe: Callable[[int], str] | None = None) -> int:
    """c as an index (0 <= c < K), a name (case and outer spaces ignored) or an alias (a dict: key ->
    an index, or a tuple of the indices it names) -> the index; otherwise one ValueError that lists
    (a few of) the valid names. A name that fits several classes ("crane": the bird and the machine)
    is refused and its classes listed (describe(i) says which is which), never resolved by guessing."""
    if isinstance(c, int) and not isinstance(c, bool) and 0 <= c < len(names):
        return c
    if isinstance(c, str):
        key = c.strip().lower()
        found = [i for i, n in enumerate(names) if n.lower() == key]
        alias = (aliases or {}).get(key, ())
        found = sorted(set(found) | set((alias,) if isinstance(alias, int) else alias))
        if len(found) == 1:
            return found[0]
        if found:
            say = describe or (lambda i: f"{i} ({names[i]})")
            raise ValueError(f"{what} {c!r} is ambiguous: it names {' and '.join(say(i) for i in found)}; "
                             f"give one of them")
    shown = ", ".join(repr(n) for n in names[:10]) + (", ..." if len(names) > 10 else "")
    raise ValueError(f"unknown {what} {c!r}; valid: {shown} or an index 0-{len(names) - 1}"
                     + (f"; {hint}" if hint else ""))


def no_stats(bundle, what: str):
    """The error for a bundle without real data to measure statistics on."""
    return ValueError(f"{what} > 0 needs class statistics of real images, and bundle {bundle.name!r} has "
                      f"none: pass class_stats= (cag_lib.stats.class_feature_stats), or set {what}=0")
