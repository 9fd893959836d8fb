"""Milliseconds per step of the CaG full recipe, against a plain implementation of the same maths,
measured in one run.

    python benchmarks/speed.py [--bundle fmnist] [--batch 80] [--steps 10] [--rounds 3] [--json PATH]

The two are timed in alternating rounds (sampler, plain, sampler, plain, ...) so that a slow patch
of the machine hits both; each reports the median of its rounds.

The plain implementation does what a first version would: every MAE token goes through the
encoder (visible tokens attend only to visible ones, so the maths is the same as encoding the
visible tokens alone), the models' parameters keep requires_grad, and each ensemble member gets its
own reconstruction pass. The sampler instead encodes only the visible tokens, freezes the weights
and shares one reconstruction across the ensemble. Both run the full recipe's loss (classification,
diversity, distribution, gradient blur) at the MAE's resolution, on the same masks; the script
first checks that both reconstructions agree on one mask.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from cag_lib import bench
from cag_lib.generate import GenerateConfig, blur_gradient, generate
from cag_lib.losses import classification_loss, distribution_loss, diversity_loss
from cag_lib.stats import bundle_class_stats
from cag_lib.zoo import load_bundle


def plain_reconstruct(mae, imgs, mask_ratio, noise, keep_visible=False):
    """g(x) with all tokens through the encoder; masked tokens are hidden by the attention mask."""
    x = mae.normalize(imgs)
    tokens = mae.patch_embed(x) + mae.pos_embed[:, 1:, :]                      # (B, L, D)
    b, l, _ = tokens.shape
    keep = int(l * (1 - mask_ratio))
    ids_shuffle = torch.argsort(noise, 1)
    ids_restore = torch.argsort(ids_shuffle, 1)
    visible = torch.zeros(b, l, dtype=torch.bool)
    visible.scatter_(1, ids_shuffle[:, :keep], True)
    visible = torch.cat([torch.ones(b, 1, dtype=torch.bool), visible], 1)     # cls is visible
    cls = (mae.cls_token + mae.pos_embed[:, :1, :]).expand(b, -1, -1)
    h = torch.cat([cls, tokens], 1)
    attn_mask = visible[:, None, None, :].expand(-1, 1, l + 1, -1)            # attend to visible keys only
    for blk in mae.blocks:
        h = blk(h, attn_mask=attn_mask)
    h = mae.norm(h)
    kept = torch.gather(h[:, 1:], 1, ids_shuffle[:, :keep, None].expand(-1, -1, h.shape[-1]))
    pred = mae.forward_decoder(torch.cat([h[:, :1], kept], 1), ids_restore)
    if keep_visible:
        mask = (~visible[:, 1:]).float()[..., None]
        pred = pred * mask + mae.patchify(x) * (1 - mask)
    return mae.unpatchify(pred) * mae.std + mae.mean


def plain_loss(b, x, y, noise, size, cfg, stats):
    """The full recipe's loss, each ensemble member with its own reconstruction pass."""
    img = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False) if x.shape[-1] != size else x
    terms = []
    for c, (m, s) in zip(b.classifiers, stats):
        out = c(plain_reconstruct(b.mae, img, cfg.mask_ratio, noise, cfg.keep_visible))
        terms.append(classification_loss(out.logits, y) + cfg.diversity_weight * diversity_loss(out.features, y)
                     + cfg.distribution_weight * distribution_loss(out.features, y, m, s))
    return torch.stack(terms).mean()


def time_plain(b, y, steps, res, cfg, stats, seed=0):
    for m in (*b.classifiers, b.mae):
        m.requires_grad_(True)
    g = torch.Generator().manual_seed(seed)
    x = (0.5 + 0.1 * torch.randn(len(y), b.in_chans, res, res, generator=g)).clamp(0, 1).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=cfg.lr)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = plain_loss(b, x, y, b.mae.mask_noise(len(y), g), b.image_size, cfg, stats)
        opt.zero_grad()
        loss.backward()
        if cfg.blur_sigma:
            x.grad = blur_gradient(x.grad, cfg.blur_sigma)
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    dt = (time.perf_counter() - t0) / steps
    for m in (*b.classifiers, b.mae):
        m.requires_grad_(False)
    return dt


def main(argv=None):
    p = bench.parser(__doc__)
    p.add_argument("--bundle", default="fmnist")
    p.add_argument("--batch", type=int, default=80)
    p.add_argument("--steps", type=int, default=10, help="steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", default="")
    a = p.parse_args(argv)
    bench.set_threads(a.threads)
    b = load_bundle(a.bundle)
    y = torch.arange(a.batch) % len(b.class_names)
    size = b.image_size

    # same maths: the plain and the sampler's reconstruction agree on one mask
    x = torch.rand(4, b.in_chans, size, size)
    noise = b.mae.mask_noise(4, torch.Generator().manual_seed(0))
    diff = max((plain_reconstruct(b.mae, x, 0.75, noise, kv) - b.mae.reconstruct(x, 0.75, noise=noise, keep_visible=kv))
               .abs().max().item() for kv in (False, True))
    assert diff < 1e-4, f"plain and efficient reconstructions differ by {diff}"

    # the full recipe (MAE, ensemble, diversity, distribution, blur), timed at the MAE's resolution
    cfg = GenerateConfig(steps=a.steps, resolutions=(size,), progress=False)
    stats = [bundle_class_stats(b, i) for i in range(len(b.classifiers))]
    generate(b, y[:8], replace(cfg, steps=2), class_stats=stats)  # warm-up
    time_plain(b, y[:8], 2, size, cfg, stats)  # warm-up
    fasts, plains = [], []
    for r in range(a.rounds):
        fasts.append(generate(b, y, replace(cfg, seed=r), class_stats=stats).seconds / a.steps)
        plains.append(time_plain(b, y, a.steps, size, cfg, stats, seed=r))
    fast, plain = statistics.median(fasts), statistics.median(plains)
    row = {"bundle": a.bundle, "batch": a.batch, "steps": a.steps, "rounds": a.rounds,
           "threads": torch.get_num_threads(),
           "sampler_ms_per_step": round(fast * 1000, 1), "plain_ms_per_step": round(plain * 1000, 1),
           "speedup": round(plain / fast, 2), "max_reconstruction_diff": diff}
    for k, v in row.items():
        print(f"{k:>22}: {v}")
    if a.json:
        bench.write_report(a.json, row)


if __name__ == "__main__":
    main()
