"""CLIP as a classifier: open_clip models with random weights, the prompt lookup, the offline error."""
import time

import pytest
import torch

from cag_lib.clip import SHAPES_CLIP, ClipClassifier, create_clip, text_weights, zero_shot_classifier
from cag_lib.shapes_text import TextBundle, attribute_scores, caption_templates, load_attribute_judges
from cag_lib.generate import GenerateConfig, generate
from cag_lib.mae import MaskedAutoencoder


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return create_clip(SHAPES_CLIP)


@pytest.fixture
def mae():
    """A tiny random RGB MAE for the shapes' 32x32 scenes."""
    return MaskedAutoencoder(img_size=32, patch_size=4, in_chans=3, embed_dim=32, depth=1, num_heads=2,
                             decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2, mlp_ratio=2.0).eval()


def test_text_weights_are_normalised_template_means(clip):
    model, tok = clip
    w = text_weights(model, tok, ["red star", "blue moon"], ["a small {}", "a large {}"])   # (K, D)
    assert w.shape == (2, 64) and torch.allclose(w.norm(dim=1), torch.ones(2), atol=1e-5)
    e = model.encode_text(tok(["a small red star", "a large red star"]), normalize=True).mean(0)
    assert torch.allclose(w[0], e / e.norm(), atol=1e-5)


def test_clip_classifier_has_the_classifier_api(clip):
    model, tok = clip
    clf = zero_shot_classifier(model, tok, ["circle", "square", "star"], caption_templates("shape")[:4])
    out = clf(torch.rand(2, 3, 48, 48))                         # any size: resized inside
    assert out.logits.shape == (2, 3) and out.features.shape == (2, 64)
    assert torch.allclose(out.features.norm(dim=1), torch.ones(2), atol=1e-5)
    expected = model.logit_scale.exp() * out.features @ clf.weights.T
    assert torch.allclose(out.logits, expected, atol=1e-4)
    with pytest.raises(ValueError, match="RGB"):
        clf(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match="2 weight rows for 3 classes"):
        ClipClassifier(model, clf.weights[:2], ["a", "b", "c"])


def test_caption_templates_cover_every_other_attribute():
    t = caption_templates("colour")
    assert len(t) == 2 * 8 * 8 and all(s.count("{}") == 1 for s in t)
    assert "a small {} star on a blue background" in t
    with pytest.raises(ValueError, match="valid: size, colour, shape, background"):
        caption_templates("texture")


def test_text_to_image_runs_in_the_one_loop(clip, mae):
    model, tok = clip
    b = TextBundle(model, tok, mae)
    assert len(b.class_names) == 8 * 8 * 7
    assert b.class_index("A small red star on a blue background.") == b.class_names.index("red star on a blue background")
    with pytest.raises(ValueError, match="two different colours"):
        b.class_index("a red star on a red background")
    r = generate(b, ["a red star on a blue background", "a white moon on a black background"],
                 GenerateConfig(steps=3, resolutions=(16, 32), distribution_weight=0, progress=False))
    assert r.reconstructions.shape == (2, 3, 32, 32) and len(r.history["loss"]) == 3
    with pytest.raises(ValueError, match="class_stats"):     # no real images of a new prompt: no eq. 6
        generate(b, [0], GenerateConfig(steps=3, progress=False))


def test_imagenet_clip_builds_without_weights_and_fails_fast_offline(monkeypatch):
    from cag_lib.clip import IMAGENET_CLIP
    from cag_lib.imagenet import OfflineError
    model, tok = create_clip(IMAGENET_CLIP[0], pretrained=None)
    clf = zero_shot_classifier(model, tok, ["goldfish", "tabby cat"], ("a photo of a {}.",))
    assert clf.input_size == 224 and clf(torch.rand(1, 3, 64, 64)).logits.shape == (1, 2)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.time()
    with pytest.raises(OfflineError, match="fmnist"):
        create_clip(*IMAGENET_CLIP)
    assert time.time() - t0 < 5


