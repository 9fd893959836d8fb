"""The masked autoencoder g of the paper's eq. 3, built from timm's ViT blocks.

Parameter names follow the official MAE code (facebookresearch/mae, models_mae.py), so an official
checkpoint (`{'model': state_dict}`) loads with `load_state_dict` unchanged:
patch_embed, cls_token, pos_embed, blocks.N.*, norm, decoder_embed, mask_token,
decoder_pos_embed, decoder_blocks.N.*, decoder_norm, decoder_pred.

Unlike the official module, this one takes and returns images in pixel space, (B, C, H, W) in
[0, 1]: it normalises with its own mean/std on the way in and undoes it on the way out.
"""
from __future__ import annotations

import argparse

from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block

from .files import read_or_explain


def sincos_pos_embed_2d(dim: int, grid_size: int, cls_token: bool = True) -> np.ndarray:
    """The official MAE fixed 2D sine-cosine position embedding: (grid_size**2 [+1], dim)."""
    def one_d(d, pos):  # (M,) -> (M, d)
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid = np.meshgrid(np.arange(grid_size, dtype=np.float64), np.arange(grid_size, dtype=np.float64))  # w first
    emb = np.concatenate([one_d(dim // 2, grid[0]), one_d(dim // 2, grid[1])], axis=1)
    return np.concatenate([np.zeros([1, dim]), emb], axis=0) if cls_token else emb


class MaskedAutoencoder(nn.Module):
    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 1024,
                 depth: int = 24, num_heads: int = 16, decoder_embed_dim: int = 512, decoder_depth: int = 8,
                 decoder_num_heads: int = 16, mlp_ratio: float = 4.0, norm_pix_loss: bool = False,
                 mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225)):
        super().__init__()
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.img_size, self.patch_size, self.in_chans = img_size, patch_size, in_chans
        self.norm_pix_loss = norm_pix_loss
        self.config = dict(img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim,
                           depth=depth, num_heads=num_heads, decoder_embed_dim=decoder_embed_dim,
                           decoder_depth=decoder_depth, decoder_num_heads=decoder_num_heads, mlp_ratio=mlp_ratio,
                           norm_pix_loss=norm_pix_loss, mean=tuple(mean), std=tuple(std))
        # encoder
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        n = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, embed_dim), requires_grad=False)  # fixed sin-cos
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer)
                                     for _ in range(depth)])
        self.norm = norm_layer(embed_dim)
        # decoder
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, n + 1, decoder_embed_dim), requires_grad=False)
        self.decoder_blocks = nn.ModuleList([Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True,
                                                   norm_layer=norm_layer) for _ in range(decoder_depth)])
        self.decoder_norm = norm_layer(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size ** 2 * in_chans, bias=True)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self._init_weights()

    def _init_weights(self):  # as the official code does
        g = int(self.patch_embed.num_patches ** 0.5)
        self.pos_embed.data.copy_(torch.from_numpy(sincos_pos_embed_2d(self.pos_embed.shape[-1], g)).float()[None])
        self.decoder_pos_embed.data.copy_(
            torch.from_numpy(sincos_pos_embed_2d(self.decoder_pos_embed.shape[-1], g)).float()[None])
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def num_patches(self) -> int:
        return self.patch_embed.num_patches

    # --- patches ----------------------------------------------------------------------------
    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, L, p*p*C), in the official order."""
        p, c = self.patch_size, self.in_chans
        h, w = imgs.shape[2] // p, imgs.shape[3] // p
        x = imgs.reshape(imgs.shape[0], c, h, p, w, p)
        return torch.einsum("nchpwq->nhwpqc", x).reshape(imgs.shape[0], h * w, p * p * c)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, p*p*C) -> (B, C, H, W)."""
        p, c = self.patch_size, self.in_chans
        h = w = int(x.shape[1] ** 0.5)
        x = torch.einsum("nhwpqc->nchpwq", x.reshape(x.shape[0], h, w, p, p, c))
        return x.reshape(x.shape[0], c, h * p, w * p)

    def mask_noise(self, batch: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """Uniform noise (B, L) whose argsort picks the patches to keep; pass a generator to reproduce."""
        return torch.rand(batch, self.num_patches, generator=generator, device=device or self.pos_embed.device)

    def random_masking(self, x: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None,
                       generator: torch.Generator | None = None):
        """Keep a random (1 - mask_ratio) of the tokens x (B, L, D).

        Returns (x_kept (B, L_keep, D), mask (B, L) with 1 = removed, ids_restore (B, L))."""
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), not {mask_ratio}")
        b, l, d = x.shape
        len_keep = int(l * (1 - mask_ratio))
        if noise is None:
            noise = self.mask_noise(b, generator, x.device)
        ids_shuffle = torch.argsort(noise, dim=1)  # ascending: small noise is kept
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        x_kept = torch.gather(x, 1, ids_keep[..., None].expand(-1, -1, d))
        mask = torch.ones(b, l, device=x.device)
        mask[:, :len_keep] = 0
        return x_kept, torch.gather(mask, 1, ids_restore), ids_restore

    # --- the two halves -----------------------------------------------------------------------
    def forward_encoder(self, x: torch.Tensor, mask_ratio: float, noise=None, generator=None):
        """Normalised images (B, C, H, W) -> (latent (B, 1 + L_keep, D), mask, ids_restore). Only visible
        patches go through the encoder."""
        x = self.patch_embed(x) + self.pos_embed[:, 1:, :]                    # (B, L, D)
        x, mask, ids_restore = self.random_masking(x, mask_ratio, noise, generator)
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, x: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Latent (B, 1 + L_keep, D) -> per-patch predictions (B, L, p*p*C), normalised pixel space."""
        x = self.decoder_embed(x)
        b, l = ids_restore.shape
        mask_tokens = self.mask_token.expand(b, l + 1 - x.shape[1], -1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
        x_ = torch.gather(x_, 1, ids_restore[..., None].expand(-1, -1, x.shape[2]))  # unshuffle
        x = torch.cat([x[:, :1, :], x_], dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:, :]

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor,
                     visible_weight: float = 0.0) -> torch.Tensor:
        """Mean squared error on masked patches (+ visible_weight x the error on visible ones)."""
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mu, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mu) / (var + 1e-6) ** 0.5
        err = ((pred - target) ** 2).mean(-1)  # (B, L)
        loss = (err * mask).sum() / mask.sum()
        if visible_weight:
            loss = loss + visible_weight * (err * (1 - mask)).sum() / (1 - mask).sum().clamp(min=1)
        return loss

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, imgs: torch.Tensor, mask_ratio: float = 0.75, noise=None, generator=None,
                visible_weight: float = 0.0):
        """Pixel-space images -> (loss, pred (B, L, p*p*C), mask (B, L)), as the official forward."""
        x = self.normalize(imgs)
        latent, mask, ids_restore = self.forward_encoder(x, mask_ratio, noise, generator)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(x, pred, mask, visible_weight), pred, mask

    def reconstruct(self, imgs: torch.Tensor, mask_ratio: float = 0.75, noise=None, generator=None,
                    keep_visible: bool = True, return_mask: bool = False):
        """g(x): the full image, visible patches kept (if keep_visible) and masked patches predicted.

        imgs (B, C, H, W) in [0, 1] at the MAE's img_size -> (B, C, H, W), plus the mask (B, L) if asked.
        Differentiable with respect to imgs. Not meaningful with norm_pix_loss (per-patch statistics lost).
        """
        if imgs.shape[-1] != self.img_size or imgs.shape[-2] != self.img_size:
            raise ValueError(f"this MAE works at {self.img_size}x{self.img_size}; got {tuple(imgs.shape[-2:])}")
        x = self.normalize(imgs)
        latent, mask, ids_restore = self.forward_encoder(x, mask_ratio, noise, generator)
        pred = self.forward_decoder(latent, ids_restore)                    # (B, L, p*p*C)
        if keep_visible:
            m = mask[..., None]
            pred = pred * m + self.patchify(x) * (1 - m)
        out = self.unpatchify(pred) * self.std + self.mean
        return (out, mask) if return_mask else out

    def mask_image(self, mask: torch.Tensor) -> torch.Tensor:
        """A (B, L) patch mask as a (B, 1, H, W) pixel mask, 1 = masked (for figures)."""
        m = mask[..., None].expand(-1, -1, self.patch_size ** 2)            # (B, L, p*p)
        p, h = self.patch_size, int(mask.shape[1] ** 0.5)
        return torch.einsum("nhwpq->nhpwq", m.reshape(-1, h, h, p, p)).reshape(-1, 1, h * p, h * p)


def _read_state(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    with torch.serialization.safe_globals([argparse.Namespace]):   # the official training script
        state = torch.load(path, map_location="cpu", weights_only=True)   # also saves its arguments
    if not isinstance(state, dict):
        raise ValueError(f"it holds a {type(state).__name__}, not a state dict")
    return state.get("model", state)


def load_checkpoint(model: MaskedAutoencoder, path: str, strict: bool = True) -> MaskedAutoencoder:
    """Load an official-layout checkpoint (a .pth holding {'model': state_dict}, or a bare state dict,
    or a .safetensors file) into `model`; returns the model. A model built at another image size than
    the checkpoint's takes it too (load_state)."""
    state = read_or_explain(path, _read_state, "a MAE checkpoint (.pth or .safetensors)",
                            "download it again (the official MAE: mae_pretrain_vit_base.pth)")
    return load_state(model, state, strict)


