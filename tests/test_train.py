"""Every training entry point runs for a few steps and leaves a loadable, checksummed model."""
import pytest
import torch

from cag_lib import zoo
from cag_lib.train import TrainConfig, augment, main, one_cycle


@pytest.mark.parametrize("bundle,arch,extra", [
    ("fmnist", "resnet", []), ("fmnist", "vit", ["--label-smoothing", "0.1"]),
    ("shapes", "convnext", ["--role", "judge", "--augment", "strong", "--seed", "1"])])
def test_classifier_entry_point(tmp_path, bundle, arch, extra):
    main(["classifier", "--bundle", bundle, "--arch", arch, "--name", arch, "--limit", "256",
          "--max-steps", "2", "--test-limit", "64", "--out", str(tmp_path), *extra])
    entry = zoo.read_manifest(tmp_path)[bundle][arch]
    assert entry["training"]["steps"] == 2 and entry["metrics"]["test_images"] == 64
    assert entry["training"]["command"].startswith("python -m cag_lib.train classifier")
    model = zoo.load_model(bundle, arch, weights_dir=tmp_path)
    assert model(torch.rand(2, model.in_chans, 32, 32)).logits.shape[0] == 2


@pytest.mark.parametrize("bundle", ["fmnist", "shapes"])
def test_mae_entry_point(tmp_path, bundle):
    main(["mae", "--bundle", bundle, "--limit", "128", "--max-steps", "2", "--test-limit", "32",
          "--batch-size", "64", "--out", str(tmp_path)])
    entry = zoo.read_manifest(tmp_path)[bundle]["mae"]
    assert "masked_mse@0.75" in entry["metrics"] and entry["config"]["img_size"] == 32
    mae = zoo.load_model(bundle, "mae", weights_dir=tmp_path)
    assert mae.reconstruct(torch.rand(1, mae.in_chans, 32, 32)).shape == (1, mae.in_chans, 32, 32)


def test_fine_tuning_starts_from_the_init_model_and_records_it(tmp_path):
    small = ["--limit", "128", "--max-steps", "1", "--test-limit", "16", "--batch-size", "64"]
    main(["mae", "--bundle", "fmnist", *small, "--mae-config", '{"embed_dim": 32, "depth": 1, "num_heads": 2}',
          "--out", str(tmp_path / "a")])
    # lr 0: AdamW moves nothing (weight decay is scaled by lr too), so the saved model is the init model
    main(["mae", "--bundle", "fmnist", *small, "--lr", "0", "--seed", "5", "--init", "mae",
          "--init-dir", str(tmp_path / "a"), "--out", str(tmp_path / "b")])
    a, b = (zoo.load_model("fmnist", "mae", weights_dir=tmp_path / d).state_dict() for d in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    start, tuned = (zoo.read_manifest(tmp_path / d)["fmnist"]["mae"] for d in "ab")
    assert tuned["training"]["init"]["sha256"] == start["sha256"] and tuned["config"]["embed_dim"] == 32
    assert tuned["training"]["config"]["init"] == "mae" and "mae" not in tuned["training"]["config"]
    # without --init the same run starts from random weights
    main(["mae", "--bundle", "fmnist", *small, "--lr", "0", "--seed", "5", "--mae-config",
          '{"embed_dim": 32, "depth": 1, "num_heads": 2}', "--out", str(tmp_path / "c")])
    c = zoo.load_model("fmnist", "mae", weights_dir=tmp_path / "c").state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)
    with pytest.raises(ValueError, match="its mae models: mae"):
        main(["mae", "--bundle", "fmnist", *small, "--init", "nope", "--init-dir", str(tmp_path / "a"),
              "--out", str(tmp_path / "d")])
    with pytest.raises(SystemExit):   # the architecture comes from the init model
        main(["mae", "--bundle", "fmnist", *small, "--init", "mae", "--init-dir", str(tmp_path / "a"),
              "--mae-config", '{"depth": 2}'])


