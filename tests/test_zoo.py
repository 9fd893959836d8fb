"""The shipped model zoo: checksums, the held-out judge, and the quality bars re-measured."""
import shutil

import pytest

from cag_lib import zoo
from cag_lib.models import accuracy
from cag_lib.train import masked_mse

ACC_BARS = {"fmnist": 0.90, "shapes": 0.97}   # the quality bars of plain models, per world
# an adversarially trained source gives up clean accuracy for robustness (Madry et al.): at L2 radius 1.0
# on Fashion-MNIST it cost the ResNet 7 points and the ViT 11; the bar keeps them within 12 of the plain bar
ROBUST_BAR = 0.78
TOL_ACC = 0.002                               # re-measured accuracy vs the manifest (20 of 10k images)
TOL_MSE = 0.01                                # relative, re-measured MAE error vs the manifest


@pytest.fixture(scope="module", params=list(zoo.BUNDLES))
def bundle(request):
    return zoo.load_bundle(request.param)


@pytest.fixture(scope="module")
def test_split(request, bundle, fmnist_test, shapes_test):
    return {"fmnist": fmnist_test, "shapes": shapes_test}[bundle.spec.world]


def test_manifest_lists_every_file_with_its_checksum():
    manifest = zoo.read_manifest()
    for name, spec in zoo.BUNDLES.items():
        for model in (*spec.sources, spec.judge, spec.mae):
            e = manifest[spec.world][model]
            assert zoo.sha256(zoo.WEIGHTS_DIR / e["file"]) == e["sha256"]
            assert e["training"]["command"].startswith("python -m cag_lib.train ")
            assert e["training"]["seconds"] > 0 and e["metrics"]


def test_weights_fit_the_budget():
    """The package ships its weights, at most 111 MiB of the 120 allowed. Most of it: the shapes world's
    24 CLIPs (16 plain, 8 adversarially fine-tuned; about 3 MB each, token embeddings pruned), the
    MAEs, the sources of each world and their robust versions, the judges (the ResNet-D test judges
    are the largest, 5.6 MB each), the diffusion model and the small GAN."""
    total = sum(p.stat().st_size for p in zoo.WEIGHTS_DIR.glob("*/*.safetensors"))
    assert total <= 111 * 2 ** 20, f"{total / 2**20:.1f} MB of weights"


def test_judge_is_held_out(bundle):
    judge = bundle.manifest[bundle.spec.judge]
    sources = [bundle.manifest[s] for s in bundle.spec.sources]
    assert judge["role"] == "judge" and all(s["role"] == "source" for s in sources)
    assert judge["arch"] not in {s["arch"] for s in sources}                 # another family
    assert len({s["arch"] for s in sources}) >= 2                             # a CNN and a ViT
    cfg = judge["training"]["config"]
    assert cfg["augment"] == "strong" and cfg["seed"] not in {s["training"]["config"]["seed"] for s in sources}


def test_classifier_accuracies_remeasured(bundle, test_split):
    x, y = test_split
    for clf in (*bundle.classifiers, bundle.judge):
        entry = bundle.manifest[clf.name]
        acc = accuracy(clf, x, y)
        assert entry["metrics"]["test_images"] == len(x)
        assert abs(acc - entry["metrics"]["test_accuracy"]) <= TOL_ACC, (clf.name, acc)
        robust = entry["training"]["config"].get("adv_eps", 0) > 0
        bar = ROBUST_BAR if robust else ACC_BARS[bundle.spec.world]
        assert acc >= bar, f"{bundle.name}/{clf.name}: {acc:.4f} < {bar}"
        if robust:   # its robustness was measured (tests/test_robust.py re-measures it against the plain model's)
            assert f"robust_accuracy@{entry['training']['config']['adv_eps']:g}" in entry["metrics"]


def test_mae_error_remeasured(bundle, test_split):
    x, _ = test_split
    stored = bundle.manifest[bundle.spec.mae]["metrics"]
    got = masked_mse(bundle.mae, x, 0.75)
    for k in ("masked_mse@0.75", "visible_mse@0.75"):
        assert got[k] == pytest.approx(stored[k], rel=TOL_MSE), k


def test_models_come_frozen_in_eval_mode(bundle):
    for m in (*bundle.classifiers, bundle.judge, bundle.mae):
        assert not m.training and not any(p.requires_grad for p in m.parameters())


def test_corrupt_file_is_named(tmp_path):
    shutil.copytree(zoo.WEIGHTS_DIR, tmp_path / "w", ignore=shutil.ignore_patterns(".manifest.lock"))
    f = tmp_path / "w" / "fmnist" / "vit.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(zoo.ChecksumError, match="fmnist/vit.safetensors"):
        zoo.load_bundle("fmnist", weights_dir=tmp_path / "w")


def test_missing_file_says_how_to_retrain(tmp_path):
    shutil.copytree(zoo.WEIGHTS_DIR, tmp_path / "w", ignore=shutil.ignore_patterns(".manifest.lock"))
    (tmp_path / "w" / "shapes" / "mae.safetensors").unlink()
    with pytest.raises(zoo.WeightsNotFoundError, match="python -m cag_lib.train mae"):
        zoo.load_bundle("shapes", weights_dir=tmp_path / "w")


def test_bad_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="available bundles: fmnist, shapes, fmnist-robust, fmnist-mae-p2, shapes-robust"):
        zoo.load_bundle("cifar10")
    b = zoo.load_bundle("fmnist")
    assert b.class_index("sneaker") == 7 and b.class_index(3) == 3
    with pytest.raises(ValueError, match="'Sneaker', 'Bag', 'Ankle boot' or an index 0-9"):
        b.class_index("sandals")


def test_book_shows_the_manifest_as_it_is(book_page):
    page, filled = book_page("zoo.md")
    assert "{{zoo_table}}" in page and zoo.markdown_table() in filled