def load_state(model: MaskedAutoencoder, state: dict, strict: bool = True) -> MaskedAutoencoder:
    """state (official names) into model. The official position embeddings are fixed sin-cos tables
    of the patch grid, not learned: a checkpoint trained at 224 px (a 14x14 grid) serves a model built
    at 256 px (16x16) with both tables recomputed for the new grid, as the model already holds them.
    A table that is not the sin-cos table of its grid cannot be moved so, and is refused."""
    state = {k: v.float() for k, v in state.items()}
    for key in ("pos_embed", "decoder_pos_embed"):
        have, want = state.get(key), getattr(model, key)
        if have is None or have.shape == want.shape:
            continue
        grid = int(round((have.shape[1] - 1) ** 0.5))
        table = torch.from_numpy(sincos_pos_embed_2d(have.shape[-1], grid)).float()[None]
        if grid * grid + 1 != have.shape[1] or have.shape[-1] != want.shape[-1] \
                or not torch.allclose(have, table, atol=1e-4):
            raise ValueError(f"the checkpoint's {key} {tuple(have.shape)} does not fit this MAE's "
                             f"{tuple(want.shape)} and is not a fixed sin-cos table that could be re-made "
                             f"for the new grid; build the MAE at the checkpoint's image size")
        state[key] = want.detach().clone()                  # the model's own table, for its grid
    model.load_state_dict(state, strict=strict)
    return model
