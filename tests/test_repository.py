"""One repository setting (_config.yml repository.url): every link of this project derives from it."""
import re
import shutil
from pathlib import Path

import pytest
import yaml

from repository import (PLACEHOLDER, configured, is_placeholder, slug, stage_config, stamp, stamped_files,
                        unpublished)

ROOT = Path(__file__).resolve().parents[1]
LINKS = re.compile(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/|git\+https://github\.com/([\w.-]+/[\w.-]+?)[\"\s@\\]"
                   r"|git clone https://github\.com/([\w.-]+/[\w.-]+)")


def tracked_text_files():
    skip = {".git", "_build", "outputs", "runs", ".pytest_cache", "cag_lib.egg-info", "weights", "results"}
    for p in ROOT.rglob("*"):
        if p.is_file() and not skip & set(p.relative_to(ROOT).parts) and p.suffix in (
                ".md", ".ipynb", ".py", ".yml", ".yaml", ".toml", ".txt", ".sh", ".cfg"):
            yield p


def test_every_project_link_uses_the_setting():
    want = slug(configured())
    found = {}
    for p in tracked_text_files():
        if p.name in ("repository.py", "test_repository.py"):   # examples of other names
            continue
        for m in LINKS.finditer(p.read_text(errors="replace")):
            found.setdefault(next(g for g in m.groups() if g), set()).add(p.relative_to(ROOT).as_posix())
    assert set(found) <= {want}, {k: v for k, v in found.items() if k != want}
    assert found.get(want), "no Colab or install link found at all"


def test_the_placeholder_or_the_name_appears_only_in_the_stamped_files():
    name = slug(configured())
    allowed = {p.relative_to(ROOT).as_posix() for p in stamped_files()} | {"_config.yml"}
    elsewhere = [p.relative_to(ROOT).as_posix() for p in tracked_text_files()
                 if name in p.read_text(errors="replace") and p.relative_to(ROOT).as_posix() not in allowed
                 and p.name not in ("repository.py", "test_repository.py")]
    assert elsewhere == []


def test_stamping_rewrites_every_link_and_back(tmp_path):
    for p in [ROOT / "_config.yml", *stamped_files()]:
        dst = tmp_path / p.relative_to(ROOT)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dst)
    old = configured(tmp_path)
    stamp("https://github.com/alice/cag-book", tmp_path)
    assert configured(tmp_path) == "https://github.com/alice/cag-book"
    texts = {p.name: p.read_text() for p in stamped_files(tmp_path)}
    assert all(slug(old) not in t for t in texts.values())
    assert "colab.research.google.com/github/alice/cag-book/blob/main/notebooks/ch2_eq1.ipynb" in texts["ch2_eq1.ipynb"]
    assert "git clone https://github.com/alice/cag-book && cd cag-book" in texts["running.md"]
    stamp(old, tmp_path)
    assert [p.read_text() for p in stamped_files(tmp_path)] == [p.read_text() for p in stamped_files()]
    with pytest.raises(ValueError, match="give https://github.com/OWNER/NAME"):
        stamp("gitlab.com/alice/cag", tmp_path)


def test_an_unpublished_book_shows_no_launch_links_and_a_published_one_gets_colab():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    placeholder = stage_config({**config, "repository": {**config["repository"], "url": PLACEHOLDER}})
    assert placeholder["html"]["use_repository_button"] is False and "launch_buttons" not in placeholder
    real = stage_config({**config, "repository": {**config["repository"], "url": "https://github.com/alice/x"}})
    assert real["html"]["use_repository_button"] is True
    assert real["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    badge = ("# 2. Title\n\n[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
             "(https://colab.research.google.com/github/OWNER/REPO/blob/main/notebooks/ch2_eq1.ipynb)\n")
    assert unpublished(badge) == "# 2. Title\n\n"
    assert "colab" not in unpublished("the notebook ([link](https://colab.research.google.com/github/a/b/x.ipynb)).")
    assert is_placeholder(PLACEHOLDER + "/") and not is_placeholder("https://github.com/alice/x")


def test_one_list_of_dependencies_and_a_book_extra_the_notebooks_install():
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    book = " ".join(project["optional-dependencies"]["book"])
    assert all(p in book for p in ("notebook", "ipywidgets", "papermill", "jupyter-book"))
    for req in ("requirements.txt", "requirements-dev.txt"):   # no second list to drift
        lines = [ln for ln in (ROOT / req).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        assert lines and all(ln.startswith("-e .") for ln in lines), req
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert "cag_lib[book] @ git+https://github.com/" in nb.read_text(), nb.name