def test_diffusion_entry_point(tmp_path):
    main(["diffusion", "--bundle", "fmnist", "--limit", "64", "--max-steps", "2", "--test-limit", "16",
          "--batch-size", "32", "--augment", "none", "--ema", "0.9", "--out", str(tmp_path),
          "--unet-config", '{"block_out_channels": [8, 16, 16], "norm_num_groups": 4}'])
    entry = zoo.read_manifest(tmp_path)["fmnist"]["diffusion"]
    assert entry["role"] == "diffusion" and entry["config"]["unet"]["block_out_channels"] == [8, 16, 16]
    assert 0 < entry["metrics"]["test_eps_mse"] < 2 and entry["training"]["config"]["ema"] == 0.9
    model = zoo.load_model("fmnist", "diffusion", weights_dir=tmp_path)
    t = torch.tensor([10, 500])
    assert model(torch.randn(2, 1, 32, 32), t, torch.tensor([0, 9])).shape == (2, 1, 32, 32)


def test_clip_entry_point_skips_the_held_out_compositions(tmp_path):
    from cag_lib.shapes import load_shapes
    from cag_lib.train import TrainConfig, training_data
    main(["clip", "--bundle", "shapes", "--limit", "600", "--max-steps", "2", "--test-limit", "32",
          "--batch-size", "64", "--augment", "none", "--clip-groups", "8", "--out", str(tmp_path)])
    entry = zoo.read_manifest(tmp_path)["shapes"]["clip"]
    assert set(entry["metrics"]) >= {"zero_shot_shape_accuracy", "zero_shot_colour_accuracy"}
    assert entry["config"]["open_clip_config"]["vision_cfg"]["image_size"] == 32
    model = zoo.load_model("shapes", "clip", weights_dir=tmp_path)
    assert model.encode_image(torch.rand(1, 3, 32, 32)).shape == (1, 64)
    x, tokens, _ = training_data(TrainConfig(kind="clip", bundle="shapes"), "train", 600)
    held = 600 - len(x)
    assert held > 0 and len(tokens) == len(x)
    from cag_lib.shapes import held_out_mask
    assert held_out_mask(load_shapes("train", n=600)).sum() == held


def test_grouped_batches_share_colour_and_background_and_cover_the_epoch():
    from cag_lib.train import batch_indices, clip_group_keys, training_data
    keys = clip_group_keys(600)
    assert len(keys) == len(training_data(TrainConfig(kind="clip", bundle="shapes"), "train", 600)[0])
    batches = batch_indices(len(keys), 64, torch.Generator().manual_seed(0), keys, group=8)
    flat = torch.cat(batches)
    assert sorted(flat.tolist()) == list(range(len(keys)))          # every scene once per epoch
    assert all(len(b) == 64 for b in batches[:-1])
    # runs of 8 consecutive indices share a key far more often than random batches would
    def shared(order):
        return (keys[order][1:] == keys[order][:-1]).float().mean().item()
    plain = torch.cat(batch_indices(len(keys), 64, torch.Generator().manual_seed(0)))
    assert shared(flat) > 0.6 and shared(plain) < 0.1


def test_attribute_judge_entry_point(tmp_path):
    main(["classifier", "--bundle", "shapes", "--target", "colour", "--name", "colour_judge", "--limit", "128",
          "--max-steps", "2", "--test-limit", "16", "--out", str(tmp_path)])
    assert zoo.load_model("shapes", "colour_judge", weights_dir=tmp_path).class_names[0] == "red"
    with pytest.raises(ValueError, match="needs a classifier on the shapes world"):
        main(["classifier", "--bundle", "fmnist", "--target", "colour", "--out", str(tmp_path)])


def test_training_is_seeded(tmp_path):
    for run in ("a", "b"):
        main(["classifier", "--bundle", "shapes", "--arch", "resnet", "--limit", "128", "--max-steps", "2",
              "--test-limit", "16", "--out", str(tmp_path / run)])
    sums = [zoo.read_manifest(tmp_path / r)["shapes"]["resnet"]["sha256"] for r in ("a", "b")]
    assert sums[0] == sums[1]


def test_augment_keeps_shape_and_range():
    x = torch.rand(8, 3, 32, 32)
    for s in ("none", "light", "strong"):
        y = augment(x, s, torch.Generator().manual_seed(0))
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert torch.equal(augment(x, "none", torch.Generator()), x)


def test_bad_kind():
    from cag_lib.train import train
    with pytest.raises(ValueError, match="'classifier', 'mae', 'diffusion', 'clip', 'gan'"):
        train(TrainConfig(kind="vae"))


