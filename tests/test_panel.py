"""The comparison's stored evidence: every stored sample set re-scores to the numbers in the JSON."""
import json

import pytest

from cag_lib.panel import TEST_JUDGES, load_judges, load_sample_set, reference_features, results_dir, score_set
from cag_lib.zoo import load_bundle, read_manifest

PANEL = results_dir() / "panel_fmnist.json"


@pytest.fixture(scope="module")
def report():
    return json.loads(PANEL.read_text())


def test_test_judges_are_in_the_zoo_and_good_enough():
    entries = read_manifest()["fmnist"]
    archs = {entries[n]["arch"] for n in TEST_JUDGES["fmnist"]}
    assert len(archs) == 3 and entries["convnext"]["arch"] not in archs      # other families
    for n in TEST_JUDGES["fmnist"]:
        assert entries[n]["role"] == "test-judge" and entries[n]["metrics"]["test_accuracy"] >= 0.89, n


def test_every_row_has_a_thousand_images_and_every_number_for_every_judge(report):
    judges = ["validation", *TEST_JUDGES["fmnist"]]
    for name, row in report["rows"].items():
        assert row["n"] >= 1000, name
        for j in judges:
            assert set(row[j]) >= {"acc", "conf", "fd", "kid", "kid_std", "precision", "recall", "is"}, (name, j)


def test_stored_samples_rescore_to_the_stored_numbers(report):
    b = load_bundle("fmnist")
    judges = load_judges(b)
    refs = reference_features(judges)
    for name, row in report["rows"].items():
        x, y, _ = load_sample_set(name)
        assert len(y) == row["n"]
        again = score_set(judges, x, y, refs)
        for j, numbers in again.items():
            for k, v in numbers.items():
                assert v == pytest.approx(row[j][k], rel=1e-6, abs=1e-9), (name, j, k)
