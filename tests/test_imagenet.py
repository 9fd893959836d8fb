"""The ImageNet bundle's code path, with randomly initialised models (no weights can be downloaded here)."""
import time
from dataclasses import replace

import pytest
import torch

from cag_lib import generate
from cag_lib.imagenet import (JUDGE, SOURCES, OfflineError, imagenet_class_names, imagenet_preset,
                              load_imagenet_bundle, measure_class_stats, official_mae, timm_classifier,
                              visible_patch_check)

TINY_MAE = dict(embed_dim=64, depth=1, num_heads=2, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)


@pytest.fixture(scope="module")
def bundle():
    torch.manual_seed(0)
    return load_imagenet_bundle(pretrained=False, mae_overrides=TINY_MAE)


def test_offline_fails_at_once_and_names_the_offline_bundles(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.time()
    with pytest.raises(OfflineError, match="'fmnist' and 'shapes' bundles ship with cag_lib"):
        load_imagenet_bundle()
    with pytest.raises(OfflineError, match="dl.fbaipublicfiles.com"):
        official_mae()
    assert time.time() - t0 < 5


def test_class_names_and_lookup(bundle):
    names = imagenet_class_names()
    assert len(names) == 1000 and names[1] == "goldfish"
    assert bundle.class_index("goldfish") == bundle.class_index("Carassius auratus") == 1
    assert bundle.class_index("n01443537") == 1 and bundle.class_index(7) == 7
    with pytest.raises(ValueError, match="WordNet id"):
        bundle.class_index("flying teapot")
    # a name of two classes is refused with both ids, never resolved to the first
    for name, ids in (("crane", ("n02012849", "n03126707")), ("cardigan", ("n02113186", "n02963159")),
                      ("maillot", ("n03710637", "n03710721"))):
        with pytest.raises(ValueError, match="ambiguous") as e:
            bundle.class_index(name)
        assert all(i in str(e.value) for i in ids), str(e.value)
    assert names[bundle.class_index("n03126707")] == "crane" and bundle.class_index("n02012849") == 134


def test_each_model_has_its_own_data_config(bundle):
    inc, vit = bundle.classifiers
    assert [c.name for c in bundle.classifiers] == list(SOURCES) and bundle.judge.name == JUDGE
    assert inc.input_size == 299 and vit.input_size == 224
    x = torch.rand(1, 3, 64, 64)                        # a 64-pixel stage: each wrapper resizes
    for c in (*bundle.classifiers, bundle.judge):
        out = c(x)
        assert out.logits.shape == (1, 1000) and out.features.ndim == 2


def test_local_checkpoints_in_the_official_layouts_load(tmp_path):
    mae = official_mae(pretrained=False, **TINY_MAE)
    with torch.no_grad():
        mae.mask_token.normal_()
    torch.save({"model": mae.state_dict()}, tmp_path / "mae.pth")       # the official MAE wrapping
    back = official_mae(pretrained=False, checkpoint=tmp_path / "mae.pth", **TINY_MAE)
    assert torch.equal(back.mask_token, mae.mask_token)
    vit = timm_classifier(SOURCES[1], pretrained=False)
    torch.save(vit.net.state_dict(), tmp_path / "vit.pth")               # a timm state dict on disk
    again = timm_classifier(SOURCES[1], checkpoint=tmp_path / "vit.pth")
    assert torch.equal(again.net.cls_token, vit.net.cls_token)


def test_a_224_pixel_checkpoint_serves_the_256_pixel_mae(tmp_path):
    """The official checkpoint was trained at 224 px; the paper's last stage is 256. Its position
    tables are fixed sin-cos tables of the grid, so the 256-px MAE re-makes them for 16 x 16 and takes
    every other weight as stored; a learned (not sin-cos) table cannot be re-gridded and is refused."""
    from cag_lib.mae import sincos_pos_embed_2d
    small = official_mae(pretrained=False, img_size=224, **TINY_MAE)
    torch.save({"model": small.state_dict()}, tmp_path / "mae.pth")
    big = official_mae(pretrained=False, checkpoint=tmp_path / "mae.pth", **TINY_MAE)
    assert big.img_size == 256 and big.num_patches == 256
    table = torch.from_numpy(sincos_pos_embed_2d(TINY_MAE["embed_dim"], 16)).float()[None]
    assert torch.equal(big.pos_embed, table)
    assert torch.equal(big.blocks[0].attn.qkv.weight, small.blocks[0].attn.qkv.weight)
    assert big.reconstruct(torch.rand(1, 3, 256, 256)).shape == (1, 3, 256, 256)
    with torch.no_grad():
        small.pos_embed.add_(0.01)                                      # now a learned table
    torch.save({"model": small.state_dict()}, tmp_path / "learned.pth")
    with pytest.raises(ValueError, match="not a fixed sin-cos table"):
        official_mae(pretrained=False, checkpoint=tmp_path / "learned.pth", **TINY_MAE)


def test_the_presets_are_the_papers_and_end_at_256_pixels(bundle, capsys):
    paper, fast = imagenet_preset(), imagenet_preset(preset="paper fast")
    assert paper.resolutions == fast.resolutions == (64, 128, 256) and paper.classifiers is None
    assert (paper.steps, paper.blur_sigma) == (3000, 0.0) and (fast.steps, fast.blur_sigma) == (2000, 0.5)
    assert paper.keep_visible and paper.diversity_weight == 1.0 and paper.distribution_weight == 1.0
    with pytest.raises(ValueError, match="'paper', 'paper fast'"):
        imagenet_preset(preset="fast")
    cfg = imagenet_preset(bundle, steps=2, resolutions=(32, 64), progress=False)
    assert "without the distribution loss" in capsys.readouterr().out and cfg.distribution_weight == 0
    res = generate(bundle, ["goldfish", "tench"], cfg)
    assert res.images.shape == (2, 3, 256, 256) and res.reconstructions.shape == (2, 3, 256, 256)
    assert len(res.history["loss"]) == 2 and all(torch.isfinite(torch.tensor(res.history["loss"])))


def write_folder(root, classes=(0, 1), n=3, size=48):
    """A tiny folder in ImageNet's train layout: n noise pictures per class (tench, goldfish)."""
    from cag_lib.imagenet import stand_in_folder
    return stand_in_folder(root, classes, n, size)


def test_class_statistics_from_a_folder_enable_eq6(bundle, tmp_path):
    real = write_folder(tmp_path / "train")                          # tench, goldfish
    stats = measure_class_stats(bundle, real)                         # every class the folder has
    mean, std = stats[0]
    assert mean.shape[0] == 1000 and (std[[0, 1]].abs().sum(1) > 0).all() and (std[2:] == 0).all()
    from cag_lib.imagenet import ImageNetFolder
    x = torch.stack([ImageNetFolder(real, [1])[k][0] for k in range(3)])
    f = bundle.classifiers[0](x).features                             # all three goldfish pictures
    assert torch.allclose(mean[1], f.mean(0), atol=1e-4) and torch.allclose(std[1], f.std(0), atol=1e-4)
    cfg = imagenet_preset(bundle, steps=1, resolutions=(32,), progress=False)
    assert cfg.distribution_weight == 1.0
    res = generate(bundle, ["goldfish", "goldfish"], cfg)
    assert torch.isfinite(torch.tensor(res.history["loss"])).all()
    with pytest.raises(ValueError, match=r"no statistics for target class\(es\) 980 \(volcano\)"):
        generate(bundle, ["goldfish", "volcano"], cfg)                 # before: mean 0, std 1, silently
    with pytest.raises(ValueError, match="0 image"):
        measure_class_stats(bundle, real, classes=["volcano"])
    with pytest.raises(FileNotFoundError, match="no such folder"):
        measure_class_stats(bundle, tmp_path / "nowhere")
    bundle.class_stats = None


def test_the_visible_patch_check_measures_both_pictures(bundle, tmp_path):
    real = write_folder(tmp_path / "train")
    row = visible_patch_check(bundle, real, ["tench", "goldfish"], per_class=2, n_masks=1)
    assert row["n"] == 4 and {"real", "keep_visible=False", "keep_visible=True"} <= set(row)
    assert row["keep_visible"] == (row["keep_visible=True"] >= row["keep_visible=False"])


def test_the_official_checkpoint_loads_with_weights_only(tmp_path, monkeypatch):
    """The official training script saves {'model', 'optimizer', 'epoch', 'scaler', 'args'}, args an
    argparse.Namespace: torch.load(weights_only=True) takes it (Namespace allowed, nothing else);
    the download path reads the file the same way."""
    import argparse
    mae = official_mae(pretrained=False, **TINY_MAE)
    opt = torch.optim.AdamW(mae.parameters())
    mae(torch.rand(1, 3, 256, 256))[0].backward()
    opt.step()
    path = tmp_path / "checkpoints" / "mae_visualize_vit_base.pth"
    path.parent.mkdir()
    torch.save({"model": mae.state_dict(), "optimizer": opt.state_dict(), "epoch": 799, "scaler": {},
                "args": argparse.Namespace(model="mae_vit_base_patch16", norm_pix_loss=True)}, path)
    back = official_mae(pretrained=False, checkpoint=path, **TINY_MAE)
    assert torch.equal(back.mask_token, mae.mask_token)
    import cag_lib.imagenet as imagenet
    monkeypatch.setattr(imagenet, "require_hub", lambda *a, **k: None)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("already on disk"))
    again = official_mae(**TINY_MAE)                                    # "downloaded": found in the hub cache
    assert torch.equal(again.decoder_pred.weight, mae.decoder_pred.weight)


