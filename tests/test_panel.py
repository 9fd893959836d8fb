"""The comparison's stored evidence: every stored sample set re-scores to the numbers in the JSON."""
import json
from pathlib import Path

import pytest
import torch

from cag_lib.panel import (
    MINUS_ONE,
    NOT_TRAINED,
    TEST_JUDGES,
    ablation_table,
    load_judges,
    load_sample_set,
    minus_one_table,
    reference_features,
    results_dir,
    score_set,
)
from cag_lib.zoo import load_bundle, read_manifest

PANEL = results_dir() / "panel_fmnist.json"
ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def report():
    return json.loads(PANEL.read_text())


def test_test_judges_are_in_the_zoo_and_good_enough():
    """At least six test judges: networks of three families other than the validation judge's, with
    no, light, strong and degrading augmentation, and one that is no network at all."""
    entries = read_manifest()["fmnist"]
    networks = [n for n in TEST_JUDGES["fmnist"] if n not in NOT_TRAINED]
    assert len(TEST_JUDGES["fmnist"]) >= 6 and NOT_TRAINED & set(TEST_JUDGES["fmnist"])
    archs = {entries[n]["arch"] for n in networks}
    assert len(archs) >= 3 and entries["convnext"]["arch"] not in archs      # other families
    augment = {entries[n]["training"]["config"]["augment"] for n in networks}
    assert augment >= {"none", "light", "strong", "degrade"}
    for n in networks:
        assert entries[n]["role"] == "test-judge" and entries[n]["metrics"]["test_accuracy"] >= 0.88, n


def test_the_shapes_test_judges_are_in_the_zoo_and_good_enough():
    """The shapes world's test judges: other families than its ConvNeXt, light and degrading
    augmentation, each at least 0.9 on the clean test split."""
    entries = read_manifest()["shapes"]
    names = TEST_JUDGES["shapes"]
    assert len(names) >= 4 and entries["convnext"]["arch"] not in {entries[n]["arch"] for n in names}
    assert {entries[n]["training"]["config"]["augment"] for n in names} >= {"light", "degrade"}
    for n in names:
        assert entries[n]["role"] == "test-judge" and entries[n]["metrics"]["test_accuracy"] >= 0.9, n


def test_the_judge_card_is_measured_again():
    """Each shapes judge's accuracy on clean, blurred and noisy real shapes, measured again on the first
    300 of the 1,000 stored (three standard errors of 300 images, plus 0.01)."""
    from cag_lib.panel import judge_card
    from cag_lib.zoo import load_model
    stored = json.loads((PANEL.parent / "shapes_conditional.json").read_text())["judge_card"]
    names = ("judge_cnn", "judge_resnet_d")         # the most and the least fooled by noise
    again = judge_card({n: load_model("shapes", n) for n in names}, "shapes", n=300)
    for n in names:
        for corruption, p in stored[n].items():
            assert abs(again[n][corruption] - p) <= 3 * (p * (1 - p) / 300) ** 0.5 + 0.01, (n, corruption)
    # the page: the CNN trained without degraded images calls nearly every noisy shape a cross
    from cag_lib.data import load_world, world_classes
    from cag_lib.models import predict
    from cag_lib.panel import CORRUPTIONS
    x, _ = load_world("shapes", "test", n=300)
    noisy = CORRUPTIONS["noisy (sigma 0.15)"](x, torch.Generator().manual_seed(0))
    called = predict(load_model("shapes", "judge_cnn"), noisy).argmax(1)
    assert (called == world_classes("shapes").index("cross")).float().mean() > 0.9


def test_every_row_has_a_thousand_images_and_every_number_for_every_judge(report):
    judges = ["validation", *TEST_JUDGES["fmnist"]]
    for name, row in report["rows"].items():
        assert row["n"] >= 1000 and 0 <= row["cas"] <= 1, name
        for j in judges:
            assert set(row[j]) >= {"acc", "conf", "fd", "kid", "kid_std", "precision", "recall", "is"}, (name, j)


@pytest.mark.kernel_paths
def test_stored_samples_rescore_to_the_stored_numbers(report):
    """Every stored set, scored again here, gives the stored numbers within each number's tolerance,
    measured across CPU kernel paths (tests/data/kernel_spread.json, scripts/kernel_spread.py panel)."""
    spread = json.loads((ROOT / "tests" / "data" / "kernel_spread.json").read_text())["panel_rescore"]
    b = load_bundle("fmnist")
    judges = load_judges(b)
    refs = reference_features(judges)
    for name, row in report["rows"].items():
        x, y, _ = load_sample_set(name)
        assert len(y) == row["n"]
        again = score_set(judges, x, y, refs)
        for j, numbers in again.items():
            for k, v in numbers.items():
                assert abs(v - row[j][k]) <= spread[k]["tol"], (name, j, k, v, row[j][k], spread[k]["tol"])


