"""The book's one repository setting, `repository.url` in _config.yml, and what derives from it.

    python scripts/repository.py https://github.com/alice/cag-book   # set it: stamps every link
    python scripts/repository.py                                     # say what it is

The Colab badges and install cells of the notebooks, the README's install line and the running and
ImageNet pages carry the repository's owner/name; `stamp` rewrites them all from the setting (the
notebooks must carry it themselves: Colab opens them straight from GitHub). While the setting is
the placeholder, the built book says that it has no public home yet and shows no launch links
(`stage_config`, `unpublished`); set it once and jupyter-book adds its own Colab launch button.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER = "https://github.com/OWNER/REPO"
COLAB = "https://colab.research.google.com"
NOTICE = ("```{note}\nThis book has no public home yet: its Colab and repository links appear once "
          "`repository.url` in `_config.yml` names one (`python scripts/repository.py URL`).\n```\n")
BADGE = re.compile(r"^.*colab-badge\.svg.*\n?", re.M)
COLAB_LINK = re.compile(r"\(\[link\]\(https://colab\.research\.google\.com/[^)]*\)\)")


def stamped_files(root: Path = ROOT) -> list[Path]:
    """Every file that carries the repository's owner/name."""
    return [*sorted((root / "notebooks").glob("*.ipynb")), root / "README.md", root / "book" / "running.md",
            root / "book" / "imagenet.md"]


def configured(root: Path = ROOT) -> str:
    """The setting, without a trailing slash or .git."""
    url = yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"]
    return re.sub(r"(\.git)?/*$", "", url)


def slug(url: str) -> str:
    """https://github.com/owner/name -> owner/name; anything else is a ValueError."""
    m = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+)", url.rstrip("/"))
    if not m:
        raise ValueError(f"repository.url {url!r}: give https://github.com/OWNER/NAME")
    return f"{m.group(1)}/{m.group(2)}"


def is_placeholder(url: str) -> bool:
    return url.rstrip("/") == PLACEHOLDER


def stamp(new_url: str, root: Path = ROOT) -> list[Path]:
    """Set repository.url to new_url and rewrite owner/name in every stamped file; returns those changed."""
    old, new = slug(configured(root)), slug(new_url)
    changed = []
    for path in [root / "_config.yml", *stamped_files(root)]:
        text = path.read_text()
        out = (text.replace(f"github.com/{old}", f"github.com/{new}")
                   .replace(f"colab.research.google.com/github/{old}/", f"colab.research.google.com/github/{new}/"))
        out = out.replace(f"&& cd {old.split('/')[1]}", f"&& cd {new.split('/')[1]}")
        if out != text:
            path.write_text(out)
            changed.append(path)
    return changed


def stage_config(config: dict) -> dict:
    """The staged book's configuration: the repository button and jupyter-book's Colab launch button
    when the setting names a repository; neither while it is the placeholder."""
    config = dict(config)
    published = not is_placeholder(configured_from(config))
    config["html"] = {**config.get("html", {}), "use_repository_button": published}
    if published:
        config["launch_buttons"] = {"colab_url": COLAB, "notebook_interface": "classic"}
    else:
        config.pop("launch_buttons", None)
    return config


def configured_from(config: dict) -> str:
    return re.sub(r"(\.git)?/*$", "", config["repository"]["url"])


def unpublished(text: str) -> str:
    """A page or a notebook's markdown without its Colab badge and Colab links."""
    return COLAB_LINK.sub("", BADGE.sub("", text))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        for p in stamp(sys.argv[1]):
            print("stamped", p.relative_to(ROOT))
    url = configured()
    print(f"repository.url = {url}" + (" (the placeholder: the book has no public home yet)"
                                       if is_placeholder(url) else ""))
