"""Bad input through the public API: each is one clear error that names the fix (or works)."""
import gzip
import socket
from dataclasses import replace

import numpy as np
import pytest
import torch

from cag_lib.config import GenerateConfig
from cag_lib.errors import NonFiniteError, OfflineError, is_offline
from cag_lib.generate import generate
from cag_lib.objectives import Objective, classification
from cag_lib.recipes import recipe
from cag_lib.zoo import load_bundle

QUICK = GenerateConfig(steps=3, resolutions=(32,), progress=False)


@pytest.fixture(scope="module")
def bundle():
    return load_bundle("fmnist")


@pytest.mark.parametrize("change, said", [
    (dict(steps=0), "steps=0: give a whole number >= 1"), (dict(steps=-3), "steps=-3"),
    (dict(steps=30.5), "steps=30.5: give a whole number"), (dict(steps=True), "steps=True"),
    (dict(lr=float("inf")), "lr=inf: give a finite number"), (dict(init_std=float("nan")), "init_std=nan"),
    (dict(lr=1e6), "0 < lr <= 1"), (dict(lr=0.0), "0 < lr <= 1"),
    (dict(resolutions=()), "non-empty tuple"), (dict(resolutions=32), "non-empty tuple"),
    (dict(classifiers=()), "non-empty tuple of source indices"), (dict(mask_ratio=1.0), "mask_ratio < 1"),
    (dict(sampler="sgd"), "valid values: 'adam', 'mala', 'pgd'"), (dict(diversity_weight=-1.0), ">= 0"),
    (dict(sampler="mala"), "set diversity_weight=0"), (dict(start="grey"), "valid values: 'noise', 'class gaussian'"),
    (dict(pgd_eps=0.0), "pgd_eps=0.0: give a number > 0"), (dict(bn_weight=-1.0), "bn_weight=-1.0: give a number >= 0"),
])
def test_a_bad_setting_is_refused_when_the_config_is_made(change, said):
    with pytest.raises(ValueError, match=said.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        replace(GenerateConfig(), **change)


def test_the_batchnorm_prior_and_the_class_gaussian_start_need_what_they_read(bundle):
    from cag_lib.prompts import PromptBundle
    import dataclasses

    from cag_lib.zoo import load_model
    no_bn = dataclasses.replace(bundle, classifiers=[load_model("fmnist", "judge_cnn")])   # a CNN without BatchNorm
    with pytest.raises(ValueError, match="none of the used sources has one: set bn_weight=0"):
        generate(no_bn, [7] * 2, recipe("eq1", bn_weight=1.0, steps=1, progress=False))
    text = PromptBundle(bundle.classifiers, bundle.mae, name="prompts")
    with pytest.raises(ValueError, match="start='class gaussian' needs real images"):
        generate(text, [0, 1], recipe("eq1", start="class gaussian", steps=1, progress=False))


def test_settings_that_do_not_fit_the_bundle_are_refused(bundle):
    with pytest.raises(ValueError, match=r"classifiers=\(5,\): this bundle has 2 source classifier"):
        generate(bundle, [0], replace(QUICK, classifiers=(5,)))
    with pytest.raises(ValueError, match="leaves none of the MAE's 64 patches visible"):
        generate(bundle, [0], replace(QUICK, mask_ratio=0.99))


def test_targets_are_read_as_a_user_means_them(bundle):
    with pytest.raises(ValueError, match=r"one string, 'Sneaker'; give one class per image, e.g. \['Sneaker'\] \* 8"):
        generate(bundle, "Sneaker", QUICK)
    with pytest.raises(ValueError, match="is a bool"):
        generate(bundle, [True], QUICK)
    r = generate(bundle, np.array([7, 9]), QUICK)        # numpy integers are indices
    assert r.targets.tolist() == [7, 9]
    assert generate(bundle, torch.tensor(3), QUICK).targets.tolist() == [3]
    with pytest.raises(ValueError, match="unknown class 'Sneakers'; valid: 'T-shirt/top'"):
        generate(bundle, ["Sneakers"], QUICK)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
@pytest.mark.parametrize("device, said", [("cuda", "no CUDA GPU is visible"), ("gpu", "use 'auto', 'cpu'")])
def test_a_device_that_is_not_there_is_one_line(device, said):
    with pytest.raises(ValueError, match=said):
        load_bundle("fmnist", device=device)


def test_auto_device_works_everywhere():
    assert next(load_bundle("fmnist", device="auto").mae.parameters()).device.type in ("cpu", "cuda", "mps")


def test_a_wrong_weights_dir_says_where_to_point_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no manifest.json: point it at a folder"):
        load_bundle("fmnist", weights_dir=tmp_path)


def test_a_corrupt_data_file_is_named(tmp_path):
    from cag_lib.data import CorruptDataError, read_idx
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(CorruptDataError, match=str(bad)):
        read_idx(bad)
    short = tmp_path / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(short, "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (100).to_bytes(4, "big") + bytes(10))   # says 100, holds 10
    with pytest.raises(CorruptDataError, match="truncated or corrupt"):
        read_idx(short)


def test_a_non_finite_objective_stops_the_run_and_names_the_settings(bundle):
    obj = classification() + Objective.term("nan", lambda v: v.x.sum() * float("nan"))
    with pytest.raises(NonFiniteError, match="lower lr"):
        generate(bundle, [0, 1], QUICK, objective=obj)


@pytest.mark.parametrize("value, offline", [("1", True), ("true", True), ("ON", True), ("yes", True),
                                            ("0", False), ("false", False), ("", False)])
def test_offline_is_read_like_huggingface_hub(monkeypatch, value, offline):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert is_offline() is offline


def test_no_network_fails_fast_not_after_a_minute_of_retries(monkeypatch):
    from cag_lib.imagenet import timm_classifier
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def no_route(*a, **k):
        raise OSError("Network is unreachable")
    monkeypatch.setattr(socket, "create_connection", no_route)
    with pytest.raises(OfflineError, match="cannot be reached .*'fmnist' and 'shapes' bundles"):
        timm_classifier("resnet18", pretrained=True)


def test_free_form_prompts_must_be_readable():
    from cag_lib.clip import SHAPES_CLIP, create_clip, zero_shot_classifier
    model, tok = create_clip(SHAPES_CLIP)
    with pytest.raises(ValueError, match="an empty prompt"):
        zero_shot_classifier(model, tok, ["a red star", "  "])
    with pytest.raises(ValueError, match=r"is 502 tokens and CLIP reads \d+: shorten it"):
        zero_shot_classifier(model, tok, ["a red star", " ".join(["word"] * 500)])


def test_a_callback_can_stop_the_run_and_a_stopped_run_continues_from_its_images(bundle):
    cfg = replace(QUICK, steps=6, snapshot_every=2)
    seen = []
    r = generate(bundle, [0, 1], cfg, callbacks=[lambda step, imgs, res: seen.append(step) or step >= 4])
    assert r.stopped and seen == [2, 4] and len(r.history["loss"]) == 4
    more = generate(bundle, [0, 1], replace(cfg, steps=2, snapshot_every=0), init=r.images)
    assert more.history["loss"][0] < r.history["loss"][0]        # it starts where the first run stopped


def test_callbacks_run_only_on_snapshot_steps_and_only_true_stops(bundle):
    calls = []
    r = generate(bundle, [0], replace(QUICK, steps=4), callbacks=[lambda *a: calls.append(a[0]) or True])
    assert calls == [] and not r.stopped                      # snapshot_every=0: never called
    r = generate(bundle, [0], replace(QUICK, steps=4, snapshot_every=1), callbacks=[lambda *a: "a figure"])
    assert not r.stopped and len(r.history["loss"]) == 4      # a truthy return that is not True


def test_one_index_and_lists_are_read_as_meant(bundle):
    assert generate(bundle, 3, QUICK).targets.tolist() == [3]
    assert replace(QUICK, resolutions=[16, 32], classifiers=[0]).resolutions == (16, 32)
    with pytest.raises(ValueError, match="one string"):
        generate(bundle, np.array("Sneaker"), QUICK)


# --- inputs that cannot mean what they say ---------------------------------------------------------
@pytest.mark.parametrize("change, said", [
    (dict(resolutions=(32, 16, 8)), "a progressive schedule grows"),
    (dict(resolutions=(16, 16, 32)), "give increasing sizes"),
    (dict(steps=2, resolutions=(8, 16, 32)), "the first 2 stage.s. would get no step; give steps >= 3"),
    (dict(classifiers=(0, 0)), "names a source twice"),
])
def test_a_schedule_that_cannot_run_as_written_is_refused(change, said):
    with pytest.raises(ValueError, match=said):
        replace(GenerateConfig(), **change)
    replace(GenerateConfig(), steps=3, resolutions=(8, 16, 32), classifiers=(1, 0))   # the edge itself runs


def test_a_stage_larger_than_the_mae_is_refused(bundle):
    """The 32-px MAE would serve a 64-px stage shrunk to 32, and the picture would be 32 px."""
    with pytest.raises(ValueError, match="this MAE works at 32 px, so a 64-px stage would be shrunk"):
        generate(bundle, [0], replace(QUICK, resolutions=(16, 64)))


@pytest.mark.parametrize("init, said", [
    (torch.full((1, 1, 32, 32), 128.0), r"values in \[128, 128\]; give images in \[0, 1\] \(divide 0-255"),
    (torch.full((1, 1, 32, 32), -0.4), "undo the normalisation"),
    (torch.linspace(-2.1, 2.6, 1024).view(1, 1, 32, 32), r"\[-2.1, 2.6\].*undo the normalisation"),
    (torch.full((1, 1, 32, 32), float("nan")), "NaN or infinite"),
])
def test_start_images_outside_0_1_are_refused_not_clamped(bundle, init, said):
    with pytest.raises(ValueError, match=said):
        generate(bundle, [0], QUICK, init=init)
    generate(bundle, [0], replace(QUICK, steps=1), init=torch.full((1, 1, 32, 32), 1.0005))  # resampling overshoot


def test_class_statistics_of_another_shape_are_named(bundle):
    from cag_lib.stats import bundle_class_stats
    right = [bundle_class_stats(bundle, i) for i in range(2)]
    with pytest.raises(ValueError, match=r"class_stats has 1 entries for 2 used source"):
        generate(bundle, [0], QUICK, class_stats=right[:1])
    with pytest.raises(ValueError, match=r"class_stats\[1\] is \[\(3, 5\), \(3, 5\)\]; give \(mean, std\) of shape \(10, D\)"):
        generate(bundle, [0], QUICK, class_stats=[right[0], (torch.zeros(3, 5), torch.ones(3, 5))])
    wide = [(torch.zeros(10, 7), torch.ones(10, 7))] * 2
    with pytest.raises(ValueError, match=r"class_stats\[0\] has 7 features, and source 0 gives"):
        generate(bundle, [0], QUICK, class_stats=wide)


def test_prompts_a_clip_cannot_tell_apart_or_read_are_refused():
    from cag_lib import zoo
    from cag_lib.clip import SHAPES_CLIP, registered_open_clip, zero_shot_classifier
    model, tok = zoo.load_model("shapes", "clip"), registered_open_clip().get_tokenizer(SHAPES_CLIP)
    with pytest.raises(ValueError, match="'A  red star' is given twice"):
        zero_shot_classifier(model, tok, ["a red star", "A  red star"])
    with pytest.raises(ValueError, match="never saw the words 'goldfish'.*use the words of its captions: a, arrow"):
        zero_shot_classifier(model, tok, ["a goldfish", "a red star"])
    with pytest.raises(ValueError, match="never saw the words '红色的星星' "):     # for its words, not its length
        zero_shot_classifier(model, tok, ["红色的星星 " * 20, "a red star"])
    with torch.no_grad():                        # two texts read as one: the same embedding
        same = zero_shot_classifier(model, tok, ["a red star", "a blue star"]).weights
    from cag_lib.clip import check_distinct
    with pytest.raises(ValueError, match="reads the prompts 'x' and 'y' as the same text"):
        check_distinct(["x", "y"], torch.cat([same[:1], same[:1]]))
    zero_shot_classifier(model, tok, ["a red star on a blue background", "a blue star on a red background"])


# --- runs that share an output folder ---------------------------------------------------------------
def test_a_second_run_in_a_held_folder_is_refused_and_a_killed_holder_keeps_nothing(tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys
    from cag_lib.files import LOCK, FolderInUseError, hold_folder
    with hold_folder(tmp_path / "run", "first"):
        with pytest.raises(FolderInUseError, match=r"run is in use by first \(pid \d+ on .*\): two runs in one "
                                                   r"folder would overwrite"):
            with hold_folder(tmp_path / "run", "second"):
                pass
    with hold_folder(tmp_path / "run", "after"):                        # released at the end
        assert json.loads((tmp_path / "run" / LOCK).read_text())["what"] == "after"
    # a holder killed outright (no finally runs): the kernel drops its lock
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from cag_lib.files import hold_folder\n"
                               f"with hold_folder({str(tmp_path / 'run')!r}, 'killed'):\n"
                               "    print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(FolderInUseError, match="in use by killed"):
        with hold_folder(tmp_path / "run", "while it lives"):
            pass
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with hold_folder(tmp_path / "run", "third"):
        assert json.loads((tmp_path / "run" / LOCK).read_text())["what"] == "third"


def test_the_sampling_command_refuses_a_folder_another_run_is_writing(tmp_path, capsys):
    from cag_lib.files import hold_folder
    from cag_lib.sample import main
    with hold_folder(tmp_path / "x", "python -m cag_lib.sample --per-class 100"):
        with pytest.raises(SystemExit) as e:
            main(["--bundle", "fmnist", "--classes", "Bag", "--per-class", "1", "--set", "steps=1", "resolutions=32",
                  "--out", str(tmp_path / "x")])
    assert e.value.code == 2 and "is in use by python -m cag_lib.sample --per-class 100" in capsys.readouterr().err
    assert not list((tmp_path / "x").glob("*.json"))                     # it wrote nothing there