def test_ablation_page_pastes_the_panel_table_and_its_claims_hold(report, book_page):
    """book/ablation.md shows `python benchmarks/panel.py table` and says, in words, what it shows."""
    page, filled = book_page("ablation.md")
    assert "{{panel_ablation}}" in page and ablation_table(report) in filled
    rows = report["rows"]
    cag, x, eq1 = rows["CaG full, 250 steps, g(x)"], rows["CaG full, 250 steps, x"], rows["eq. 1"]
    classic, greal = rows["classic (every prior, no MAE)"], rows["g(real)"]
    tests = list(TEST_JUDGES["fmnist"])
    # "g(x) is recognised far more often than eq. 1's by every judge, and than x by every judge but two"
    assert all(cag[j]["acc"] > eq1[j]["acc"] + 0.3 for j in ["validation", *tests])
    x_better = [j for j in tests if x[j]["acc"] >= cag[j]["acc"]]
    assert sorted(x_better) == ["judge_cnn", "knn_pixels"] and all(x[j]["acc"] - cag[j]["acc"] < 0.05 for j in x_better)
    # "the validation judge puts CaG well ahead of the classic baseline; the test judges by less"
    gap_val = cag["validation"]["acc"] - classic["validation"]["acc"]
    gap_test = cag["test_mean"]["acc"] - classic["test_mean"]["acc"]
    assert gap_val > 0.1 and 0 < gap_test < gap_val / 2
    prefer_classic = {j for j in tests if classic[j]["acc"] > cag[j]["acc"] + 0.02}
    prefer_cag = {j for j in tests if cag[j]["acc"] > classic[j]["acc"] + 0.02}
    assert prefer_classic == {"judge_cnn", "judge_cnn_plain"}
    assert prefer_cag == {"judge_mixer", "judge_cnn_degrade", "knn_pixels"}   # and the ResNet-D: about equal
    # "the test judges split on FD: half find classic closer, half CaG; both far above g(real) for all"
    closer_classic = sum(classic[j]["fd"] < cag[j]["fd"] for j in tests)
    assert closer_classic * 2 == len(tests)
    assert all(min(cag[j]["fd"], classic[j]["fd"]) > 1.5 * greal[j]["fd"] for j in tests)
    # the paper section: g(x) and blur help; cosine eq. 4 within noise; averaged eq. 6 further for every judge
    paper, gx = rows["CaG (paper), x, bf16"], rows["CaG (paper), g(x), bf16"]
    blur, averaged = rows["paper + blur, x, bf16"], rows["paper + averaged eq. 6, x, bf16"]
    for r in (gx, blur):
        assert sum(r[j]["acc"] > paper[j]["acc"] for j in tests) * 2 > len(tests) and r["cas"] > paper["cas"]
        assert sum(r[j]["fd"] < paper[j]["fd"] for j in tests) * 2 > len(tests)
    assert all(blur[j]["fd"] < paper[j]["fd"] for j in tests)
    assert all(averaged[j]["fd"] > paper[j]["fd"] for j in tests)
    from cag_lib.gap import BASE, GAP_ROWS   # the levers are on the gap page, not this one
    elsewhere = {name for _, name, _ in GAP_ROWS} - {BASE}
    cag_rows = {n: r for n, r in rows.items() if n.startswith(("CaG", "full -", "paper +")) and n not in elsewhere}
    assert gx["cas"] == max(r["cas"] for r in cag_rows.values())
    assert gx["test_mean"]["fd"] == min(r["test_mean"]["fd"] for r in cag_rows.values())
    assert sum(paper[j]["acc"] < cag[j]["acc"] for j in tests) * 2 > len(tests)
    for name in ("panel_paper", "paper_verdict", "panel_judges", "judges_verdict", "minus_one_verdict"):
        assert "{{" + name + "}}" in page


def test_ablation_page_pastes_the_minus_one_table_and_its_claims_hold(report, book_page):
    """book/ablation.md's N = 1,000 full-minus-one table is the JSON's, and what it says holds for
    every judge: the MAE first, progressive second, distribution and ensemble help, and the
    diversity loss costs accuracy but buys diversity and recall."""
    page, filled = book_page("ablation.md")
    assert "{{panel_minus_one}}" in page and minus_one_table(report) in filled
    rows = report["rows"]
    full = rows["CaG full, 250 steps, g(x), bf16"]
    minus = {n: rows[f"{n}, bf16"] for n in MINUS_ONE}
    judges = ["validation", "judge_cnn", "judge_resnet_d", "judge_mixer"]
    drop = {n: full["test_mean"]["acc"] - r["test_mean"]["acc"] for n, r in minus.items()}
    assert drop["full - MAE"] > 2 * drop["full - progressive"] > 2 * max(drop[n] for n in MINUS_ONE[2:])
    assert minus["full - MAE"]["test_mean"]["acc"] < full["test_mean"]["acc"] / 2    # "less than half"
    assert 0.07 < drop["full - progressive"] < 0.13                                   # "about ten points"
    for n in ("full - MAE", "full - progressive", "full - distribution", "full - ensemble"):
        assert all(minus[n][j]["acc"] < full[j]["acc"] for j in judges), n
        assert minus[n]["test_mean"]["fd"] > full["test_mean"]["fd"], n
    div = minus["full - diversity"]
    assert all(0.01 < div[j]["acc"] - full[j]["acc"] < 0.06 for j in judges)    # "about three points"
    assert div["test_mean"]["diversity"] < full["test_mean"]["diversity"]
    assert div["test_mean"]["recall"] < full["test_mean"]["recall"]
    assert abs(div["test_mean"]["fd"] - full["test_mean"]["fd"]) < 2                 # "at the same FD"


