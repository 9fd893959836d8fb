"""The answer key for teachers: every chapter's exercises, each worked solution's prose with the
numbers of the run that made the page filled in, and the answer its code kept in <out>/answers.json.

    from answer_key import exercises, answer_key_markdown, student_copy
"""
from __future__ import annotations

import json
import re
from pathlib import Path

ITEM = re.compile(r"^(\d+)\. ", re.M)
SOLUTION_CODE = re.compile(r"# Solution to exercise (\d+)")              # a hidden code cell's first line
SOLUTION_PROSE = re.compile(r"admonition\}\s*Solution to exercise (\d+)")  # a dropdown's title


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
        m = SOLUTION_CODE.match(s) if c["cell_type"] == "code" else None
        if m and int(m[1]) in found:
            found[int(m[1])]["code"] = True
            found[int(m[1])]["hidden"] &= "hide-cell" in c.get("metadata", {}).get("tags", [])
        for n in SOLUTION_PROSE.findall(s) if c["cell_type"] == "markdown" else ():
            if int(n) in found:
                found[int(n)]["prose"] = True
                found[int(n)]["hidden"] &= ":class: dropdown" in s
    return found


GLUE = re.compile(r"\{glue:(text|md)\}`([^`:]+)(?::([^`]*))?`")


def glued(executed: Path) -> dict:
    """{name: (text/plain, text/markdown or None)} of every value an executed notebook glued."""
    values = {}
    for c in json.loads(executed.read_text())["cells"]:
        for o in c.get("outputs", []):
            name = o.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                data = o.get("data", {})
                prefix = o["metadata"]["scrapbook"].get("mime_prefix", "")
                values[name] = (data.get(prefix + "text/plain"), data.get(prefix + "text/markdown"))
    return values


def fill_glue(text: str, values: dict | None) -> str:
    """A solution's prose with its {glue:...} roles replaced by the run's values (formatted as the
    role asks), or by "[measured]" where no run is at hand."""
    def one(m):
        if values is None or m[2] not in values:
            return "[measured]"
        plain, markdown = values[m[2]]
        if m[1] == "md" and markdown is not None:
            return markdown
        raw = (plain or "").strip("'\"")
        if m[3]:
            try:
                return format(float(raw), m[3])
            except ValueError:
                return raw
        return raw
    return GLUE.sub(one, text)


def solutions_prose(notebook: Path) -> dict:
    """{n: the prose of the solution to exercise n} (inside its dropdown admonition)."""
    found = {}
    for c in json.loads(notebook.read_text())["cells"]:
        s = "".join(c["source"])
        m = re.search(r"admonition\}\s*Solution to exercise (\d+)\n:class: dropdown\n\n(.*?)\n```", s, re.S) \
            if c["cell_type"] == "markdown" else None
        if m:
            found[int(m[1])] = m[2].strip()
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


def answer_key_markdown(notebooks: list[Path], outputs: Path | None, executed: Path | None = None) -> str:
    """One section per chapter: each exercise, its worked solution's prose (numbers from the executed
    notebooks in `executed`, else "[measured]"), and the answer its code kept on that run
    (outputs/<chapter>/answers.json)."""
    lines = []
    for nb in notebooks:
        ex, prose = exercises(nb), solutions_prose(nb)
        run = executed / nb.name if executed is not None else None
        values = glued(run) if run is not None and run.exists() else None
        kept_path = outputs / nb.stem / "answers.json" if outputs is not None else None
        kept = json.loads(kept_path.read_text()) if kept_path is not None and kept_path.exists() else None
        title = json.loads(nb.read_text())["cells"][0]["source"][0].lstrip("# ").strip()
        lines += [f"## {title}", "", f"The chapter: {{doc}}`../notebooks/{nb.stem}`.", ""]
        for n, e in ex.items():
            lines += [f"**Exercise {n}.** {e['text']}", ""]
            if n in prose:
                lines += ["```{admonition} Worked solution", ":class: tip", "",
                          fill_glue(prose[n], values), "```", ""]
            if kept is not None and str(n) in kept:
                lines += [f"Kept answer (`answers.json`, key `{n}`): {_short(kept[str(n)])}", ""]
            elif kept is not None and e["code"]:
                lines += ["Kept answer: none.", ""]
    return "\n".join(lines).rstrip() + "\n"


def student_copy(notebook: Path, destination: Path) -> Path:
    """The notebook without its worked solutions (the "# Solution to exercise" code cells and the
    solution dropdowns): the copy to hand to students. Returns the path written."""
    nb = json.loads(notebook.read_text())
    keep = []
    for c in nb["cells"]:
        s = "".join(c["source"])
        if c["cell_type"] == "code" and SOLUTION_CODE.match(s):
            continue
        if c["cell_type"] == "markdown" and SOLUTION_PROSE.search(s):
            continue
        keep.append(c)
    nb["cells"] = keep
    destination.mkdir(parents=True, exist_ok=True)
    out = destination / notebook.name
    out.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return out


if __name__ == "__main__":
    import argparse
    p = argparse.ArgumentParser(description="Copies of chapter notebooks without their worked solutions, "
                                            "to hand to students.")
    p.add_argument("notebooks", nargs="+", type=Path)
    p.add_argument("--to", type=Path, required=True, help="the folder for the copies")
    a = p.parse_args()
    for n in a.notebooks:
        print(student_copy(n, a.to))