def test_text_to_image_with_vit_b_32_runs_in_the_same_loop(bundle, tmp_path, monkeypatch):
    from cag_lib.imagenet import imagenet_text_bundle, imagenet_text_preset
    tb = imagenet_text_bundle(bundle, ["a goldfish", "a red fox in snow"], pretrained=False)
    assert tb.class_index("A goldfish") == 0 and tb.classifiers[0].input_size == 224
    assert tb.name == "imagenet-clip-openai"                           # OpenAI's weights: the paper's CLIP
    with pytest.raises(ValueError, match="'a goldfish', 'a red fox in snow'"):
        tb.class_index("a tabby cat")
    text = imagenet_text_preset()
    assert text.diversity_weight == 0 and text.distribution_weight == 0 and text.steps == 3000
    cfg = imagenet_text_preset(steps=2, resolutions=(32, 64), progress=False)
    res = generate(tb, ["a red fox in snow"], cfg)
    assert res.reconstructions.shape == (1, 3, 256, 256) and len(res.history["loss"]) == 2
    # a single prompt: the loss is its negative logit (the cross-entropy over one class is 0)
    one = imagenet_text_bundle(bundle, ["a red fox in snow"], pretrained=False, clip="laion")
    res = generate(one, ["a red fox in snow"], replace(cfg, steps=1, resolutions=(32,)))
    with torch.no_grad():
        logit = one.classifiers[0](bundle.mae.reconstruct(res.images, 0.0)).logits
    assert logit.shape == (1, 1) and res.history["loss"][0] < 0
    with pytest.raises(ValueError, match="'openai', 'laion'"):
        imagenet_text_bundle(bundle, ["a goldfish"], pretrained=False, clip="openclip")
    # a local open_clip checkpoint loads instead of the hub's, also offline
    path = tmp_path / "clip.pt"
    torch.save(tb.classifiers[0].model.state_dict(), path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = imagenet_text_bundle(bundle, ["a goldfish", "a koi"], checkpoint=path)
    assert torch.equal(again.classifiers[0].model.logit_scale, tb.classifiers[0].model.logit_scale)
    with pytest.raises(OfflineError, match="'fmnist' and 'shapes'"):
        imagenet_text_bundle(bundle, ["a goldfish", "a koi"])


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """Random weights for torch-fidelity's FID Inception, saved in its own format (the state dict
    that FeatureExtractorInceptionV3 loads from feature_extractor_weights_path)."""
    pytest.importorskip("torch_fidelity")
    from cag_lib.imagenet_score import fid_inception
    path = tmp_path_factory.mktemp("fid") / "pt_inception-2015-12-05.pth"
    torch.save(fid_inception("2048", pretrained=False).state_dict(), path)
    return path


def test_the_scorer_gives_fid_is_and_the_judges_numbers(bundle, tmp_path, inception_file):
    """FID and IS from torchmetrics with the FID Inception (random weights here), checked against
    the project's own Frechet distance and Inception score on the same features."""
    from cag_lib.imagenet import real_images
    from cag_lib.imagenet_score import _uint8, fid_inception, score_imagenet
    from cag_lib.metrics import frechet_distance, gaussian_stats, inception_score
    real = write_folder(tmp_path / "val", n=4, size=80)
    g = torch.Generator().manual_seed(1)                                 # a colour each, unlike the grey
    images = torch.rand(6, 3, 1, 1, generator=g) * (0.5 + 0.5 * torch.rand(6, 1, 256, 256, generator=g))  # noise of `real`
    targets = ["tench", "goldfish", "n01440764", 1, "tench", "goldfish"]
    s = score_imagenet(bundle, images, targets, real, inception_weights=inception_file, splits=1)
    assert s["n"] == 6 and s["n_real"] == 8 and 0 <= s["judge_acc"] <= 1 and 0 <= s["real_judge_acc"] <= 1
    pool = fid_inception("2048", inception_file)
    x_real = torch.cat([x for x, _ in real_images(real, [0, 1], size=256)])
    f_gen, f_real = pool(_uint8(images)), pool(_uint8(x_real))
    assert s["fid"] == pytest.approx(frechet_distance(*gaussian_stats(f_gen), *gaussian_stats(f_real)), rel=1e-5)
    logits = fid_inception("logits_unbiased", inception_file)(_uint8(images))
    assert s["is"] == pytest.approx(inception_score(logits), rel=1e-4)
    random = score_imagenet(bundle, images, targets, real, pretrained=False, splits=1)   # the same weights
    assert random["fid"] == pytest.approx(s["fid"], rel=1e-6) and random["is"] == pytest.approx(s["is"], rel=1e-6)
    with pytest.raises(ValueError, match="6 images for 5 targets"):
        score_imagenet(bundle, images, targets[:5], real, inception_weights=inception_file)


def test_the_colab_notebook_runs_in_smoke_mode(tmp_path):
    """notebooks/imagenet_colab.ipynb end to end with random weights, a tiny MAE and noise standing
    in for real images: every cell runs, nothing reaches stderr, and it leaves what it promises."""
    import json
    import zipfile
    from pathlib import Path

    import papermill as pm
    src = Path(__file__).parents[1] / "notebooks" / "imagenet_colab.ipynb"
    out = tmp_path / "out"
    pm.execute_notebook(str(src), str(tmp_path / "run.ipynb"), parameters={"smoke": True, "out": str(out)},
                        cwd=str(tmp_path), kernel_name="python3", progress_bar=False, execution_timeout=600)
    nb = json.loads((tmp_path / "run.ipynb").read_text())
    streams = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("name") == "stderr"]
    assert not streams, streams
    assert (out / "stages.png").exists() and (out / "text.png").exists()
    names = zipfile.ZipFile(out / "cag_imagenet.zip").namelist()
    assert sorted(n for n in names if n.endswith(".png")) == sorted(
        f"{kind}/{wnid}/{i:05d}.png" for kind in ("g", "x_T")
        for wnid, i in (("n01443537", 0), ("n01443537", 1), ("n02099601", 2), ("n02099601", 3)))
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"fid_g(x_T)", "is_g(x_T)", "fd_judge_x_T", "judge_acc_x_T", "seconds_per_image"} <= set(metrics)
