"""Notebook markdown and book pages: no control characters, no backslash eaten by a JSON escape
(\\neq -> newline + "eq", \\text -> tab + "ext"), and code cells at most 88 columns."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PAGES = sorted((ROOT / "book").glob("*.md"))
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")          # everything but newline and tab... and tab
EATEN = re.compile(r"\$[^$\n]*\n(eq|abla|ext|rac|imes|heta|ho|au|u|eg|otin)\b[^$]*\$")


def cells(kind):
    for nb in NOTEBOOKS:
        for i, c in enumerate(json.loads(nb.read_text())["cells"]):
            if c["cell_type"] == kind:
                yield f"{nb.name} cell {i}", "".join(c["source"])


def problems(text: str) -> list[str]:
    out = [f"control character {m.group()!r} at {m.start()}" for m in CONTROL.finditer(text)]
    out += [f"tab at {m.start()}" for m in re.finditer("\t", text)]
    out += [f"backslash eaten before {m.group(1)!r}: {m.group()[:40]!r}" for m in EATEN.finditer(text)]
    return out


def test_the_checker_sees_eaten_backslashes():
    assert problems("pairs $i \\neq j$") == []
    assert problems("pairs $i \neq j$") and problems("$L_\text{dist}$") and problems("a\x08b")


@pytest.mark.parametrize("where, text", [*cells("markdown"), *((p.name, p.read_text()) for p in PAGES)])
def test_no_control_characters_or_eaten_backslashes(where, text):
    assert problems(text) == [], where


def test_code_lines_fit_in_88_columns():
    long = [f"{where}: {line[:50]!r}... ({len(line)})" for where, src in cells("code")
            for line in src.split("\n") if len(line) > 88]
    assert long == []
