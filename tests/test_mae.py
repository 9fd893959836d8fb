import numpy as np
import pytest
import torch

from cag_lib.mae import MaskedAutoencoder, load_checkpoint, sincos_pos_embed_2d

CFG = dict(img_size=32, patch_size=4, in_chans=3, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=16,
           decoder_depth=1, decoder_num_heads=2, mlp_ratio=2.0, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


@pytest.fixture
def mae():
    torch.manual_seed(0)
    return MaskedAutoencoder(**CFG).eval()


def test_patchify_roundtrip_and_official_order(mae):
    x = torch.rand(2, 3, 32, 32)
    p = mae.patchify(x)
    assert p.shape == (2, 64, 4 * 4 * 3)
    torch.testing.assert_close(mae.unpatchify(p), x)
    # official order: patch (row 0, col 1) holds pixels [0:4, 4:8], channels last
    torch.testing.assert_close(p[0, 1].view(4, 4, 3), x[0, :, 0:4, 4:8].permute(1, 2, 0))


def test_masking_counts_and_reproducibility(mae):
    x = torch.rand(4, 3, 32, 32)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    r1, m1 = mae.reconstruct(x, 0.75, generator=g1, return_mask=True)
    r2, m2 = mae.reconstruct(x, 0.75, generator=g2, return_mask=True)
    assert m1.shape == (4, 64) and m1.sum(1).tolist() == [48.0] * 4
    assert torch.equal(m1, m2) and torch.equal(r1, r2)
    noise = mae.mask_noise(4, torch.Generator().manual_seed(3))
    r3, m3 = mae.reconstruct(x, 0.75, noise=noise, return_mask=True)
    assert torch.equal(m1, m3) and torch.equal(r1, r3)
    _, m4 = mae.reconstruct(x, 0.75, generator=torch.Generator().manual_seed(4), return_mask=True)
    assert not torch.equal(m1, m4)  # a fresh mask
    # masked patches are exactly those with the largest noise
    keep = torch.argsort(noise, 1)[:, :16]
    assert torch.equal(torch.gather(m3, 1, keep), torch.zeros(4, 16))


def test_reconstruct_keeps_visible_patches_and_passes_gradients(mae):
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    rec, mask = mae.reconstruct(x, 0.75, generator=torch.Generator().manual_seed(0), return_mask=True)
    assert rec.shape == x.shape
    vis = 1 - mae.mask_image(mask)
    torch.testing.assert_close(rec * vis, x * vis, atol=1e-5, rtol=0)
    rec.sum().backward()
    assert x.grad.abs().sum() > 0
    dec = mae.reconstruct(x, 0.75, generator=torch.Generator().manual_seed(0), keep_visible=False)
    assert not torch.allclose(dec * vis, x * vis)  # the decoder's own output differs at visible positions


def test_bad_inputs(mae):
    with pytest.raises(ValueError, match="32x32"):
        mae.reconstruct(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="mask_ratio"):
        mae.reconstruct(torch.rand(1, 3, 32, 32), mask_ratio=1.0)


def test_loss_weights_visible_patches(mae):
    x = torch.rand(2, 3, 32, 32)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    l0, pred, mask = mae(x, 0.75, generator=g())
    l1, _, _ = mae(x, 0.75, generator=g(), visible_weight=1.0)
    err = ((pred - mae.patchify(mae.normalize(x))) ** 2).mean(-1)
    torch.testing.assert_close(l0, (err * mask).sum() / mask.sum())
    torch.testing.assert_close(l1 - l0, (err * (1 - mask)).sum() / (1 - mask).sum())


def test_sincos_matches_the_official_formula():
    emb = sincos_pos_embed_2d(8, 2)  # (1 + 4, 8)
    assert emb.shape == (5, 8) and np.all(emb[0] == 0)
    # token (row h=1, col w=0): first half encodes w (=0), second half h (=1)
    omega = 1.0 / 10000 ** (np.arange(2) / 2.0)
    np.testing.assert_allclose(emb[1 + 2], np.concatenate([np.sin(0 * omega), np.cos(0 * omega),
                                                            np.sin(1 * omega), np.cos(1 * omega)]))


def official_state_dict(cfg, seed=0):
    """A random state dict written key by key in the official MAE layout (models_mae.py)."""
    g = torch.Generator().manual_seed(seed)
    d, dd, p, c = cfg["embed_dim"], cfg["decoder_embed_dim"], cfg["patch_size"], cfg["in_chans"]
    n = (cfg["img_size"] // p) ** 2
    r = lambda *s: torch.randn(*s, generator=g) * 0.02  # noqa: E731

    def block(prefix, dim):
        h = int(dim * cfg["mlp_ratio"])
        return {f"{prefix}.norm1.weight": 1 + r(dim), f"{prefix}.norm1.bias": r(dim),
                f"{prefix}.attn.qkv.weight": r(3 * dim, dim), f"{prefix}.attn.qkv.bias": r(3 * dim),
                f"{prefix}.attn.proj.weight": r(dim, dim), f"{prefix}.attn.proj.bias": r(dim),
                f"{prefix}.norm2.weight": 1 + r(dim), f"{prefix}.norm2.bias": r(dim),
                f"{prefix}.mlp.fc1.weight": r(h, dim), f"{prefix}.mlp.fc1.bias": r(h),
                f"{prefix}.mlp.fc2.weight": r(dim, h), f"{prefix}.mlp.fc2.bias": r(dim)}

    sd = {"cls_token": r(1, 1, d), "pos_embed": r(1, n + 1, d), "mask_token": r(1, 1, dd),
          "decoder_pos_embed": r(1, n + 1, dd), "patch_embed.proj.weight": r(d, c, p, p),
          "patch_embed.proj.bias": r(d), "norm.weight": 1 + r(d), "norm.bias": r(d),
          "decoder_embed.weight": r(dd, d), "decoder_embed.bias": r(dd), "decoder_norm.weight": 1 + r(dd),
          "decoder_norm.bias": r(dd), "decoder_pred.weight": r(p * p * c, dd), "decoder_pred.bias": r(p * p * c)}
    for i in range(cfg["depth"]):
        sd.update(block(f"blocks.{i}", d))
    for i in range(cfg["decoder_depth"]):
        sd.update(block(f"decoder_blocks.{i}", dd))
    return sd


def test_official_checkpoint_roundtrip(tmp_path):
    sd = official_state_dict(CFG)
    torch.save({"model": sd, "epoch": 799}, tmp_path / "mae_official.pth")  # as the official files are
    model = load_checkpoint(MaskedAutoencoder(**CFG), tmp_path / "mae_official.pth")
    assert set(model.state_dict()) == set(sd)
    for k, v in sd.items():
        assert torch.equal(model.state_dict()[k], v), k
    # save our own model the same way and load it back: same reconstruction
    torch.save({"model": model.state_dict()}, tmp_path / "again.pth")
    again = load_checkpoint(MaskedAutoencoder(**CFG), tmp_path / "again.pth")
    x, noise = torch.rand(2, 3, 32, 32), model.mask_noise(2, torch.Generator().manual_seed(0))
    torch.testing.assert_close(model.reconstruct(x, noise=noise), again.reconstruct(x, noise=noise))


def test_checkpoint_with_wrong_layout_fails_loudly(tmp_path):
    sd = official_state_dict(CFG)
    sd["decoder_head.weight"] = sd.pop("decoder_pred.weight")
    torch.save({"model": sd}, tmp_path / "bad.pth")
    with pytest.raises(RuntimeError, match="decoder_pred.weight"):
        load_checkpoint(MaskedAutoencoder(**CFG), tmp_path / "bad.pth")
