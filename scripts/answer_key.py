"""The answer key for teachers: every chapter's exercises, where each worked solution is, and the
answer each solution's code kept in <out>/answers.json on the run that built the book.

    from answer_key import exercises, answer_key_markdown
"""
from __future__ import annotations

import json
import re
from pathlib import Path

ITEM = re.compile(r"^(\d+)\. ", re.M)


def exercises(notebook: Path) -> dict:
    """{n: {"text": the exercise, "code": has a hidden solution cell, "prose": has a solution
    admonition}} of a chapter notebook's "## Exercises" section."""
    cells = json.loads(notebook.read_text())["cells"]
    found = {}
    for c in cells:
        s = "".join(c["source"])
        if c["cell_type"] == "markdown" and "## Exercises" in s:
            part = s.split("## Exercises", 1)[1]
            starts = list(ITEM.finditer(part))
            for m, nxt in zip(starts, starts[1:] + [None]):
                text = part[m.end():nxt.start() if nxt else len(part)]
                found[int(m[1])] = {"text": " ".join(text.split()), "code": False, "prose": False,
                                    "hidden": True}
    for c in cells:
        s = "".join(c["source"])
        m = re.match(r"# Solution to exercise (\d+)", s) if c["cell_type"] == "code" else None
        if m and int(m[1]) in found:
            found[int(m[1])]["code"] = True
            found[int(m[1])]["hidden"] &= "hide-cell" in c.get("metadata", {}).get("tags", [])
        for n in re.findall(r"admonition\}\s*Solution to exercise (\d+)", s) if c["cell_type"] == "markdown" else ():
            if int(n) in found:
                found[int(n)]["prose"] = True
                found[int(n)]["hidden"] &= ":class: dropdown" in s
    return found


def _short(v, digits: int = 3) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    if isinstance(v, dict):
        items = list(v.items())
        text = "; ".join(f"{k}: {_short(x)}" for k, x in items[:6])
        return text + ("; ..." if len(items) > 6 else "")
    if isinstance(v, list):
        return "[" + ", ".join(_short(x) for x in v[:6]) + (", ..." if len(v) > 6 else "") + "]"
    return str(v)


def answer_key_markdown(notebooks: list[Path], outputs: Path) -> str:
    """One section per chapter: each exercise, its worked solution, and the answer this build's run
    kept (outputs/<chapter>/answers.json), or a note where the chapter was not run."""
    lines = []
    for nb in notebooks:
        ex = exercises(nb)
        kept_path = outputs / nb.stem / "answers.json"
        kept = json.loads(kept_path.read_text()) if kept_path.exists() else None
        lines += [f"## {{doc}}`../notebooks/{nb.stem}`", ""]
        for n, e in ex.items():
            lines.append(f"{n}. {e['text']}")
            what = "code and prose" if e["code"] and e["prose"] else "prose" if e["prose"] else "code"
            lines.append(f"   - Worked solution ({what}): \"Solution to exercise {n}\" in the chapter.")
            if kept is None:
                lines.append("   - Kept answer: the chapter was not run in this build.")
            elif str(n) in kept:
                lines.append(f"   - Kept answer (`answers.json`, key `{n}`): {_short(kept[str(n)])}")
            else:
                lines.append("   - A reasoned answer: nothing to measure.")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