def test_attribute_judges_read_real_scenes_and_catch_a_wrong_shape():
    from cag_lib.shapes import HELD_OUT, make_shapes
    judges = load_attribute_judges()
    (c, s, b), (c2, s2, b2) = HELD_OUT[0], HELD_OUT[1]
    images = torch.cat([make_shapes(6, seed=5, colour=c, shape=s, background=b).images,
                        make_shapes(6, seed=6, colour=c2, shape=s2, background=b2).images])
    right = attribute_scores(judges, images, [(c, s, b)] * 6 + [(c2, s2, b2)] * 6)
    assert all(right[a].mean() == 1 for a in ("shape", "colour", "background", "shape+colour"))
    wrong = attribute_scores(judges, images, [(c, s2, b)] * 12)   # the second half has shape s2: only it is right
    assert wrong["shape"][:6].sum() == 0 and wrong["shape"][6:].sum() == 6 and wrong["colour"][:6].sum() == 6
    assert torch.equal(wrong["shape+colour"], wrong["shape"] * wrong["colour"])
    with pytest.raises(ValueError, match="triples"):
        attribute_scores(judges, images, [(c, s, b)])


def test_pruned_token_embedding_gives_identical_outputs(clip, tmp_path):
    from safetensors.torch import load_file

    from cag_lib.clip import expand_token_embedding
    from cag_lib.shapes_text import world_token_ids
    from cag_lib.train import save_weights
    model, tok = clip
    save_weights({k: v.float() for k, v in model.state_dict().items()}, tmp_path / "c.safetensors", clip=True)
    state = load_file(str(tmp_path / "c.safetensors"))
    assert state["token_embedding.rows"].shape == (len(world_token_ids()), 64)
    assert state["token_embedding.ids"].dtype == torch.int64
    other, _ = create_clip(SHAPES_CLIP)
    other.load_state_dict({k: v.float() for k, v in expand_token_embedding(state, 49408).items()})
    text = tok(["a small red star on a blue background", "a large black moon on a white background"])
    half = model.encode_text(text).half().float()   # the file holds float16
    assert torch.allclose(other.encode_text(text), half, atol=2e-2)
    assert not torch.allclose(other.encode_text(tok(["a dog"])), model.encode_text(tok(["a dog"])), atol=1e-3)


def test_clip_classifier_buffers_follow_the_weights_device(clip):
    model, _ = clip
    clf = ClipClassifier(model, torch.zeros(3, 64, device="meta"), ["a", "b", "c"])
    assert clf.mean.device.type == clf.std.device.type == "meta"


def test_text_bundle_ensembles_clips_with_the_same_prompts(clip, mae):
    model, tok = clip
    torch.manual_seed(1)
    other, _ = create_clip(SHAPES_CLIP)
    b = TextBundle([model, other], tok, mae)
    assert len(b.classifiers) == 2 and b.classifiers[0].class_names == b.classifiers[1].class_names
    r = generate(b, ["a red star on a blue background"], GenerateConfig(steps=2, resolutions=(32,),
                                                                        distribution_weight=0, progress=False))
    assert r.reconstructions.shape == (1, 3, 32, 32)
    from cag_lib.prompts import PromptBundle
    with pytest.raises(ValueError, match="same prompts"):
        PromptBundle([zero_shot_classifier(model, tok, ["a", "b"]), zero_shot_classifier(other, tok, ["b", "a"])], mae)


def test_robust_clips_are_adversarial_fine_tunes_of_shipped_clips():
    """Each robust CLIP's manifest entry names the shipped CLIP it started from (by sha256) and its PGD radius."""
    from cag_lib import zoo
    from cag_lib.shapes_text import SHAPES_CLIPS, SHAPES_ROBUST_CLIPS
    shapes = zoo.read_manifest()["shapes"]
    for name in SHAPES_ROBUST_CLIPS:
        t = shapes[name]["training"]
        assert t["config"]["adv_eps"] > 0 and t["init"]["name"] in SHAPES_CLIPS, name
        assert t["init"]["sha256"] == shapes[t["init"]["name"]]["sha256"], f"{name} started from another file"


