"""What a chapter's prose says of the chapter's own run, checked in a way that suits who runs it.

A chapter checks two kinds of things. That its own loop equals cag_lib's on the same seed is a
plain `assert`: same machine, same kernels, so it holds anywhere. That the run bears out what the
prose says (an ordering, a gap) is a `claim`: the book's build runs every chapter with
`strict=True`, and there a claim that fails stops the build; a reader's run on other hardware
(another CPU rounds differently, and a long run amplifies it) prints one line saying that this
run differs from the book's, and the notebook goes on.

    >>> claim(acc["CaG"] > acc["eq1"], "CaG's pictures are recognised more often than eq. 1's", strict)
"""
from __future__ import annotations

__all__ = ["ClaimError", "claim", "difference_se"]


class ClaimError(AssertionError):
    """A claim of the book's prose that the book's own build did not bear out."""


def claim(holds: bool, what: str, strict: bool = False, measured: str = "") -> bool:
    """True if `holds`; else raise ClaimError (strict) or print one line and return False.
    what: the claim in the prose's words; measured: this run's numbers, for the message."""
    if holds:
        return True
    detail = f" ({measured})" if measured else ""
    if strict:
        raise ClaimError(f"the book says {what}, and this run does not show it{detail}")
    print(f"Note: this run differs from the book's: the book says {what}, and here it does not "
          f"hold{detail}. Another CPU or GPU rounds differently and a long run amplifies it; "
          "the rest of the notebook is unaffected.")
    return False


def difference_se(p: float, q: float, n: int, m: int | None = None) -> float:
    """The standard error of p - q, two accuracies measured on n and m (default n) independent
    images: a claim that one row beats another holds at a sample size only by a few of these."""
    m = m or n
    return (p * (1 - p) / n + q * (1 - q) / m) ** 0.5
