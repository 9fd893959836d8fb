import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def fmnist_test():
    from cag_lib.data import load_world
    return load_world("fmnist", "test")


@pytest.fixture(scope="session")
def shapes_test():
    from cag_lib.data import load_world
    return load_world("shapes", "test")


@pytest.fixture(scope="session")
def book_page():
    """book_page("ablation.md") -> (the page as written, the page as the build fills it: its {{name}}
    tables and {{json:...}} quotes, scripts/build_book.py's generated), each page filled once."""
    import functools
    from pathlib import Path

    import build_book                      # scripts/ is on pytest's pythonpath (pyproject.toml)

    @functools.cache
    def page(name: str) -> tuple[str, str]:
        raw = (Path(__file__).parents[1] / "book" / name).read_text()
        return raw, build_book.generated(raw)
    return page