@pytest.fixture(scope="module")
def text_to_image():
    """benchmarks/text_to_image.py as a module."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import text_to_image
    return text_to_image


def test_text_to_image_benchmark_runs_and_reads_real_scenes_right(text_to_image, tmp_path):
    import json
    out = tmp_path / "t2i.json"
    text_to_image.main(["--per-prompt", "2", "--steps", "3", "--rows", "1 CLIP", "--json", str(out),
                        "--out", str(tmp_path / "grids")])
    r = json.loads(out.read_text())
    assert r["clips"] == 8 and r["device"] == "cpu" and len(r["prompts"]) == 10
    assert r["real images"]["shape+colour_acc"] == 1.0          # the judges read every real held-out scene right
    assert r["real images"]["diversity"] > 0 and r["1 CLIP"]["diversity"] >= 0   # two pictures of a prompt differ
    assert 0 <= r["1 CLIP"]["shape+colour_acc"] <= 1 and set(r["1 CLIP"]["per_prompt_shape+colour"]) == set(r["prompts"])
    assert len(list((tmp_path / "grids").glob("*.png"))) == 10


def test_text_to_image_diversity_is_zero_for_copies_and_grows_with_spread(text_to_image):
    """A row's "diversity": mean distance between two pictures of one prompt in the shape judge's features."""
    from cag_lib.shapes_text import load_attribute_judges
    from cag_lib.shapes import make_shapes
    judges = load_attribute_judges()
    right = {"shape+colour": torch.ones(4)}
    one = make_shapes(1, seed=0).images                                          # (1, 3, 32, 32)
    copies = text_to_image.summarise(right, ["a", "b"], 2, judges, one.repeat(4, 1, 1, 1))
    assert copies["diversity"] == pytest.approx(0.0, abs=1e-6)
    spread = text_to_image.summarise(right, ["a", "b"], 2, judges, make_shapes(4, seed=1).images)
    assert spread["diversity"] > 0.1


def test_tuning_compositions_are_seen_and_the_benchmark_tunes_on_them(text_to_image, tmp_path):
    """Knobs are chosen on TUNING (scenes in the CLIPs' training captions), measured on HELD_OUT."""
    import json

    from cag_lib.shapes import HELD_OUT, SHAPES, TUNING
    assert not set(TUNING) & set(HELD_OUT) and sorted(s for _, s, _ in TUNING) == sorted(SHAPES)
    assert text_to_image.parse_sets(["resolutions=16,32", "lr=0.01", "use_mae=false", "classifiers=0,3",
                                     "lr_schedule=cosine"]) == {"resolutions": (16, 32), "lr": 0.01, "use_mae": False,
                                                                "classifiers": (0, 3), "lr_schedule": "cosine"}
    with pytest.raises(SystemExit, match="GenerateConfig field"):
        text_to_image.parse_sets(["learning_rate=0.1"])
    out = tmp_path / "seen.json"
    text_to_image.main(["--prompts", "seen", "--per-prompt", "1", "--steps", "3", "--rows", "1 CLIP", "--set",
                        "resolutions=32", "--clips", "3", "--json", str(out), "--out", str(tmp_path / "grids")])
    r = json.loads(out.read_text())
    assert r["prompt_set"] == "seen" and r["set"] == ["resolutions=32"] and len(r["prompts"]) == len(TUNING)
    assert r["clips"] == 3                                       # the ensemble's size is the --clips asked for
    with pytest.raises(SystemExit, match="give 1 to"):
        text_to_image.main(["--clips", "0"])
    for flag in (["--clips", "3"], ["--robust"]):               # --clip-dir's bundle has one CLIP: not silently ignored
        with pytest.raises(SystemExit, match="drop --clip-dir"):
            text_to_image.main([*flag, "--clip-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="ships 8 robust CLIPs"):
        text_to_image.main(["--robust", "--clips", "9"])
    assert r["real images"]["shape+colour_acc"] == 1.0          # the judges read the seen scenes right too
    text_to_image.main(["--prompts", "seen", "--per-prompt", "1", "--steps", "3", "--rows", "1 CLIP", "--robust",
                        "--clips", "2", "--json", str(out), "--out", str(tmp_path / "grids")])
    assert json.loads(out.read_text())["members"] == ["clip_adv0", "clip_adv1"]
