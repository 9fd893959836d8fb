"""The book's one repository setting, `repository.url` in _config.yml, and what derives from it.

    python scripts/repository.py https://github.com/alice/cag-book   # set it: rewrites the notebooks
    python scripts/repository.py                                     # say what it is

Two things carry the repository's address: every notebook's Colab badge and its first code cell,
which installs cag_lib in Colab (Colab opens a notebook straight from GitHub, so the notebook must
carry the address itself); `stamp` writes both from the setting. The book's pages name it as
`{{repository_url}}` and `{{colab_url}}`, filled in when the book is built (`fill`). While the
setting is the placeholder, the notebooks have no badge and their first cell says there is nothing
to install from yet, and the built book has no launch links and says so.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# the value url has while the book has no public home, named next to the setting in _config.yml
PLACEHOLDER = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["placeholder"]
COLAB = "https://colab.research.google.com"
NOTICE = ("```{note}\nThis book has no public home yet: its Colab and repository links appear once "
          "`repository.url` in `_config.yml` names one (`python scripts/repository.py URL`).\n```\n")
BADGE = re.compile(r"\n*\[!\[Open In Colab\]\([^)]*colab-badge\.svg\)\]\([^)]*\)\n*")
INSTALL = '''import sys

if "google.colab" in sys.modules:  # Colab: cag_lib and the small worlds' weights
    %pip install -q "cag_lib[book] @ git+{url}"'''
NO_HOME = '''import sys

if "google.colab" in sys.modules:  # Colab installs cag_lib from the book's repository
    raise SystemExit("no public home yet: in a clone, pip install -e '.[book]'")'''


def configured(root: Path = ROOT) -> str:
    """The setting, without a trailing slash or .git."""
    return configured_from(yaml.safe_load((root / "_config.yml").read_text()))


def configured_from(config: dict) -> str:
    return re.sub(r"(\.git)?/*$", "", config["repository"]["url"])


def slug(url: str) -> str:
    """https://github.com/owner/name -> owner/name; anything else is a ValueError."""
    m = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+)", url.rstrip("/"))
    if not m:
        raise ValueError(f"repository.url {url!r}: give https://github.com/OWNER/NAME")
    return f"{m.group(1)}/{m.group(2)}"


def is_placeholder(url: str) -> bool:
    return url.rstrip("/") == PLACEHOLDER


def colab_url(url: str, branch: str = "main") -> str:
    """Where Colab opens the repository's files: append notebooks/<name>.ipynb."""
    return f"{COLAB}/github/{slug(url)}/blob/{branch}"


def launch_cells(url: str, notebook: str, title: str) -> tuple[str, str]:
    """A notebook's first markdown cell (its title, then the Colab badge) and its install cell."""
    if is_placeholder(url):
        return title, NO_HOME
    badge = (f"[![Open In Colab]({COLAB}/assets/colab-badge.svg)]"
             f"({colab_url(url)}/notebooks/{notebook})")
    return f"{title}\n\n{badge}", INSTALL.format(url=url)


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob("*.ipynb"))


def stamp_notebook(path: Path, url: str) -> bool:
    """Rewrite the notebook's badge and install cell for `url`; True if it changed."""
    nb = json.loads(path.read_text())
    head, install = nb["cells"][0], nb["cells"][1]
    if "google.colab" not in "".join(install["source"]):
        raise ValueError(f"{path.name}: the second cell should be the Colab install cell")
    title = BADGE.sub("", "".join(head["source"])).rstrip("\n")
    new = launch_cells(url, path.name, title)
    old = ("".join(head["source"]), "".join(install["source"]))
    for c, text in zip((head, install), new):
        c["source"] = text.splitlines(keepends=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return new != old


def stamp(new_url: str, root: Path = ROOT) -> list[Path]:
    """Set repository.url to new_url and rewrite every notebook's launch cells; returns those changed."""
    if not is_placeholder(new_url):
        slug(new_url)                                    # a clear error for anything but GitHub
    config = root / "_config.yml"
    text = config.read_text()
    config.write_text(re.sub(r"(?m)^(  url: )\S+", lambda m: m.group(1) + new_url.rstrip("/"), text, count=1))
    return [p for p in notebooks(root) if stamp_notebook(p, new_url.rstrip("/"))]


def stage_config(config: dict) -> dict:
    """The staged book's configuration: the repository button and jupyter-book's Colab launch button
    when the setting names a repository; neither while it is the placeholder."""
    config = {**config, "repository": {k: v for k, v in config["repository"].items() if k != "placeholder"}}
    published = not is_placeholder(configured_from(config))
    config["html"] = {**config.get("html", {}), "use_repository_button": published}
    if published:
        config["launch_buttons"] = {"colab_url": COLAB, "notebook_interface": "classic"}
    else:
        config.pop("launch_buttons", None)
    return config


def fill(page: str, url: str) -> str:
    """A book page with {{repository_url}} and {{colab_url}} filled in; with the placeholder, a Colab
    link in parentheses is dropped and the repository is named in words."""
    if is_placeholder(url):
        page = re.sub(r" ?\(\[link\]\(\{\{colab_url\}\}[^)]*\)\)", "", page)
        return page.replace("{{repository_url}}", "<repository address: none yet>")
    return page.replace("{{repository_url}}", url).replace("{{colab_url}}", colab_url(url))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        for p in stamp(sys.argv[1]):
            print("stamped", p.relative_to(ROOT))
    url = configured()
    print(f"repository.url = {url}" + (" (the placeholder: the book has no public home yet)"
                                       if is_placeholder(url) else ""))
