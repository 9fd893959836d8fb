"""One repository setting (_config.yml repository.url): every link of this project derives from it."""
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from repository import (PLACEHOLDER, configured, fill, is_placeholder, launch_cells, notebooks, slug, stage_config,
                        stamp)

ROOT = Path(__file__).resolve().parents[1]
LINKS = re.compile(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/|git\+https://github\.com/([\w.-]+/[\w.-]+?)[\"\s@\\]"
                   r"|git clone https://github\.com/([\w.-]+/[\w.-]+)")


def tracked_text_files():
    skip = {".git", "_build", "outputs", "runs", ".pytest_cache", "cag_lib.egg-info", "weights", "results",
            "node_modules"}
    for p in ROOT.rglob("*"):
        if p.is_file() and not skip & set(p.relative_to(ROOT).parts) and p.suffix in (
                ".md", ".ipynb", ".py", ".yml", ".yaml", ".toml", ".txt", ".sh", ".cfg"):
            yield p


def test_the_address_appears_only_in_the_setting_and_the_notebooks_it_stamps():
    """The configured owner/name (or the placeholder) nowhere but _config.yml and, once it names a
    repository, the notebooks' launch cells; every project link uses the setting."""
    url = configured()
    allowed = {"_config.yml"} | (set() if is_placeholder(url) else {p.relative_to(ROOT).as_posix() for p in notebooks()})
    found, elsewhere = set(), []
    for p in tracked_text_files():
        name = p.relative_to(ROOT).as_posix()
        if p.name == "test_repository.py":                       # examples of other names
            continue
        text = p.read_text(errors="replace")
        found |= {next(g for g in m.groups() if g) for m in LINKS.finditer(text)}
        if slug(url) in text and name not in allowed:
            elsewhere.append(name)
    assert elsewhere == [] and found <= ({slug(url)} - ({slug(PLACEHOLDER)} if is_placeholder(url) else set()))


def test_every_notebook_carries_the_launch_cells_of_the_setting():
    url = configured()
    for p in notebooks():
        cells = json.loads(p.read_text())["cells"]
        head, install = "".join(cells[0]["source"]), "".join(cells[1]["source"])
        assert (head, install) == launch_cells(url, p.name, head.split("\n")[0]), p.name


def test_stamping_writes_every_launch_cell_and_back(tmp_path):
    (tmp_path / "notebooks").mkdir()
    for p in [ROOT / "_config.yml", *notebooks()]:
        shutil.copy(p, tmp_path / p.relative_to(ROOT))
    old = configured(tmp_path)
    stamp("https://github.com/alice/cag-book", tmp_path)
    assert configured(tmp_path) == "https://github.com/alice/cag-book"
    ch2 = (tmp_path / "notebooks" / "ch2_eq1.ipynb").read_text()
    assert "colab.research.google.com/github/alice/cag-book/blob/main/notebooks/ch2_eq1.ipynb" in ch2
    assert "cag_lib[book] @ git+https://github.com/alice/cag-book" in ch2
    stamp(old, tmp_path)
    assert [p.read_text() for p in notebooks(tmp_path)] == [p.read_text() for p in notebooks()]
    assert (tmp_path / "_config.yml").read_text() == (ROOT / "_config.yml").read_text()
    with pytest.raises(ValueError, match="give https://github.com/OWNER/NAME"):
        stamp("gitlab.com/alice/cag", tmp_path)


def test_an_unpublished_book_shows_no_launch_links_and_a_published_one_gets_colab():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    placeholder = stage_config({**config, "repository": {**config["repository"], "url": PLACEHOLDER}})
    assert placeholder["html"]["use_repository_button"] is False and "launch_buttons" not in placeholder
    real = stage_config({**config, "repository": {**config["repository"], "url": "https://github.com/alice/x"}})
    assert real["html"]["use_repository_button"] is True
    assert real["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert "placeholder" not in real["repository"] and "placeholder" in config["repository"]   # ours, not the theme's
    page = "Open it in Colab ([link]({{colab_url}}/notebooks/a.ipynb)).\n\n    git clone {{repository_url}} b\n"
    assert fill(page, PLACEHOLDER) == "Open it in Colab.\n\n    git clone <repository address: none yet> b\n"
    assert fill(page, "https://github.com/alice/x") == (
        "Open it in Colab ([link](https://colab.research.google.com/github/alice/x/blob/main/notebooks/a.ipynb))."
        "\n\n    git clone https://github.com/alice/x b\n")
    assert launch_cells(PLACEHOLDER, "a.ipynb", "# A")[0] == "# A"   # no badge without a home
    assert is_placeholder(PLACEHOLDER + "/") and not is_placeholder("https://github.com/alice/x")


def test_one_list_of_dependencies_and_a_book_extra_the_notebooks_install():
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    book = " ".join(project["optional-dependencies"]["book"])
    assert all(p in book for p in ("notebook", "ipywidgets", "papermill", "jupyter-book"))
    for req in ("requirements.txt", "requirements-dev.txt"):   # no second list to drift
        lines = [ln for ln in (ROOT / req).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        assert lines and all(ln.startswith("-e .") for ln in lines), req
    import repository
    assert '"cag_lib[book] @ git+{url}"' in repository.INSTALL     # what every Colab cell installs
    assert 'pip install -e ".[book]"' in (ROOT / "README.md").read_text()