def test_the_nearest_neighbour_judge_is_a_rule_on_the_training_images(monkeypatch):
    """No network: the 10 nearest training images vote, in their first principal components."""
    import cag_lib.panel as panel
    g = torch.Generator().manual_seed(0)
    centres = torch.rand(3, 1, 8, 8, generator=g)
    y = torch.arange(3).repeat(40)
    x = (centres[y] + 0.05 * torch.randn(120, 1, 8, 8, generator=g)).clamp(0, 1)
    monkeypatch.setattr(panel, "load_world", lambda world, split: (x, y))
    judge = panel.NearestNeighbourJudge.fit("toy", dims=4)
    out = judge(centres)
    assert out.logits.argmax(1).tolist() == [0, 1, 2] and out.features.shape == (3, 4)
    assert out.logits.softmax(1).max(1).values.min() > 0.9         # ten votes of ten
    assert torch.allclose(judge.bank, judge(x).features, atol=1e-5)   # the training images' own coordinates


def test_cas_learns_the_class_from_samples_that_carry_it_and_nothing_from_shuffled_labels():
    from cag_lib.panel import classification_accuracy_score
    from cag_lib.data import load_world
    x, y = load_world("fmnist", "test")
    train, labels, test, test_labels = x[:600], y[:600], x[5000:6000], y[5000:6000]
    good = classification_accuracy_score(train, labels, test, test_labels, epochs=10)
    shuffled = labels[torch.randperm(600, generator=torch.Generator().manual_seed(0))]
    bad = classification_accuracy_score(train, shuffled, test, test_labels, epochs=10)
    one_per_class = torch.cat([(y[:600] == c).nonzero()[:1, 0].repeat(60) for c in range(10)])   # collapse
    collapsed = classification_accuracy_score(train[one_per_class], labels[one_per_class], test, test_labels, epochs=10)
    assert good > 0.7 and bad < 0.25 and collapsed < good - 0.15, (good, bad, collapsed)


def test_the_verdicts_say_every_judge_only_when_every_judge_agrees():
    from cag_lib.panel import PAPER_ROWS, judges_verdict, paper_verdict
    judges = ["a", "b", "c"]

    def row(accs, fds, cas):
        return {**{j: {"acc": x, "fd": f} for j, x, f in zip(judges, accs, fds)}, "cas": cas}
    rows = {PAPER_ROWS[0][1]: row([0.5, 0.5, 0.5], [10, 10, 10], 0.6),
            PAPER_ROWS[1][1]: row([0.6, 0.7, 0.4], [5, 6, 20], 0.7),      # two judges of three agree
            PAPER_ROWS[2][1]: row([0.6, 0.7, 0.55], [5, 6, 8], 0.7)}      # all three agree
    said = paper_verdict({"rows": rows, "test_judges": judges}).split("\n")
    assert said[0].startswith(f"- **{PAPER_ROWS[1][0]}**: 2 of 3 test judges recognise more pictures")
    assert "for 2 of 3 test judges the pictures are closer to the data (FD × 0.50 to × 2.00)" in said[0]
    assert said[1].startswith(f"- **{PAPER_ROWS[2][0]}**: every test judge recognises more pictures")
    assert "for every test judge the pictures are closer to the data" in said[1] and "CAS 0.700 against 0.600" in said[1]
    rows[PAPER_ROWS[3][1]] = row([0.51, 0.49, 0.52], [10, 10, 11], 0.6)      # every change within the noise
    said = paper_verdict({"rows": rows, "test_judges": judges}).split("\n")
    assert said[2].startswith(f"- **{PAPER_ROWS[3][0]}**: no test judge's accuracy moves by more than two standard")
    rows = {"real": row([0.9, 0.92, 0.91], [1, 1, 1], 0.8), "DDPM, 1000 steps": row([0.85, 0.86, 0.87], [2, 4, 3], 0.75),
            "CaG full, 250 steps, g(x)": row([0.6, 0.95, 0.8], [20, 20, 60], 0.5)}
    said = judges_verdict({"rows": rows, "test_judges": judges})
    assert "CaG's pictures (full recipe, g(x)) 0.600 to 0.950: a spread of 0.35 against the DDPM's 0.02" in said
    assert "CaG's FD is at least 5.0 times the DDPM's" in said and "on CaG's 0.500" in said


def test_a_bundle_without_test_judges_is_named_with_those_that_have_them():
    with pytest.raises(ValueError, match="'fmnist-robust' has no test judges; bundles with test judges: fmnist, shapes"):
        load_judges(load_bundle("fmnist-robust"))
