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