def test_adversarial_clip_entry_point_records_its_attack(tmp_path):
    main(["clip", "--bundle", "shapes", "--limit", "300", "--max-steps", "2", "--test-limit", "32", "--batch-size", "32",
          "--augment", "none", "--adv-eps", "0.5", "--adv-steps", "2", "--clip-model", "cag-shapes-clip-vit",
          "--out", str(tmp_path)])
    entry = zoo.read_manifest(tmp_path)["shapes"]["clip"]
    assert entry["training"]["config"]["adv_eps"] == 0.5 and entry["config"]["model"] == "cag-shapes-clip-vit"
    assert entry["config"]["open_clip_config"]["vision_cfg"]["patch_size"] == 4
    assert zoo.load_model("shapes", "clip", weights_dir=tmp_path).encode_image(torch.rand(1, 3, 32, 32)).shape == (1, 64)


def test_pgd_l2_stays_in_the_ball_and_raises_the_loss():
    from cag_lib.attacks import pgd_l2
    torch.manual_seed(0)
    w = torch.randn(3 * 8 * 8, 4)
    target = torch.tensor([0, 1, 2, 3])

    def loss_fn(x):   # a linear classifier's cross-entropy
        return torch.nn.functional.cross_entropy(x.flatten(1) @ w, target)
    x = torch.rand(4, 3, 8, 8)
    adv = pgd_l2(loss_fn, x, eps=0.5, steps=5, g=torch.Generator().manual_seed(0))
    assert ((adv - x).flatten(1).norm(dim=1) <= 0.5 + 1e-5).all()
    assert adv.min() >= 0 and adv.max() <= 1
    assert loss_fn(adv) > loss_fn(x) + 0.1


def test_interrupted_training_saves_and_records_what_was_done(tmp_path, monkeypatch):
    import dataclasses

    import cag_lib.train as train
    calls = {"n": 0}
    real = train.KINDS["classifier"].loss

    def stop_at_third(*args, **kwargs):   # Ctrl-C during the third batch
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setitem(train.KINDS, "classifier", dataclasses.replace(train.KINDS["classifier"], loss=stop_at_third))
    main(["classifier", "--bundle", "fmnist", "--arch", "resnet", "--name", "resnet", "--limit", "256",
          "--batch-size", "32", "--max-steps", "6", "--test-limit", "32", "--out", str(tmp_path)])
    entry = zoo.read_manifest(tmp_path)["fmnist"]["resnet"]
    assert entry["training"]["steps"] == 2 and entry["training"]["interrupted_after_steps_of"] == 6
    assert zoo.load_model("fmnist", "resnet", weights_dir=tmp_path)(torch.rand(1, 1, 32, 32)).logits.shape == (1, 10)


@pytest.mark.parametrize("total", [1, 2, 9, 10, 11, 20])
def test_learning_rate_schedule_runs_any_number_of_steps(total):   # OneCycleLR alone fails at total = 10
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = one_cycle(opt, 1e-3, total)
    lrs = []
    for _ in range(total):   # as train() steps it
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert max(lrs) <= 1e-3 * (1 + 1e-6) and min(lrs) > 0


def test_gan_entry_point_trains_both_players_and_reloads(tmp_path):
    from cag_lib.gan import ConditionalGAN
    torch.manual_seed(0)
    before = ConditionalGAN(zoo.world_classes("fmnist"))
    main(["gan", "--bundle", "fmnist", "--name", "gan", "--limit", "128", "--max-steps", "3", "--batch-size", "32",
          "--augment", "none", "--lr", "0.01", "--out", str(tmp_path)])
    entry = zoo.read_manifest(tmp_path)["fmnist"]["gan"]
    assert entry["role"] == "gan" and 0 <= entry["metrics"]["sample_judge_accuracy"] <= 1
    gan = zoo.load_model("fmnist", "gan", weights_dir=tmp_path)
    x = gan.sample(torch.randn(4, gan.z_dim), torch.tensor([0, 1, 2, 9]))
    assert x.shape == (4, 1, 32, 32) and 0 <= x.min() and x.max() <= 1
    # both players moved: G by the loop's optimiser, D by its own
    for part in ("generator", "discriminator"):
        w0 = next(getattr(before, part).parameters())
        w1 = next(getattr(gan, part).parameters())
        assert w0.shape == w1.shape and not torch.allclose(w0, w1, atol=1e-3, rtol=1e-2), part  # > float16
