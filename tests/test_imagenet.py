"""The ImageNet bundle's code path, with randomly initialised models (no weights can be downloaded here)."""
import time

import pytest
import torch

from cag_lib import generate
from cag_lib.imagenet import (JUDGE, SOURCES, OfflineError, imagenet_class_names, imagenet_preset,
                              load_imagenet_bundle, measure_class_stats, official_mae, timm_classifier)

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


def test_the_preset_runs_two_steps_end_to_end(bundle, capsys):
    cfg = imagenet_preset(bundle, steps=2, resolutions=(32, 64), progress=False)
    assert "without the distribution loss" in capsys.readouterr().out and cfg.distribution_weight == 0
    full = imagenet_preset()
    assert full.resolutions == (64, 128, 256) and full.steps == 2000 and full.classifiers is None
    res = generate(bundle, ["goldfish", "tench"], cfg)
    assert res.images.shape == (2, 3, 256, 256) and res.reconstructions.shape == (2, 3, 256, 256)
    assert len(res.history["loss"]) == 2 and all(torch.isfinite(torch.tensor(res.history["loss"])))


def test_class_statistics_from_a_folder_enable_eq6(bundle, tmp_path):
    from PIL import Image
    for wnid in ("n01440764", "n01443537"):                             # tench, goldfish
        (tmp_path / wnid).mkdir()
        for k in range(2):
            Image.fromarray((torch.rand(40, 48, 3) * 255).byte().numpy()).save(tmp_path / wnid / f"{k}.png")
    stats = measure_class_stats(bundle, tmp_path, per_class=2)
    assert len(stats) == 2 and stats[0][0].shape[0] == 1000 and not torch.equal(stats[0][0][1], torch.zeros_like(stats[0][0][1]))
    cfg = imagenet_preset(bundle, steps=1, resolutions=(32,), progress=False)
    assert cfg.distribution_weight == 1.0
    res = generate(bundle, ["goldfish", "goldfish"], cfg)
    assert torch.isfinite(torch.tensor(res.history["loss"])).all()
    bundle.class_stats = None


def test_text_to_image_with_vit_b_32_runs_in_the_same_loop(bundle, tmp_path, monkeypatch):
    from cag_lib.imagenet import imagenet_text_bundle
    tb = imagenet_text_bundle(bundle, ["a goldfish", "a red fox in snow"], pretrained=False)
    assert tb.class_index("A goldfish") == 0 and tb.classifiers[0].input_size == 224
    with pytest.raises(ValueError, match="'a goldfish', 'a red fox in snow'"):
        tb.class_index("a tabby cat")
    cfg = imagenet_preset(bundle, steps=2, resolutions=(32, 64), progress=False, diversity_weight=0)
    res = generate(tb, ["a red fox in snow"], cfg)
    assert res.reconstructions.shape == (1, 3, 256, 256) and len(res.history["loss"]) == 2
    # a local open_clip checkpoint loads instead of the hub's, also offline
    path = tmp_path / "clip.pt"
    torch.save(tb.classifiers[0].model.state_dict(), path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = imagenet_text_bundle(bundle, ["a goldfish", "a koi"], checkpoint=path)
    assert torch.equal(again.classifiers[0].model.logit_scale, tb.classifiers[0].model.logit_scale)
    with pytest.raises(ValueError, match="at least two prompts"):
        imagenet_text_bundle(bundle, ["a goldfish"], checkpoint=path)
    with pytest.raises(OfflineError, match="'fmnist' and 'shapes'"):
        imagenet_text_bundle(bundle, ["a goldfish", "a koi"])
